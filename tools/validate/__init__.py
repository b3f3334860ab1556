"""Checking the detector against ground truth: HIL scoring of a node or twin over recordings
(hil), the gate's coverage/recall evaluation (gate_eval) and the synthetic scenes (scenes)."""
