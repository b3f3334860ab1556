"""Flash earwitness nodes: build or take a firmware image, find the boards, write the image with
esptool, then check that each node boots and reports the expected model and configuration.

    python tools/flash.py --env esp32dev                    # pio run -e esp32dev, flash the one board
    python tools/flash.py --firmware .pio/build/esp32dev    # a PlatformIO build dir (3 files)
    python tools/flash.py --firmware merged.bin --port /dev/ttyUSB0
    python tools/flash.py --firmware merged.bin --all       # every board found, in parallel
    python tools/flash.py list                              # boards found by USB VID/PID
    python tools/flash.py verify --port /dev/ttyUSB0        # HELLO + hash check only
    python tools/flash.py image --firmware .pio/build/esp32dev -o merged.bin

Library first (each step is a function):

    from tools.esp import flash
    img = flash.load_image(".pio/build/esp32dev")           # FirmwareImage (segments, chip)
    res = flash.flash_node("/dev/ttyUSB0", img)             # FlashResult (.ok, .error, .hello)
    results = flash.flash_nodes(ports, img)                 # in parallel, one thread per node
    hello = flash.verify_node("/dev/ttyUSB0")               # protocol.Hello; raises FlashError

Flashing one node (`flash_node`):
 1. connect to the ROM loader at 115200 baud (esptool `detect_chip`, `Timeouts.connect_attempts`
    sync attempts; reset into download mode with DTR/RTS, or `no-reset` on a pty, where there
    are no modem lines), auto-detect the chip and refuse a different one than the image is for
    (or `--chip`): "wrong chip: expected esp32, found esp32c3";
 2. upload esptool's flasher stub (unless `--no-stub`), switch to `--baud` (921600) and check the
    link with one register read; if that or the write fails, reconnect and write again at
    `--fallback-baud` (115200);
 3. write the image (bootloader 0x1000 on ESP32 / 0x0 on S3 and C3, partition table 0x8000,
    app 0x10000; or one merged image at 0x0); esptool checks every region with SPI_FLASH_MD5;
 4. reset the board into the new firmware (`--after`: hard-reset via RTS; on a pty the ROM's
    "run user code"), reopen the port at the node baud (tools.link.NodeLink), wait for the HELLO
    sent at boot (`boot_s`), else request it (`hello_s` x `hello_tries`), and compare its model
    and config hashes with the expected ones: firmware/model/manifest.json model_sha256[:16] and
    tools.node.params.default().config_hash[:16] (`--expect-model-hash`, `--expect-config-hash`).
    A node that stays silent is listened to at 115200 baud once more: a bootloader that refuses
    the image logs why ("E (42) boot: ...") and resets over and over; its error lines are the
    reason reported.  esptool's refusal of an image built for another chip revision is final
    (no retry at the fallback baud).

Exit status: 0 every node OK; 1 a node failed (could not connect to its loader, write or MD5
verify failed, silent after flashing, hash mismatch, build failed); 2 bad usage or input (no
board found, no such port, missing or corrupt image, wrong chip, unknown env).  Expected errors
print one line per failed node on stderr, never a traceback.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python tools/flash.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.errors import ToolError
from tools.node import params
from tools.wire import esp_image
from tools.wire import link as _link
from tools.wire import protocol as pr
from tools.wire.ports import USB_IDS, Port, find_ports  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = params.MODEL_DIR

ROM_BAUD = 115200  # the ROM loader always syncs at this rate
DEFAULT_BAUD = 921600  # flashing baud tried first
FALLBACK_BAUD = 115200  # ... and the one used when it fails
NODE_BAUD = _link.DEFAULT_BAUD  # the earwitness firmware's serial baud

#: PlatformIO environments (platformio.ini) -> esptool chip name
ENV_CHIPS = {"esp32dev": "esp32", "esp32-s3-devkitc-1": "esp32s3", "esp32-c3-devkitm-1": "esp32c3"}
#: second-stage bootloader offset per chip; the partition table and app are the same on all
BOOTLOADER_OFFSETS = {
    "esp32": 0x1000,
    "esp32s2": 0x1000,
    "esp32s3": 0x0,
    "esp32c3": 0x0,
    "esp32c2": 0x0,
    "esp32c6": 0x0,
    "esp32h2": 0x0,
}
PARTITIONS_OFFSET = 0x8000
APP_OFFSET = 0x10000
#: the ESP image format's facts, in one place (tools.wire.esp_image: what the ROM checks)
IMAGE_CHIP_IDS = esp_image.CHIP_NAMES
ESP_IMAGE_MAGIC = esp_image.IMAGE_MAGIC
PARTITION_TABLE_MAGIC = esp_image.PARTITION_MAGIC
SUPPORTED_CHIPS = ("esp32", "esp32s3", "esp32c3")


class FlashError(ToolError):
    """An expected failure: one-line reason and the CLI exit code (1 node failed, 2 usage)."""


@dataclass
class Timeouts:
    """Every wait and retry of the flasher.  CLI: --connect-attempts, --boot-timeout, ...

    connect_attempts  esptool sync attempts (each ~0.5 s incl. a reset) before "cannot connect"
    open_s            reopening the port at the node baud after the reset
    boot_s            passive wait for the HELLO the node sends when it boots (0: skip, request)
    hello_s           waiting for HELLO after one HELLO request
    hello_tries       HELLO requests before "silent after flashing"
    build_s           `pio run` (a first build downloads ESP-IDF: many minutes)
    """

    connect_attempts: int = 7
    open_s: float = 2.0
    boot_s: float = 3.0
    hello_s: float = 1.0
    hello_tries: int = 3
    build_s: float = 3600.0

    def link_timeouts(self) -> _link.Timeouts:
        return _link.Timeouts(
            open_s=self.open_s,
            boot_s=self.boot_s,
            hello_s=self.hello_s,
            hello_tries=self.hello_tries,
        )


# --------------------------------------------------------------------------------------------
# Images


@dataclass
class Segment:
    offset: int
    data: bytes
    name: str


@dataclass
class FirmwareImage:
    """What gets written: segments at flash offsets, and the chip the image is for (None when
    the image does not say)."""

    segments: list[Segment]
    chip: str | None
    source: str

    @property
    def size(self) -> int:
        return sum(len(s.data) for s in self.segments)

    def merged(self) -> bytes:
        """One image from offset 0, gaps filled with 0xFF (erased flash)."""
        end = max(s.offset + len(s.data) for s in self.segments)
        out = bytearray(b"\xff" * end)
        for s in self.segments:
            out[s.offset : s.offset + len(s.data)] = s.data
        return bytes(out)

    def sha256(self) -> str:
        return hashlib.sha256(self.merged()).hexdigest()


def image_chip(data: bytes, offset: int = 0) -> str | None:
    """The chip an ESP image header at `offset` is built for (None: no header there)."""
    if len(data) < offset + 24 or data[offset] != ESP_IMAGE_MAGIC:
        return None
    cid = int.from_bytes(data[offset + 12 : offset + 14], "little")
    return IMAGE_CHIP_IDS.get(cid, f"chip-id-{cid}")


def _check_chip_arg(chip: str | None) -> str | None:
    if chip in (None, "auto"):
        return None
    if chip not in BOOTLOADER_OFFSETS:
        raise FlashError(f"unknown chip {chip!r} (one of {', '.join(SUPPORTED_CHIPS)})", 2)
    return chip


def load_image(path, chip: str | None = None) -> FirmwareImage:
    """A merged flash image (file) or a PlatformIO build dir (bootloader.bin, partitions.bin,
    firmware.bin).  Raises FlashError(exit 2) when missing or not an ESP32 flash image."""
    chip = _check_chip_arg(chip)
    p = Path(path)
    if not p.exists():
        raise FlashError(
            f"{p}: no such image (give a merged .bin or a PlatformIO build dir .pio/build/ENV)", 2
        )
    if p.is_dir():
        names = ("bootloader.bin", "partitions.bin", "firmware.bin")
        missing = [n for n in names if not (p / n).is_file()]
        if missing:
            raise FlashError(
                f"{p}: not a complete PlatformIO build dir (missing "
                f"{', '.join(missing)}; run `pio run -e ENV`)",
                2,
            )
        boot, parts, app = ((p / n).read_bytes() for n in names)
        if image_chip(boot) is None:
            raise FlashError(f"{p / 'bootloader.bin'}: corrupt image (no ESP image header)", 2)
        if image_chip(app) is None:
            raise FlashError(f"{p / 'firmware.bin'}: corrupt image (no ESP image header)", 2)
        if parts[:2] != PARTITION_TABLE_MAGIC:
            raise FlashError(
                f"{p / 'partitions.bin'}: corrupt partition table (no 0xAA50 entry)", 2
            )
        found = image_chip(boot)
        if chip and found != chip:
            raise FlashError(f"{p}: image is for {found}, --chip says {chip}", 2)
        env_chip = ENV_CHIPS.get(p.name)
        if env_chip and env_chip != found:
            raise FlashError(
                f"{p}: env {p.name} is {env_chip} but bootloader.bin is for {found}", 2
            )
        chip = found
        if chip not in BOOTLOADER_OFFSETS:
            raise FlashError(f"{p}: image for unsupported chip {chip}", 2)
        return FirmwareImage(
            [
                Segment(BOOTLOADER_OFFSETS[chip], boot, "bootloader.bin"),
                Segment(PARTITIONS_OFFSET, parts, "partitions.bin"),
                Segment(APP_OFFSET, app, "firmware.bin"),
            ],
            chip,
            str(p),
        )
    data = p.read_bytes()
    if not data:
        raise FlashError(f"{p}: empty image", 2)
    if data[PARTITIONS_OFFSET : PARTITIONS_OFFSET + 2] != PARTITION_TABLE_MAGIC:
        raise FlashError(
            f"{p}: not a merged flash image (no partition table at 0x8000; an "
            f"app-only firmware.bin goes in with its build dir)",
            2,
        )
    found = image_chip(data, 0)
    if found is None or BOOTLOADER_OFFSETS.get(found, 0) != 0:
        found = image_chip(data, 0x1000)
        if found is not None and BOOTLOADER_OFFSETS.get(found) != 0x1000:
            found = None
    if found is None:
        raise FlashError(
            f"{p}: not a merged flash image (no bootloader image header at 0x0 or 0x1000)", 2
        )
    if chip and found != chip:
        raise FlashError(f"{p}: image is for {found}, --chip says {chip}", 2)
    return FirmwareImage([Segment(0, data, p.name)], found, str(p))


def write_merged(image: FirmwareImage, out) -> Path:
    """Write the image as one file to flash at 0x0 (`esptool write-flash 0x0 OUT`)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(image.merged())
    return out


# --------------------------------------------------------------------------------------------
# Building

_OFFLINE_MARKERS = (
    "Could not resolve host",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Failed to establish a new connection",
    "Max retries exceeded",
    "HTTPClientError",
    "InternetIsOffline",
    "ConnectionError",
    "Network is unreachable",
    "registry.platformio.org",
    "api.registry",
    "Could not install",
    "UnknownPackageError",
    "PackageException",
    "timed out",
)


def find_pio() -> str | None:
    """`pio` on PATH or next to this Python (the venv's)."""
    p = shutil.which("pio") or shutil.which("platformio")
    if p:
        return p
    cand = Path(sys.executable).with_name("pio")
    return str(cand) if cand.exists() else None


def build(
    env: str,
    project_dir=ROOT,
    pio: str | None = None,
    timeouts: Timeouts | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """`pio run -e ENV` in project_dir; returns the build dir (.pio/build/ENV).

    FlashError: unknown env (2), no PlatformIO (2), PlatformIO could not download its
    toolchain (1, with the way out: build elsewhere and pass --firmware), build failed (1)."""
    timeouts = timeouts or Timeouts()
    if env not in ENV_CHIPS:
        raise FlashError(f"unknown env {env!r} (platformio.ini has {', '.join(ENV_CHIPS)})", 2)
    pio = pio or find_pio()
    if not pio:
        raise FlashError("PlatformIO not found (pip install platformio), or pass --firmware", 2)
    cmd = [pio, "run", "-e", env, "-d", str(project_dir)]
    if echo:
        echo(f"building: {' '.join(cmd)}")
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
        )
    except OSError as e:
        raise FlashError(f"cannot run {pio}: {e}", 2) from None
    timer = threading.Timer(timeouts.build_s, proc.kill)  # a first build takes minutes
    timer.start()
    lines: list[str] = []
    try:
        for ln in proc.stdout:  # live: the build can be long
            lines.append(ln.rstrip())
            if echo:
                echo(f"pio: {ln.rstrip()}")
        proc.wait()
    finally:
        timed_out = not timer.is_alive() and proc.returncode != 0
        timer.cancel()
        proc.stdout.close()
    if timed_out:
        raise FlashError(
            f"`pio run -e {env}` took longer than {timeouts.build_s:.0f} s (--build-timeout)", 1
        )
    out = "\n".join(lines)
    if proc.returncode != 0:
        if any(m.lower() in out.lower() for m in _OFFLINE_MARKERS):
            raise FlashError(
                f"PlatformIO could not fetch the ESP32 toolchain/ESP-IDF for {env} "
                f"(offline?): build on a machine with internet (`pio run -e {env}`) "
                f"and pass --firmware .pio/build/{env}",
                1,
            )
        last = next((ln.strip() for ln in reversed(out.splitlines()) if ln.strip()), "")
        raise FlashError(f"`pio run -e {env}` failed (exit {proc.returncode}): {last}", 1)
    bdir = Path(project_dir) / ".pio" / "build" / env
    if not bdir.is_dir():
        raise FlashError(f"`pio run -e {env}` succeeded but {bdir} is missing", 1)
    return bdir


# --------------------------------------------------------------------------------------------
# Ports


def is_pty(port: str) -> bool:
    """A pseudo-terminal (the simulators): no DTR/RTS lines to reset the chip with."""
    try:
        real = os.path.realpath(port)
        if real.startswith("/dev/pts/") or re.fullmatch(r"/dev/ttys\d+", real):  # Linux, macOS
            return True
        st = os.stat(real)
        return stat.S_ISCHR(st.st_mode) and 136 <= os.major(st.st_rdev) <= 143
    except (OSError, ValueError):
        return False


def resolve_ports(
    ports: Sequence[str] | None, all_: bool, comports: Sequence | None = None
) -> list[str]:
    """--port (repeatable) / --all / the one board found.  FlashError(2) when ambiguous or none."""
    if ports:
        if all_:
            raise FlashError("give --port or --all, not both", 2)
        for p in ports:
            if "://" not in p and not os.path.exists(p):
                raise FlashError(f"{p}: no such serial port (see `python tools/flash.py list`)", 2)
            try:
                _link.check_serial_path(p)  # a regular file or folder: exit 2
            except _link.LinkError as e:
                raise FlashError(str(e), 2) from None
        return list(dict.fromkeys(ports))
    found = find_ports(comports)
    names = ", ".join(sorted({b for b in USB_IDS.values()}))
    if not found:
        raise FlashError(
            f"no ESP32 board found by USB VID:PID ({names}): plug one in or give --port PATH", 2
        )
    if all_:
        return [p.device for p in found]
    if len(found) > 1:
        listing = ", ".join(f"{p.device} ({p.bridge})" for p in found)
        raise FlashError(f"{len(found)} boards found ({listing}): give --port PATH or --all", 2)
    return [found[0].device]


# --------------------------------------------------------------------------------------------
# Expected identity and the HELLO check


@dataclass
class Expected:
    """Hashes (16 hex digits = the 8 bytes HELLO carries) a correctly flashed node reports;
    None = not checked."""

    model_hash: str | None
    config_hash: str | None
    model_source: str = ""


def _hex8(v: str, what: str) -> str:
    s = v.strip().lower()
    if len(s) < 16 or not re.fullmatch(r"[0-9a-f]+", s):
        raise FlashError(f"{what} {v!r}: need at least 16 hex digits", 2)
    return s[:16]


def expected_hashes(
    model_dir=DEFAULT_MODEL_DIR, model_hash: str | None = None, config_hash: str | None = None
) -> Expected:
    """The expected HELLO hashes: overrides, else the shipped model's manifest and
    tools.node.params.default().config_hash.  No manifest -> the model hash is not checked."""
    src = "--expect-model-hash"
    if model_hash is None:
        man = Path(model_dir)
        man = man / "manifest.json" if man.is_dir() or not man.suffix else man
        if man.exists():
            try:
                model_hash = json.loads(man.read_text())["model_sha256"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise FlashError(
                    f"{man}: cannot read model_sha256 ({e}); pass --expect-model-hash", 2
                ) from None
            src = str(man)
        else:
            src = f"no {man}: not checked"
    if config_hash is None:
        config_hash = params.default().config_hash
    return Expected(
        _hex8(model_hash, "model hash") if model_hash else None,
        _hex8(config_hash, "config hash"),
        src,
    )


def check_identity(hello: pr.Hello, expected: Expected) -> None:
    """FlashError(1) when the node's HELLO hashes differ from the expected ones."""
    bad = []
    got_m, got_c = hello.model_hash.hex(), hello.config_hash.hex()
    if expected.model_hash and got_m != expected.model_hash:
        bad.append(f"model {got_m}, expected {expected.model_hash}")
    if expected.config_hash and got_c != expected.config_hash:
        bad.append(f"config {got_c}, expected {expected.config_hash}")
    if bad:
        raise FlashError("hash mismatch: node reports " + "; ".join(bad), 1)


def verify_node(
    port: str,
    expected: Expected | None = None,
    node_baud: int = NODE_BAUD,
    timeouts: Timeouts | None = None,
    after_boot: bool = False,
) -> pr.Hello:
    """Open the port at the node baud, get a HELLO (after_boot: first wait passively for the
    one sent at boot), check protocol version and hashes.  Returns the Hello; FlashError."""
    expected = expected if expected is not None else expected_hashes()
    hello = get_hello(port, node_baud, timeouts, after_boot)
    check_identity(hello, expected)
    return hello


def get_hello(
    port: str,
    node_baud: int = NODE_BAUD,
    timeouts: Timeouts | None = None,
    after_boot: bool = False,
) -> pr.Hello:
    """The node's HELLO (protocol version checked, hashes not).  FlashError: silent (1),
    unknown protocol version (2), port problems (tools.link's exit codes)."""
    timeouts = timeouts or Timeouts()
    try:
        with _link.NodeLink(port, node_baud, timeouts.link_timeouts()) as nl:
            hello = None
            if after_boot and timeouts.boot_s > 0:
                try:
                    hello = nl.wait_hello(timeouts.boot_s)
                except _link.LinkError as e:
                    if e.exit_code == 2:
                        raise
            if hello is None:
                hello = nl.hello()
    except _link.LinkError as e:
        msg = str(e)
        if msg.startswith(f"{port}: "):
            msg = msg[len(port) + 2 :]  # the port is named once, by the caller
        if e.exit_code == 1 and after_boot:
            msg = f"silent after flashing: {msg}"
        raise FlashError(msg, e.exit_code) from None
    return hello


def boot_log_errors(port: str, seconds: float = 1.5) -> list[str]:
    """The error lines ("E (ms) tag: text") a node prints at the ROM baud, read for up to
    `seconds`: a bootloader that refuses the flashed app logs why and resets, over and over.
    Read with DTR and RTS released (no reset); [] when the port cannot be read."""
    import serial

    buf = b""
    try:
        s = serial.Serial()
        s.port, s.baudrate, s.timeout = port, ROM_BAUD, 0.1
        s.dtr = s.rts = False
        s.open()
        with s:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                buf += s.read(4096)
                if re.search(rb"E \(\d+\) [^\r\n]*\n[\s\S]*\n", buf):
                    break  # an error line and what follows it
    except (serial.SerialException, OSError, ValueError):
        return []
    found: list[str] = []
    for ln in buf.decode("latin-1").splitlines():
        m = re.search(r"E \(\d+\) \S+: [ -~]+", ln)
        if m and m.group(0).strip() not in found:
            found.append(m.group(0).strip())
    return found


# --------------------------------------------------------------------------------------------
# esptool output: routed per thread (parallel flashing), kept for error context

_tls = threading.local()
_log_lock = threading.Lock()
_log_users = 0
_log_saved = None


def _plain(args) -> str:
    s = " ".join(str(a) for a in args)
    try:
        from rich.text import Text

        return Text.from_markup(s).plain
    except Exception:  # noqa: BLE001 - not markup after all
        return s


def _make_logger():
    from esptool.logger import TemplateLogger

    class _ThreadLog(TemplateLogger):
        """esptool's log (installed with its documented `log.set_logger`): each message goes to
        the sink of the thread that flashes."""

        def _emit(self, text: str) -> None:
            sink = getattr(_tls, "sink", None)
            if sink is not None:
                for ln in text.splitlines() or [""]:
                    if ln.strip():
                        sink(ln.rstrip())

        def print(self, *args, **kwargs) -> None:
            self._emit(_plain(args))

        def error(self, message: str, suggestion=None) -> None:
            self._emit("error: " + _plain((message,)))

        def warning(self, message: str, suggestion=None) -> None:
            self._emit("warning: " + _plain((message,)))

        err, warn = error, warning  # the names esptool's adapter calls

        def note(self, message: str) -> None:
            self._emit("note: " + _plain((message,)))

        def debug(self, *args) -> None:
            pass

        def stage(self, finish: bool = False) -> None:
            pass

        def set_verbosity(self, verbosity) -> None:
            pass

        def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
            pass

    return _ThreadLog()


class _esptool_output:
    """Install the per-thread logger while any flash runs; restore esptool's afterwards."""

    def __init__(self, sink: Callable[[str], None]):
        self.sink = sink

    def __enter__(self):
        global _log_users, _log_saved
        from esp_pylib.logger import EspLog

        with _log_lock:
            if _log_users == 0:
                # esptool's documented `log.set_logger`, called on esptool's own logger (the
                # proxy `log` forwards to whichever logger is installed), which is put back on exit
                _log_saved = EspLog.instance
                _log_saved.set_logger(_make_logger())
            _log_users += 1
        _tls.sink = self.sink
        return self

    def __exit__(self, *exc):
        global _log_users
        _tls.sink = None
        with _log_lock:
            _log_users -= 1
            if _log_users == 0:
                _log_saved.set_logger(_log_saved)


# --------------------------------------------------------------------------------------------
# Flashing


@dataclass
class FlashOptions:
    """Everything flash_node needs besides the port and the image.

    chip          expected chip (None: the image's); a different detected chip is an error
    baud          flashing baud tried first; fallback_baud after a failure at `baud`
    stub          upload esptool's flasher stub (faster, compressed writes)
    before/after  esptool reset modes; "auto" = default-reset/hard-reset, on a pty
                  no-reset/run (the ROM's "run user code": a pty has no DTR/RTS)
    verify_hello  after the reset, wait for HELLO and check the hashes against `expected`
                  (None: expected_hashes(), i.e. the shipped model and tools.node.params)
    """

    chip: str | None = None
    baud: int = DEFAULT_BAUD
    fallback_baud: int = FALLBACK_BAUD
    stub: bool = True
    before: str = "auto"
    after: str = "auto"
    node_baud: int = NODE_BAUD
    verify_hello: bool = True
    expected: Expected | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    verbose: bool = False  # pass esptool's own output to `echo` as it comes


@dataclass
class FlashResult:
    port: str
    ok: bool = False
    exit_code: int = 1
    chip: str | None = None
    description: str = ""
    mac: str = ""
    baud: int | None = None
    bytes_written: int = 0
    md5_verified: bool = False
    hello: pr.Hello | None = None
    hello_checked: bool = False
    error: str | None = None
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("hello", "log")}
        h = self.hello
        d["hello"] = (
            None
            if h is None
            else {
                "proto_version": h.proto_version,
                "fw_version": h.fw_version,
                "board": h.board,
                "node_id": h.node_id.hex(":"),
                "model_hash": h.model_hash.hex(),
                "config_hash": h.config_hash.hex(),
                "labels": h.labels,
            }
        )
        return d


def chip_key(chip_name: str) -> str:
    """esptool's CHIP_NAME ("ESP32-C3") as a --chip name ("esp32c3")."""
    return chip_name.lower().replace("-", "")


def _resolve_reset(port: str, before: str, after: str) -> tuple[str, str]:
    pty = is_pty(port)
    if before == "auto":
        before = "no-reset" if pty else "default-reset"
    if after == "auto":
        after = "run" if pty else "hard-reset"
    return before, after


def _connect(port: str, before: str, attempts: int):
    from esptool.cmds import detect_chip

    return detect_chip(port, ROM_BAUD, before, False, attempts)


def _close(esp) -> None:
    try:
        if esp is not None and esp._port is not None:
            esp._port.close()
    except Exception:  # noqa: BLE001 - closing a vanished port
        pass


def _leave_loader(esp, after: str) -> None:
    """Reset into the new firmware.  "run": the ROM's "run user code" (FLASH_BEGIN 0 +
    FLASH_END), after taking the stub back to the ROM loader; works without DTR/RTS."""
    from esptool.cmds import reset_chip

    if after != "run":
        reset_chip(esp, after)
        return
    if esp.IS_STUB:
        esp.soft_reset(True)  # stub -> ROM loader (FLASH_END "reboot")
        esp.IS_STUB = False  # talk to the ROM from here on
    esp.soft_reset(False)  # ROM: leave the loader, run the app


def _flash_once(
    port: str,
    image: FirmwareImage,
    opts: FlashOptions,
    baud: int,
    res: FlashResult,
    say: Callable[[str], None],
) -> None:
    """Connect, check the chip, (stub), baud, write + MD5 verify, reset.  Raises
    FlashError (connect/chip) or esptool's FatalError / SerialException (link, write)."""
    from esptool.cmds import attach_flash, run_stub, write_flash
    from esptool.loader import ESPLoader
    from esptool.util import FatalError

    before, after = _resolve_reset(port, opts.before, opts.after)
    t = opts.timeouts
    try:
        esp = _connect(port, before, t.connect_attempts)
    except (FatalError, OSError) as e:
        hint = "" if before != "no-reset" else " (no-reset: put the board in download mode)"
        raise FlashError(f"cannot connect to the ROM loader: {_one_line(e)}{hint}", 1) from None
    try:
        found = chip_key(esp.CHIP_NAME)
        res.chip = found
        want = opts.chip or image.chip
        if want and found != want:
            raise FlashError(f"wrong chip: expected {want}, found {found}", 2)
        try:
            res.description = esp.get_chip_description()
            res.mac = ":".join(f"{b:02x}" for b in esp.read_mac())
        except (FatalError, OSError, TypeError, ValueError):
            pass
        if opts.stub:
            esp = run_stub(esp)
        res.baud = ROM_BAUD
        if baud > ROM_BAUD:
            esp.change_baud(baud)
            esp.read_reg(ESPLoader.CHIP_DETECT_MAGIC_REG_ADDR)  # is the link alive?
            res.baud = baud
        say(
            f"{res.description or found}, MAC {res.mac or '?'}: writing {image.size} bytes "
            f"at {res.baud} baud"
        )
        attach_flash(esp)
        write_flash(
            esp,
            [(s.offset, s.data) for s in image.segments],
            flash_mode="keep",
            flash_freq="keep",
            flash_size="keep",
            no_progress=True,
        )
        res.bytes_written = image.size
        res.md5_verified = True  # write_flash raises when SPI_FLASH_MD5 differs
        try:
            _leave_loader(esp, after)
        except (FatalError, OSError, StopIteration) as e:
            say(
                f"could not reset into the firmware ({_one_line(e)}): press the board's "
                f"reset button"
            )
    finally:
        _close(esp)


def _one_line(e: BaseException) -> str:
    s = " ".join(str(e).split())
    return s or type(e).__name__


def flash_node(
    port: str,
    image: FirmwareImage,
    opts: FlashOptions | None = None,
    echo: Callable[[str], None] | None = None,
) -> FlashResult:
    """Flash one node and check its HELLO.  Returns the FlashResult (ok, or error + exit_code);
    never raises for an expected failure.  `echo` gets progress lines (and, verbose, esptool's)."""
    opts = opts or FlashOptions()
    res = FlashResult(port)
    t0 = time.monotonic()

    def say(msg: str) -> None:
        if echo:
            echo(f"{port}: {msg}")

    def keep(line: str) -> None:
        res.log.append(line)
        if opts.verbose:
            say(f"esptool: {line}")

    import serial
    from esptool.util import FatalError

    try:
        if opts.chip:
            _check_chip_arg(opts.chip)
        with _esptool_output(keep):
            bauds = [opts.baud] + ([opts.fallback_baud] if opts.fallback_baud < opts.baud else [])
            for i, baud in enumerate(bauds):
                try:
                    _flash_once(port, image, opts, baud, res, say)
                    break
                except (FatalError, serial.SerialException, OSError, StopIteration) as e:
                    reason = (
                        _one_line(e)
                        if not isinstance(e, StopIteration)
                        else "the chip stopped responding"
                    )
                    if "MD5" in reason or "does not match" in reason:
                        raise FlashError(f"flash verify failed: {reason}", 1) from None
                    if "requires chip revision" in reason:  # no baud problem: no retry
                        raise FlashError(f"image refused: {reason}", 1) from None
                    if i + 1 == len(bauds):
                        raise FlashError(f"flash failed at {baud} baud: {reason}", 1) from None
                    say(f"{baud} baud failed ({reason}); retrying at {bauds[i + 1]} baud")
        say(f"wrote {res.bytes_written} bytes, MD5 verified")
        if opts.verify_hello:
            try:
                res.hello = get_hello(port, opts.node_baud, opts.timeouts, after_boot=True)
            except FlashError as e:
                errors = boot_log_errors(port) if e.exit_code == 1 else []
                if errors:
                    raise FlashError(
                        f"the chip did not start the firmware; its boot log at "
                        f"{ROM_BAUD} baud says: {'; '.join(errors)}",
                        1,
                    ) from None
                raise
            check_identity(
                res.hello, opts.expected if opts.expected is not None else expected_hashes()
            )
            res.hello_checked = True
            h = res.hello
            say(
                f"HELLO: firmware {h.fw_version}, board {h.board or '?'}, "
                f"model {h.model_hash.hex()}, config {h.config_hash.hex()}: hashes OK"
            )
        res.ok, res.exit_code = True, 0
    except FlashError as e:
        res.error, res.exit_code = str(e), e.exit_code
    except Exception as e:  # noqa: BLE001 - a bug here must not kill the others
        res.error, res.exit_code = f"unexpected {type(e).__name__}: {_one_line(e)}", 1
    res.seconds = time.monotonic() - t0
    return res


def flash_nodes(
    ports: Sequence[str],
    image: FirmwareImage,
    opts: FlashOptions | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[FlashResult]:
    """flash_node on every port, in parallel (one thread per node); results in port order."""
    opts = opts or FlashOptions()
    if len(ports) == 1:
        return [flash_node(ports[0], image, opts, echo)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(ports)) as ex:
        futs = [ex.submit(flash_node, p, image, opts, echo) for p in ports]
        return [f.result() for f in futs]


def summary_table(results: Sequence[FlashResult]) -> str:
    """One line per node: port, chip, baud, bytes, MD5, HELLO, model/config hash, result."""
    head = ("port", "chip", "baud", "bytes", "md5", "hello", "model", "config", "s", "result")
    rows = [head]
    for r in results:
        h = r.hello
        rows.append(
            (
                r.port,
                r.chip or "?",
                str(r.baud or "-"),
                str(r.bytes_written or "-"),
                "ok" if r.md5_verified else "-",
                "ok" if r.hello_checked else "bad" if h else "-",
                h.model_hash.hex() if h else "-",
                h.config_hash.hex() if h else "-",
                f"{r.seconds:.1f}",
                "OK" if r.ok else f"FAIL: {r.error}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows
    )


# --------------------------------------------------------------------------------------------
# Command line

SUBCOMMANDS = ("flash", "list", "verify", "image")


def timeouts_of(
    open_s: float,
    hello_s: float,
    hello_tries: int,
    connect_attempts: int | None = None,
    boot_s: float | None = None,
    build_s: float | None = None,
) -> Timeouts:
    """Timeouts from the command's values (connect_attempts/boot_s/build_s: flash only),
    checked (FlashError, exit 2)."""
    t = Timeouts(open_s=open_s, hello_s=hello_s, hello_tries=hello_tries)
    if connect_attempts is not None:
        t.connect_attempts, t.boot_s, t.build_s = connect_attempts, boot_s, build_s
    for name in ("connect_attempts", "hello_tries"):
        if getattr(t, name) < 1:
            raise FlashError(f"--{name.replace('_', '-')} must be at least 1", 2)
    for name in ("open_s", "boot_s", "hello_s", "build_s"):
        if getattr(t, name) < 0:
            raise FlashError(f"{name}: negative timeout", 2)
    return t


def _printer(quiet: bool = False) -> Callable[[str], None]:
    lock = threading.Lock()

    def echo(msg: str) -> None:
        if not quiet:
            with lock:
                print(msg, flush=True)

    return echo


def image_of(
    env: str | None,
    firmware: str | None,
    chip: str = "auto",
    pio: str | None = None,
    project_dir: str | Path = ROOT,
    build_s: float | None = None,
    echo: Callable[[str], None] | None = None,
) -> FirmwareImage:
    """The image of --env ENV (built here) or --firmware PATH; chip "auto": the image's."""
    chip = None if chip == "auto" else chip
    if env:
        t = Timeouts() if build_s is None else Timeouts(build_s=build_s)
        bdir = build(env, Path(project_dir), pio, t, echo or _printer())
        img = load_image(bdir, chip)
        if img.chip != ENV_CHIPS[env]:
            raise FlashError(
                f"{bdir}: built image is for {img.chip}, env {env} is {ENV_CHIPS[env]}", 2
            )
        return img
    if not firmware:
        raise FlashError("give --env ENV (build) or --firmware PATH (merged .bin or build dir)", 2)
    return load_image(firmware, chip)


def cmd_flash(
    ports: list[str] | None,
    all_boards: bool,
    timeouts: dict,
    env: str | None = None,
    firmware: str | None = None,
    pio: str | None = None,
    project_dir: str | Path = ROOT,
    chip: str = "auto",
    baud: int = DEFAULT_BAUD,
    fallback_baud: int = FALLBACK_BAUD,
    stub: bool = True,
    before: str = "auto",
    after: str = "auto",
    verify_hello: bool = True,
    model_dir: str | Path = DEFAULT_MODEL_DIR,
    expect_model_hash: str | None = None,
    expect_config_hash: str | None = None,
    node_baud: int = NODE_BAUD,
    as_json: bool = False,
    verbose: bool = False,
) -> int:
    """`python tools/flash.py flash`: build or take the image, flash the node(s), check HELLO;
    `timeouts`: timeouts_of()'s arguments, as given."""
    echo = _printer(as_json)
    t = timeouts_of(**timeouts)
    ports = resolve_ports(ports, all_boards)
    image = image_of(env, firmware, chip, pio, project_dir, t.build_s, echo)
    expected = (
        expected_hashes(model_dir, expect_model_hash, expect_config_hash) if verify_hello else None
    )
    opts = FlashOptions(
        chip=None if chip == "auto" else chip,
        baud=baud,
        fallback_baud=fallback_baud,
        stub=stub,
        before=before,
        after=after,
        node_baud=node_baud,
        verify_hello=verify_hello,
        expected=expected,
        timeouts=t,
        verbose=verbose,
    )
    want = ""
    if expected:
        want = (
            f"; expecting model {expected.model_hash} ({expected.model_source})"
            if expected.model_hash
            else f"; model hash: {expected.model_source}"
        )
        want += f", config {expected.config_hash}"
    echo(
        f"image {image.source}: {image.size} bytes for {image.chip or '?'}, sha256 "
        f"{image.sha256()[:16]}{want}"
    )
    results = flash_nodes(ports, image, opts, echo)
    return _report(results, as_json)


def _report(results: Sequence[FlashResult], as_json: bool) -> int:
    if as_json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    elif len(results) > 1:
        print(summary_table(results))
    for r in results:
        if not r.ok:
            print(f"flash: error: {r.port}: {r.error}", file=sys.stderr)
    return max((r.exit_code for r in results), default=0)


def cmd_verify(
    ports: list[str] | None,
    all_boards: bool,
    timeouts: dict,
    model_dir: str | Path = DEFAULT_MODEL_DIR,
    expect_model_hash: str | None = None,
    expect_config_hash: str | None = None,
    node_baud: int = NODE_BAUD,
    as_json: bool = False,
) -> int:
    """`python tools/flash.py verify`: HELLO + hash check of running node(s)."""
    timeouts = timeouts_of(**timeouts)
    ports = resolve_ports(ports, all_boards)
    expected = expected_hashes(model_dir, expect_model_hash, expect_config_hash)

    def one(port: str) -> FlashResult:
        r = FlashResult(port)
        t0 = time.monotonic()
        try:
            r.hello = get_hello(port, node_baud, timeouts)
            check_identity(r.hello, expected)
            r.hello_checked, r.ok, r.exit_code = True, True, 0
        except FlashError as e:
            r.error, r.exit_code = str(e), e.exit_code
        r.seconds = time.monotonic() - t0
        return r

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(ports)) as ex:
        results = list(ex.map(one, ports))
    if not as_json:
        for r in results:
            if r.ok:
                h = r.hello
                print(
                    f"{r.port}: firmware {h.fw_version}, board {h.board or '?'}, node "
                    f"{h.node_id.hex(':')}, model {h.model_hash.hex()}, config "
                    f"{h.config_hash.hex()}: OK"
                )
    return _report(results, as_json)


def cmd_list(as_json: bool = False) -> int:
    """`python tools/flash.py list`: the serial ports of ESP32 boards."""
    ports = find_ports()
    if as_json:
        print(json.dumps([dataclasses.asdict(p) for p in ports], indent=2))
        return 0
    if not ports:
        print(
            "no ESP32 board found by USB VID:PID ("
            + ", ".join(f"{v:04x}:{p:04x} {n}" for (v, p), n in USB_IDS.items())
            + ")"
        )
    for p in ports:
        print(
            f"{p.device}  {p.vid:04x}:{p.pid:04x}  {p.bridge}  {p.description}"
            + (f"  serial {p.serial_number}" if p.serial_number else "")
        )
    return 0


def cmd_image(
    output: str | Path,
    env: str | None = None,
    firmware: str | None = None,
    pio: str | None = None,
    project_dir: str | Path = ROOT,
    chip: str = "auto",
    build_s: float | None = None,
) -> int:
    """`python tools/flash.py image`: merge a build dir (or an --env build) into one image."""
    image = image_of(env, firmware, chip, pio, project_dir, build_s, _printer())
    out = write_merged(image, output)
    print(
        f"{out}: {out.stat().st_size} bytes for {image.chip or '?'} (write at 0x0), sha256 "
        f"{image.sha256()}"
    )
    return 0
