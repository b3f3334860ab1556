"""Talking to a node over a serial line: the protocol codec (protocol), NodeLink with its
timeouts, INJECT streaming, USB port discovery and the shared --port/--sim/--baud options (link)."""
