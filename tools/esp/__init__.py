"""Flashing ESP32 boards with esptool (flash): the library behind tools/flash.py."""
