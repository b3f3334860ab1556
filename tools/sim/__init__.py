"""Stand-ins for hardware on a pty: the simulated node (twin), the ESP32 ROM bootloader
simulator (romsim), the fault-injecting serial proxy (faultproxy) and the pty helpers (pty)."""
