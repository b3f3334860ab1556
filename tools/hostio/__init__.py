"""What the host does with a live node: rolling WAV/JSON recording (record) and the event
display (monitor)."""
