"""The host model of one node: parameters (params), the C core through ctypes (core, built from
_ewcore_module.c + firmware/lib/ewcore as tools.node._ewcore), the node application (app), the
NumPy reference (reference), the classifier (model) and audio loading (audio).

The only part of tools/ that training/ may import; it imports nothing else of tools/."""
