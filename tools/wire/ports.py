"""Finding ESP32 boards among the serial ports, by the USB VID:PID of their USB-serial bridge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: USB-serial bridges found on ESP32 boards: (VID, PID) -> name
USB_IDS = {
    (0x10C4, 0xEA60): "CP210x",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x55D4): "CH9102",
    (0x0403, 0x6001): "FT232R",
    (0x0403, 0x6010): "FT2232",
    (0x0403, 0x6014): "FT232H",
    (0x0403, 0x6015): "FT231X",
    (0x303A, 0x1001): "Espressif USB-Serial/JTAG",
    (0x303A, 0x0002): "Espressif USB CDC",
}


@dataclass
class Port:
    device: str
    vid: int | None
    pid: int | None
    bridge: str
    description: str = ""
    serial_number: str | None = None

    @property
    def label(self) -> str:
        """The bridge and the OS's description, e.g. 'CP210x CP2102 USB to UART Bridge'."""
        return f"{self.bridge} {self.description}".strip()


def find_ports(comports: Sequence | None = None) -> list[Port]:
    """Serial ports whose USB VID:PID is a bridge found on ESP32 boards (USB_IDS), sorted."""
    if comports is None:
        try:
            from serial.tools import list_ports
        except ImportError:  # pragma: no cover
            return []
        comports = list_ports.comports()
    out = []
    for c in comports:
        key = (getattr(c, "vid", None), getattr(c, "pid", None))
        if key in USB_IDS:
            out.append(
                Port(
                    c.device,
                    key[0],
                    key[1],
                    USB_IDS[key],
                    getattr(c, "description", "") or "",
                    getattr(c, "serial_number", None),
                )
            )
    return sorted(out, key=lambda p: p.device)
