"""Test helpers: the tiny classifier model (tinymodel) and the scripted fake node on a pty (fakenode)."""
