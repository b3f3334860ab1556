"""A small ESP32 ROM-bootloader simulator on a pseudo-terminal, for testing flashing tools.

It speaks esptool's serial protocol (Espressif's "Serial Protocol" documentation): SLIP framing,
SYNC, READ_REG/WRITE_REG (chip magic, eFuse MAC, an SPI peripheral that answers the flash-ID
command), GET_SECURITY_INFO (ESP32-S3/C3), SPI_ATTACH, SPI_SET_PARAMS, CHANGE_BAUDRATE,
FLASH_BEGIN/DATA/END, SPI_FLASH_MD5, MEM_BEGIN/DATA/END (so esptool's flasher stub "runs":
the simulator then answers as the stub, including FLASH_DEFL_* compressed writes).  The bytes
written land in an in-memory flash (`RomSim.flash`, optionally saved to a file), so a test can
compare them with the image.  After the loader is left (FLASH_END "run user code" or "reboot"
from the ROM), the simulated chip boots what the flash holds, checked the way the ROM and
ESP-IDF's bootloader check it (tools/wire/esp_image.py): the bootloader image and the app image
(magic, chip id, the chip revision range against the revision in the simulated eFuses
(`chip_revision`, `--chip-revision`; ESP32-C3 default v0.4), segments, checksum, appended
SHA-256), the partition table (MD5), the app descriptor, and the earwitness identity record the
firmware carries (model SHA-256, config hash, firmware version: firmware/src/main.c).  A valid
earwitness image for this chip boots: a ROM boot banner at 115200 baud, then the firmware's HELLO
frame (docs/protocol.md) at the node baud with the identity read from the image, and a HELLO in
answer to every HELLO request.  Anything else does not boot: the simulated bootloader logs the
reason at 115200 ("E (42) boot: ...") and resets, over and over, and no firmware runs (`image` is
None, `boot_error` says why).  With `app_port` (`--app-port PATH`, `--twin`) the "firmware" is
another simulated node, e.g. the twin (tools/twin.py): while a valid image runs, the simulator
forwards the serial bytes both ways between the host and that pty, asks it for a HELLO when the
board boots, and puts the image's identity into every HELLO it sends.

    python -m tools.romsim --chip esp32            # prints "earwitness romsim on /dev/pts/N"
    python tools/flash.py --port /dev/pts/N --firmware merged.bin --no-stub

    with RomSim(chip="esp32c3", chip_revision="0.3") as sim:
        ...  # sim.port, sim.flash, sim.state, sim.image, sim.boot_error, sim.hello_count
    RomSim("esp32c3", boot="app", preload={0x0: boot, 0x8000: parts, 0x10000: app})
        # a board that already runs a build (or --flash-file FILE with a saved flash)

What a pty cannot carry, and how the simulator stands in for it:

- **Baud rate.** The simulator reads the host's line settings from the pty (the master side sees
  the slave's termios).  Bytes sent while host and simulator disagree on the baud are garbled,
  as on a real UART: input is dropped, output is replaced by junk.  The ROM starts at 115200;
  CHANGE_BAUDRATE switches after the reply; the firmware runs at `node_baud` (921600).
- **DTR/RTS (EN / GPIO0 auto-reset).** A pty has no modem lines (pyserial's RTS ioctl fails on
  it), so use esptool's `--before no-reset`; to leave the loader use `--after soft-reset`
  (ROM "run user code"; tools/flash.py does this by itself on a pty).  A SYNC packet arriving
  while the firmware runs (at any baud), or while the loader runs at another baud than the
  host's (left at 921600 by an earlier esptool run), stands in for the auto-reset circuit: the
  simulator restarts in the ROM loader at 115200 (that SYNC is lost; esptool retries).  `RomSim.reset(bootloader)`
  does the same from Python, SIGUSR1 / SIGUSR2 (bootloader / normal boot) from a shell.

Failure injection (all off by default): `wrong chip` is just `--chip`; `silent_app` (firmware
never sends anything: a broken build), `model_hash`/`config_hash` (HELLO content other than
the image's), `chip_revision` (an older chip than the image needs),
`corrupt_md5` (SPI_FLASH_MD5 answers a wrong digest: a bad flash), `max_baud` (a
CHANGE_BAUDRATE above it gets no answer and the loader stays at its baud: an adapter that cannot
do the rate), `boot_delay_s` (time from reset to HELLO).
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import struct
import sys
import termios
import threading
import time
import tty
import zlib
from dataclasses import dataclass

if __package__ in (None, ""):  # `python tools/romsim.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.errors import BadInput, check_output
from tools.node import params
from tools.sim.pty import open_raw_pty, write_all
from tools.wire import esp_image
from tools.wire import protocol as pr

ROM_BAUD = 115200
NODE_BAUD = 921600

# esptool serial protocol: command opcodes
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SYNC, WRITE_REG, READ_REG = 0x08, 0x09, 0x0A
SPI_SET_PARAMS, SPI_ATTACH, READ_FLASH_SLOW, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0E, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END, SPI_FLASH_MD5 = 0x10, 0x11, 0x12, 0x13
GET_SECURITY_INFO = 0x14
ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE = 0xD0, 0xD1, 0xD2, 0xD3

# ROM error codes (second status byte)
ERR_INVALID_MESSAGE = 0x05
ERR_FAILED_TO_ACT = 0x06
ERR_BAD_CRC = 0x07
ERR_FLASH_WRITE = 0x08
ERR_FLASH_READ = 0x09
ERR_DEFLATE = 0x0B
CHECKSUM_SEED = 0xEF
CHIP_DETECT_MAGIC_REG = 0x40001000
SPI_CMD_USR = 1 << 18
SPIFLASH_RDID = 0x9F

FLASH_SIZE_IDS = {"1MB": 0x14, "2MB": 0x15, "4MB": 0x16, "8MB": 0x17, "16MB": 0x18}
#: termios speed constant -> baud
_SPEEDS = {
    getattr(termios, n): int(n[1:]) for n in dir(termios) if n.startswith("B") and n[1:].isdigit()
}


@dataclass(frozen=True)
class ChipModel:
    """What esptool reads to recognise a chip, and where its registers are."""

    name: str  # esptool's --chip name
    image_chip_id: int  # GET_SECURITY_INFO chip id (S3/C3), image header chip id
    magic: int  # word at CHIP_DETECT_MAGIC_REG
    security_info: bool  # ROM supports GET_SECURITY_INFO
    spi_base: int
    spi_usr2_offs: int
    spi_w0_offs: int
    mac_regs: tuple[int, int]  # (low word, high word) addresses
    mac_layout: str  # "esp32": words = efuse(1)=low, efuse(2)=high with CRC byte
    uart_clkdiv_reg: int  # UART0 clock divider: esptool estimates the crystal from it
    extra_regs: tuple = ()  # (address, value) pairs
    rom_status_bytes: int = 4
    banner: str = ""
    efuse_block1: int = 0  # eFuse BLOCK1 (MAC, revision words); 0: revision not modelled
    default_revision: int = 0  # chip revision, major * 100 + minor


CHIPS = {
    "esp32": ChipModel(
        "esp32",
        0,
        0x00F01D83,
        False,
        0x3FF42000,
        0x24,
        0x80,
        (0x3FF5A004, 0x3FF5A008),
        "esp32",
        0x3FF40014,
        # RTC calibration x EFUSE_RD_CK8M_FREQ: ESP32's CHANGE_BAUDRATE
        # workaround computes a 40 MHz crystal from these (value = baud exactly)
        ((0x3FF5F06C, 1024 << 7), (0x3FF5A010, 100)),
        banner="ets Jul 29 2019 12:21:46\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13 "
        "(SPI_FAST_FLASH_BOOT)\r\n",
    ),
    "esp32s3": ChipModel(
        "esp32s3",
        9,
        0x00000009,
        True,
        0x60002000,
        0x20,
        0x58,
        (0x60007044, 0x60007048),
        "s3",
        0x60000014,
        banner="ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0xc "
        "(RTC_SW_CPU_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n",
    ),
    "esp32c3": ChipModel(
        "esp32c3",
        5,
        0x1B31506F,
        True,
        0x60002000,
        0x20,
        0x58,
        (0x60008844, 0x60008848),
        "s3",
        0x60000014,
        banner="ESP-ROM:esp32c3-api1-20210207\r\nBuild:Feb  7 2021\r\nrst:0x3 "
        "(RTC_SW_SYS_RST),boot:0xc (SPI_FAST_FLASH_BOOT)\r\n",
        # v0.4, the revision of current chips; ESP-IDF 5.3 builds for >= v0.3
        efuse_block1=0x60008844,
        default_revision=4,
    ),
}


def slip_encode(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def rom_checksum(data: bytes, state: int = CHECKSUM_SEED) -> int:
    for b in data:
        state ^= b
    return state


def _hash8(v) -> bytes | None:
    if v is None:
        return None
    b = bytes.fromhex(v) if isinstance(v, str) else bytes(v)
    if len(b) < pr.HASH_BYTES:
        raise ValueError(f"hash {v!r}: need at least {pr.HASH_BYTES} bytes (16 hex digits)")
    return b[: pr.HASH_BYTES]


class RomSim:
    """The simulated board.  `start()` opens the pty and serves it from a thread; `port` is the
    path a host tool opens.  States: "rom" (ROM loader), "stub" (esptool's stub "running"),
    "app" (the earwitness firmware)."""

    def __init__(
        self,
        chip: str = "esp32",
        *,
        mac: bytes | str = "24:0a:c4:12:34:56",
        flash_size: str = "4MB",
        flash_file: str | None = None,
        boot: str = "rom",
        node_baud: int = NODE_BAUD,
        model_hash=None,
        config_hash=None,
        board: str | None = None,
        labels=None,
        fw_version=None,
        chip_revision: int | str | None = None,
        preload: dict | None = None,
        silent_app: bool = False,
        corrupt_md5: bool = False,
        max_baud: int | None = None,
        boot_delay_s: float = 0.05,
        reset_on_sync: bool = True,
        banner: bool = True,
        app_port: str | None = None,
        log=None,
    ):
        if chip not in CHIPS:
            raise ValueError(f"unknown chip {chip!r} (one of {', '.join(CHIPS)})")
        if flash_size not in FLASH_SIZE_IDS:
            raise ValueError(f"flash size {flash_size!r}: one of {', '.join(FLASH_SIZE_IDS)}")
        self.chip = CHIPS[chip]
        self.mac = bytes.fromhex(mac.replace(":", "")) if isinstance(mac, str) else bytes(mac)
        if len(self.mac) != 6:
            raise ValueError("MAC must be 6 bytes")
        self.flash_size = flash_size
        self.flash = bytearray(b"\xff" * (int(flash_size[:-2]) << 20))
        self.flash_file = flash_file
        if flash_file and os.path.exists(flash_file):
            with open(flash_file, "rb") as f:
                data = f.read(len(self.flash))
            self.flash[: len(data)] = data
        for off, data in (preload or {}).items():  # {offset: bytes}: flashed before
            self.flash[off : off + len(data)] = data
        if chip_revision is None:
            self.chip_revision = self.chip.default_revision
        else:
            self.chip_revision = (
                esp_image.parse_revision(chip_revision)
                if isinstance(chip_revision, str)
                else int(chip_revision)
            )
            if not self.chip.efuse_block1 and self.chip_revision != self.chip.default_revision:
                raise ValueError(
                    f"chip revision: only modelled for "
                    f"{', '.join(n for n, c in CHIPS.items() if c.efuse_block1)}"
                )
            if not 0 <= self.chip_revision <= 315 or self.chip_revision % 100 > 15:
                raise ValueError(
                    f"chip revision {esp_image.revision_str(self.chip_revision)}: "
                    f"outside v0.0 - v3.15"
                )
        self.node_baud = node_baud
        # HELLO identity: what the booted image carries (`image`), unless overridden here
        # (failure injection: a firmware that reports something else than its image)
        self.model_hash = _hash8(model_hash)
        self.config_hash = _hash8(config_hash)
        self.image: esp_image.BootImage | None = None  # the image that booted
        self.boot_error: str | None = None  # why the last boot refused the flash
        self.board = (
            board
            or {
                "esp32": "esp32dev",
                "esp32s3": "esp32-s3-devkitc-1",
                "esp32c3": "esp32-c3-devkitm-1",
            }[chip]
        )
        self.labels = list(labels) if labels is not None else list(params.DEFAULT_LABELS)
        self.fw_version = tuple(fw_version) if fw_version is not None else None
        self.silent_app = silent_app
        self.corrupt_md5 = corrupt_md5
        self.max_baud = max_baud
        self.boot_delay_s = boot_delay_s
        self.reset_on_sync = reset_on_sync
        self.banner = banner
        self.app_port = app_port
        self._app_fd = -1
        self._log = log
        # observable state (read by tests)
        self.state = "rom"
        self.baud = ROM_BAUD
        self.writes: list[tuple[int, int]] = []  # (offset, length) of every flash write
        self.commands: list[int] = []  # opcodes received, in order
        self.hello_count = 0  # HELLO frames sent
        self.boots = 0
        self.garbled_in = 0
        self.garbled_out = 0
        # internals
        self._regs: dict[int, int] = {}
        self._master = -1
        self._slave_name = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._out = bytearray()
        self._slip = bytearray()
        self._in_slip = False
        self._esc = False
        self._wr = None  # current flash write: dict
        self._app_dec = pr.FrameDecoder()
        self._app_enc = pr.Encoder()
        self._boot_at: float | None = None
        self._bootloop_at: float | None = None
        self._app_chunk = bytearray()
        self._host_open = False
        self._boot_target = boot
        self._init_regs()

    # ---- lifetime ----------------------------------------------------------------------------
    @property
    def port(self) -> str:
        return self._slave_name

    def start(self) -> RomSim:
        m, s = open_raw_pty(nonblocking=True)
        self._master = m
        self._slave_name = os.ttyname(s)
        os.close(s)  # not held open: a host closing the port is seen (POLLHUP)
        if self.app_port:
            fd = os.open(self.app_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(fd)
            self._app_fd = fd
        if self._boot_target == "app":
            self._boot()
        self._thread = threading.Thread(
            target=self._serve, name=f"romsim {self._slave_name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
        if self._app_fd >= 0:
            os.close(self._app_fd)
            self._app_fd = -1
        self.save()

    def save(self) -> None:
        if self.flash_file:
            with open(self.flash_file, "wb") as f:
                f.write(self.flash)

    def __enter__(self) -> RomSim:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self, bootloader: bool = True) -> None:
        """EN pulse: restart in the ROM loader (GPIO0 low) or boot the firmware."""
        with self._lock:
            if bootloader:
                self._enter_rom()
            else:
                self._boot()

    def read_flash(self, offset: int, length: int) -> bytes:
        return bytes(self.flash[offset : offset + length])

    # ---- registers ---------------------------------------------------------------------------
    def _init_regs(self) -> None:
        c = self.chip
        self._regs[CHIP_DETECT_MAGIC_REG] = c.magic
        self._regs[c.uart_clkdiv_reg] = round(40e6 / ROM_BAUD)  # 40 MHz crystal
        for addr, value in c.extra_regs:
            self._regs[addr] = value
        lo, hi = c.mac_regs
        m = self.mac
        if c.mac_layout == "esp32":
            # esptool: words = [efuse(2), efuse(1)] packed big-endian, first 2 bytes = CRC
            self._regs[hi] = (0x00 << 24) | (0 << 16) | (m[0] << 8) | m[1]  # efuse word 2
            self._regs[lo] = (m[2] << 24) | (m[3] << 16) | (m[4] << 8) | m[5]
        else:
            # S3/C3: mac0 = low 32 bits (bytes 2..5), mac1 low 16 bits = bytes 0..1
            self._regs[lo] = (m[2] << 24) | (m[3] << 16) | (m[4] << 8) | m[5]
            self._regs[hi] = (m[0] << 8) | m[1]
        if c.efuse_block1:
            # ESP32-C3 eFuse BLOCK1 (what esptool and ESP-IDF read): word 3 bits 18..20 = minor
            # revision bits 0..2, word 5 bit 23 = minor bit 3, bits 24..25 = major revision
            major, minor = divmod(self.chip_revision, 100)
            self._regs[c.efuse_block1 + 12] = (minor & 7) << 18
            self._regs[c.efuse_block1 + 20] = ((minor >> 3) & 1) << 23 | (major & 3) << 24

    def _read_reg(self, addr: int) -> int:
        return self._regs.get(addr, 0)

    def _write_reg(self, addr: int, value: int, mask: int) -> None:
        old = self._regs.get(addr, 0)
        self._regs[addr] = (old & ~mask | value & mask) & 0xFFFFFFFF
        c = self.chip
        if addr == c.spi_base and value & SPI_CMD_USR:  # SPI user command: run it
            cmd = self._regs.get(c.spi_base + c.spi_usr2_offs, 0) & 0xFF
            if cmd == SPIFLASH_RDID:  # manufacturer 0xEF (Winbond), type 0x40, capacity id
                self._regs[c.spi_base + c.spi_w0_offs] = (
                    (FLASH_SIZE_IDS[self.flash_size] << 16) | (0x40 << 8) | 0xEF
                )
            else:  # status registers etc.: all clear
                self._regs[c.spi_base + c.spi_w0_offs] = 0
            self._regs[addr] &= ~SPI_CMD_USR & 0xFFFFFFFF  # done at once

    # ---- state changes -----------------------------------------------------------------------
    def _enter_rom(self) -> None:
        self.state = "rom"
        self.baud = ROM_BAUD
        self._wr = None
        self._slip.clear()
        self._in_slip = False
        self._boot_at = None
        self._bootloop_at = None
        self._regs.clear()
        self._init_regs()

    def _boot(self) -> None:
        """Leave the loader and boot what is in the flash, as the ROM and the bootloader do
        (esp_image.check_flash): a valid earwitness image for this chip and revision runs
        (ROM banner at 115200, then the firmware at node_baud, announcing the image's
        identity); anything else is refused: the bootloader logs the reason at 115200 and
        resets, over and over (a boot loop), and no firmware runs."""
        self.save()
        self.state = "app"
        self.boots += 1
        self.baud = ROM_BAUD
        self._app_dec = pr.FrameDecoder()
        self._app_enc = pr.Encoder()
        self._app_chunk.clear()
        try:
            self.image = esp_image.check_flash(self.flash, self.chip.name, self.chip_revision)
            self.boot_error = None
        except esp_image.ImageError as e:
            self.image, self.boot_error = None, str(e)
            if self._log:
                self._log(f"romsim: boot refused: {e}")
            self._boot_at = None
            self._bootloop_at = time.monotonic()
            return
        self._bootloop_at = None
        if self.banner:
            self._send(
                self.chip.banner.encode() + b"load:0x3fff0030,len:7000\r\nentry 0x40080000\r\n"
            )
        self._boot_at = time.monotonic() + self.boot_delay_s

    def _bootloop_text(self) -> bytes:
        return (
            (self.chip.banner if self.banner else "")
            + f"E (42) boot: {self.boot_error}\r\n"
            + "E (45) boot: No bootable app partitions in the partition table\r\n"
        ).encode()

    # ---- I/O -----------------------------------------------------------------------------------
    def _host_baud(self) -> int | None:
        try:
            return _SPEEDS.get(termios.tcgetattr(self._master)[4])
        except termios.error:
            return None

    def _link_ok(self) -> bool:
        """Host and simulator agree on the baud, and the rate is one the 'adapter' can carry."""
        hb = self._host_baud()
        return hb is None or hb == self.baud

    def _send(self, data: bytes) -> None:
        if not self._link_ok():
            self.garbled_out += len(data)
            data = bytes(((b * 7 + 0x55) & 0xFF) or 0x3F for b in data)  # junk at the wrong rate
        self._out += data

    def _app_running(self) -> bool:
        return (
            self.state == "app"
            and self.image is not None
            and self._boot_at is None
            and not self.silent_app
        )

    def _app_write(self, data: bytes) -> None:
        """Host -> external firmware (app_port); a stalled peer loses bytes, as a UART would."""
        try:
            os.write(self._app_fd, data)
        except (BlockingIOError, InterruptedError, OSError):
            pass

    def _pump_app(self) -> None:
        """External firmware -> host while it runs; discarded otherwise (chip in the loader)."""
        try:
            data = os.read(self._app_fd, 65536)
        except (BlockingIOError, InterruptedError, OSError):
            return
        if data and self._app_running():
            self._send(self._patch_hello(data))

    def _patch_hello(self, data: bytes) -> bytes:
        """The external firmware's bytes with every HELLO carrying the booted image's identity
        (the twin runs the host's core and model; the board would run the image's)."""
        self._app_chunk += data
        end = self._app_chunk.rfind(b"\0")
        if end < 0:
            if len(self._app_chunk) <= pr.MAX_ENCODED:
                return b""  # wait for the frame's end
            out = bytes(self._app_chunk)  # not a frame: pass it on
            self._app_chunk.clear()
            return out
        chunks = bytes(self._app_chunk[:end]).split(b"\0")
        del self._app_chunk[: end + 1]
        out = []
        for ch in chunks:
            try:
                body = pr.cobs_decode(ch) if ch else b""
            except Exception:  # noqa: BLE001 - not a frame: as it is
                body = b""
            if (
                len(body) >= 8
                and body[0] == pr.MAGIC
                and body[1] == pr.HELLO
                and pr.crc32(body[:-4]) == struct.unpack_from("<I", body, len(body) - 4)[0]
            ):
                try:
                    h = pr.Hello.unpack(body[4:-4])
                except pr.ProtocolError:
                    out.append(ch)
                    continue
                mine = self.hello(h.reset_reason)
                h.fw_major, h.fw_minor, h.fw_patch = mine.fw_major, mine.fw_minor, mine.fw_patch
                h.model_hash, h.config_hash = mine.model_hash, mine.config_hash
                seq = struct.unpack_from("<H", body, 2)[0]
                ch = pr.encode_frame(pr.HELLO, seq, h.pack())[1:-1]
            out.append(ch)
        return b"\0".join(out) + b"\0"

    def _serve(self) -> None:
        poller = select.poll()
        m = self._master
        poller.register(m, select.POLLIN | select.POLLOUT)
        if self._app_fd >= 0:
            poller.register(self._app_fd, select.POLLIN)
        while not self._stop.is_set():
            with self._lock:
                if (
                    self.state == "app"
                    and self._bootloop_at is not None
                    and time.monotonic() >= self._bootloop_at
                ):
                    self._bootloop_at = time.monotonic() + 0.2  # refused: reset, again
                    if not self._out:
                        self._send(self._bootloop_text())
                if (
                    self.state == "app"
                    and self._boot_at is not None
                    and time.monotonic() >= self._boot_at
                ):
                    self._boot_at = None
                    self.baud = self.node_baud
                    if self._app_fd >= 0:  # the external firmware "boots": its HELLO
                        if not self.silent_app:
                            self._app_write(pr.Encoder().encode(pr.HelloRequest()))
                    elif self.image is not None:
                        self._send_hello(reset_reason=3)
                want = select.POLLIN | (select.POLLOUT if self._out else 0)
            poller.modify(m, want)
            events = dict(poller.poll(10))
            if self._app_fd >= 0 and events.pop(self._app_fd, 0):
                with self._lock:
                    self._pump_app()
            if not events:
                continue
            ev = events[m]
            if ev & select.POLLHUP and not ev & select.POLLIN:
                # no host has the port open: what the "board" sends now is lost
                self._host_open = False
                with self._lock:
                    self._out.clear()
                time.sleep(0.01)
                continue
            self._host_open = True
            if ev & select.POLLIN:
                try:
                    data = os.read(m, 65536)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError:
                    time.sleep(0.01)
                    continue
                if data:
                    with self._lock:
                        self._receive(data)
            if ev & select.POLLOUT:
                with self._lock:
                    if self._out:
                        try:
                            n = os.write(m, self._out)
                            del self._out[:n]
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            self._out.clear()

    def _receive(self, data: bytes) -> None:
        if self.state == "app":
            if self.reset_on_sync and b"\xc0\x00\x08\x24\x00" in data:
                self._enter_rom()  # the auto-reset circuit stand-in (module doc)
                return
            if not self._link_ok():
                self.garbled_in += len(data)
                return
            if self._app_fd >= 0:
                if self._app_running():
                    self._app_write(data)
                return
            for item in self._app_dec.feed(data):
                self._app_item(item)
            return
        if not self._link_ok():
            if self.reset_on_sync and b"\xc0\x00\x08\x24\x00" in data:
                self._enter_rom()  # a host syncing at another baud "reset" us
                return
            self.garbled_in += len(data)
            return
        for b in data:
            if b == 0xC0:
                if self._in_slip and self._slip:
                    self._command(bytes(self._slip))
                self._slip.clear()
                self._in_slip = True
                self._esc = False
            elif not self._in_slip:
                continue
            elif self._esc:
                self._esc = False
                self._slip.append({0xDC: 0xC0, 0xDD: 0xDB}.get(b, b))
            elif b == 0xDB:
                self._esc = True
            else:
                self._slip.append(b)

    # ---- the firmware ------------------------------------------------------------------------
    def hello(self, reset_reason: int = 3) -> pr.Hello:
        """The HELLO of the booted image: its identity, unless overridden (constructor)."""
        ident = self.image.identity if self.image is not None else None
        fw = self.fw_version or (ident.fw_version if ident else (0, 0, 0))
        zero = bytes(pr.HASH_BYTES)
        return pr.Hello(
            proto_version=pr.PROTO_VERSION,
            fw_major=fw[0],
            fw_minor=fw[1],
            fw_patch=fw[2],
            reset_reason=reset_reason,
            sample_rate_hz=params.default().sample_rate_hz,
            model_hash=self.model_hash or (ident.model_hash if ident else zero),
            config_hash=self.config_hash or (ident.config_hash if ident else zero),
            node_id=self.mac,
            board=self.board,
            labels=self.labels,
        )

    def _send_hello(self, reset_reason: int = 0) -> None:
        if self.silent_app:
            return
        self._send(self._app_enc.encode(self.hello(reset_reason)))
        self.hello_count += 1

    def _app_item(self, item) -> None:
        if self.silent_app or self.image is None or not isinstance(item, pr.Frame):
            return
        m = item.msg
        if isinstance(m, pr.HelloRequest) or isinstance(m, pr.Cmd) and m.command == pr.CMD_HELLO:
            self._send_hello(reset_reason=0)
        elif isinstance(m, pr.Cmd) and m.command == pr.CMD_REBOOT:
            self._send(self._app_enc.encode(pr.Ack(item.seq, item.type)))
            self._boot()
        else:
            self._send(
                self._app_enc.encode(
                    pr.Error(pr.ERRC_UNSUPPORTED, item.seq, "romsim firmware: HELLO only")
                )
            )

    # ---- the loader ----------------------------------------------------------------------------
    def _reply(self, op: int, val: int = 0, data: bytes = b"", error: int = 0) -> None:
        nstatus = 2 if self.state == "stub" else self.chip.rom_status_bytes
        status = bytes([1 if error else 0, error]) + bytes(nstatus - 2)
        body = data + status
        self._send(slip_encode(struct.pack("<BBHI", 1, op, len(body), val) + body))

    def _command(self, pkt: bytes) -> None:
        if len(pkt) < 8 or pkt[0] != 0:
            return  # not a request: the ROM ignores it
        _, op, size, chk = struct.unpack_from("<BBHI", pkt)
        data = pkt[8 : 8 + size]
        self.commands.append(op)
        if self._log:
            self._log(f"romsim {self.state} cmd 0x{op:02x} len {size}")
        rom = self.state == "rom"
        if op == SYNC:
            if data[:4] != b"\x07\x07\x12\x20":
                return
            val = 0 if self.state == "stub" else 0x20120707
            for _ in range(8):  # esptool reads 8 answers (ROM: val != 0, stub: 0)
                self._reply(op, val)
        elif op == READ_REG:
            (addr,) = struct.unpack_from("<I", data)
            self._reply(op, self._read_reg(addr))
        elif op == WRITE_REG:
            for i in range(0, len(data) - 15, 16):
                addr, value, mask, _delay = struct.unpack_from("<IIII", data, i)
                self._write_reg(addr, value, mask)
            self._reply(op)
        elif op == GET_SECURITY_INFO:
            if not self.chip.security_info:
                self._reply(op, error=ERR_INVALID_MESSAGE)
                return
            info = struct.pack(
                "<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.chip.image_chip_id, 0
            )
            self._reply(op, data=info)
        elif op in (SPI_ATTACH, SPI_SET_PARAMS):
            self._reply(op)
        elif op == CHANGE_BAUDRATE:
            new, _old = struct.unpack_from("<II", data)
            if self.max_baud is not None and new > self.max_baud:
                return  # lost: host times out, loader keeps its baud
            self._reply(op)
            self._flush_now()
            self.baud = new
        elif op in (FLASH_BEGIN, FLASH_DEFL_BEGIN):
            erase, nblocks, blksize, offset = struct.unpack_from("<IIII", data)
            if op == FLASH_DEFL_BEGIN and rom and self.chip.name != "esp32":
                pass  # newer ROMs support it too
            if offset + (erase if op == FLASH_BEGIN else 0) > len(self.flash):
                self._reply(op, error=ERR_FAILED_TO_ACT)
                return
            if op == FLASH_BEGIN and erase:
                end = min(len(self.flash), offset + erase)
                self.flash[offset:end] = b"\xff" * (end - offset)
            elif op == FLASH_DEFL_BEGIN:  # erase size = uncompressed size
                end = min(len(self.flash), offset + erase)
                self.flash[offset:end] = b"\xff" * (end - offset)
            self._wr = {
                "offset": offset,
                "pos": offset,
                "blksize": blksize,
                "seq": 0,
                "defl": op == FLASH_DEFL_BEGIN,
                "z": zlib.decompressobj() if op == FLASH_DEFL_BEGIN else None,
            }
            self._reply(op)
        elif op in (FLASH_DATA, FLASH_DEFL_DATA):
            wr = self._wr
            if wr is None or len(data) < 16:
                self._reply(op, error=ERR_FAILED_TO_ACT)
                return
            n, seq, _, _ = struct.unpack_from("<IIII", data)
            block = data[16 : 16 + n]
            if rom_checksum(block) != chk & 0xFF:
                self._reply(op, error=ERR_BAD_CRC)
                return
            if seq != wr["seq"]:
                self._reply(op, error=ERR_FAILED_TO_ACT)
                return
            if wr["defl"]:
                try:
                    block = wr["z"].decompress(block)
                except zlib.error:
                    self._reply(op, error=ERR_DEFLATE)
                    return
            pos = wr["pos"]
            if pos + len(block) > len(self.flash):
                self._reply(op, error=ERR_FLASH_WRITE)
                return
            self.flash[pos : pos + len(block)] = block
            self.writes.append((pos, len(block)))
            wr["pos"] = pos + len(block)
            wr["seq"] += 1
            self._reply(op)
        elif op in (FLASH_END, FLASH_DEFL_END):
            (flag,) = struct.unpack_from("<I", data) if len(data) >= 4 else (1,)
            self._wr = None
            self._reply(op)
            self._flush_now()
            if rom:  # the ROM leaves the loader either way
                self._boot()
            elif flag == 0:  # stub: "reboot" = back to the ROM loader
                self.state = "rom"
        elif op == SPI_FLASH_MD5:
            addr, size = struct.unpack_from("<II", data)
            if addr + size > len(self.flash):
                self._reply(op, error=ERR_FLASH_READ)
                return
            digest = hashlib.md5(self.flash[addr : addr + size]).digest()
            if self.corrupt_md5:
                digest = bytes([digest[0] ^ 0xFF]) + digest[1:]
            self._reply(op, data=digest if self.state == "stub" else digest.hex().encode())
        elif op == MEM_BEGIN:
            self._reply(op)
        elif op == MEM_DATA:
            self._reply(op)
        elif op == MEM_END:
            flag, entry = struct.unpack_from("<II", data)
            self._reply(op)
            if entry:  # "run" the uploaded flasher stub
                self._flush_now()
                self.state = "stub"
                self._send(slip_encode(b"OHAI"))
        elif op == READ_FLASH_SLOW and rom or op == READ_FLASH and not rom:
            self._reply(op, error=ERR_INVALID_MESSAGE)  # not needed by the flashing tools
        elif op == ERASE_REGION and not rom:
            offset, size = struct.unpack_from("<II", data)
            self.flash[offset : offset + size] = b"\xff" * size
            self._reply(op)
        elif op == ERASE_FLASH and not rom:
            self.flash[:] = b"\xff" * len(self.flash)
            self._reply(op)
        else:
            self._reply(op, error=ERR_INVALID_MESSAGE)

    def _flush_now(self) -> None:
        """Write pending output before a baud or state change (the UART drains its FIFO)."""
        end = time.monotonic() + 1.0
        n = write_all(self._master, bytes(self._out), deadline=end)
        del self._out[:n]
        if self._out and time.monotonic() < end:
            self._out.clear()  # the pty is gone


def serve(
    chip: str = "esp32",
    boot: str = "rom",
    flash_file: str | None = None,
    flash_size: str = "4MB",
    mac: str = "24:0a:c4:12:34:56",
    node_baud: int = NODE_BAUD,
    chip_revision: str | None = None,
    model_hash: str | None = None,
    config_hash: str | None = None,
    silent_app: bool = False,
    corrupt_md5: bool = False,
    max_baud: int | None = None,
    app_port: str | None = None,
    twin: str | None = None,
    verbose: bool = False,
) -> int:
    """The command's work (python -m tools.romsim): the simulator on a new pty until Ctrl-C or
    SIGTERM (the normal stop: exit 0, flash file saved).  `twin`: arguments of a
    `python -m tools.twin` started as the firmware (one string, split as a shell would)."""
    if flash_file:
        check_output(flash_file, "--flash-file")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop cleanly: save, end twin
    twin_args, twin = twin, None
    if twin_args is not None:
        import shlex
        import subprocess

        try:
            twin_args = shlex.split(twin_args)
        except ValueError as e:
            raise BadInput(f"--twin: {e}") from None
        twin = subprocess.Popen(
            [sys.executable, "-m", "tools.twin", *twin_args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
        line = twin.stdout.readline()
        if not line.startswith("earwitness twin on "):
            twin.wait()
            raise BadInput("the twin did not start (its error is above)")
        app_port = line.split()[-1]
    try:
        sim = RomSim(
            chip,
            mac=mac,
            flash_size=flash_size,
            flash_file=flash_file,
            boot=boot,
            node_baud=node_baud,
            model_hash=model_hash,
            config_hash=config_hash,
            chip_revision=chip_revision,
            silent_app=silent_app,
            corrupt_md5=corrupt_md5,
            max_baud=max_baud,
            app_port=app_port,
            log=(lambda s: print(s, file=sys.stderr)) if verbose else None,
        )
    except (ValueError, OSError) as e:
        if twin is not None:
            twin.terminate()
            twin.wait(10)
        raise BadInput(str(e)) from None
    sim.start()
    signal.signal(signal.SIGUSR1, lambda *_: sim.reset(True))
    signal.signal(signal.SIGUSR2, lambda *_: sim.reset(False))
    print(f"earwitness romsim on {sim.port} ({chip}, {sim.state})", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass  # Ctrl-C: the normal way to stop the simulator
    finally:
        sim.stop()
        if twin is not None:
            twin.terminate()
            twin.wait(10)
    return 0
