"""The simulated node ("twin"): the node application (the firmware's C code, tools/node/app.py) on a
pseudo-terminal, with a WAV/FLAC file, a folder of them, or silence as its microphone and the
exported model run by the tflite-micro interpreter.

    python -m tools.twin [AUDIO ...] [--model firmware/model] [--realtime] [--loop] [--silence]

prints `earwitness twin on /dev/pts/N` and serves the node protocol (docs/protocol.md) on that
pty until it is killed: any serial tool (`--port /dev/pts/N`), pyserial or a terminal program
can talk to it as to a flashed node.  Library use (tests, `--sim` in the host tools):

    from tools.sim import twin
    with twin.start("tests/audio/gunshot_1.wav") as t:      # a subprocess
        link = NodeLink(t.port) ...

What differs from the ESP32 firmware is only the host port (HostPort below):
  - link: a pty (no baud rate: CONFIG BAUD is stored and persisted, nothing else).  Output
    starts when a host that opened the pty sends its first bytes, or HOST_SETTLE_S after it
    opened it (so the boot HELLO is not lost to pyserial flushing its input while opening: as
    if the node booted with the host listening);
    while nobody has the pty open, output is held and dropped when it piles up (a UART with
    nothing attached) and a fast (non-paced) microphone waits;
  - microphone: audio files resampled (soxr) to 32 kHz and turned into 12-bit ADC codes (mid-scale
    bias, clipped), fed through ew_app_feed_adc, so conversion and decimation run as on the device;
    paced to real time with --realtime, otherwise as fast as the host reads (the twin stops
    feeding while its output is not being read); silence is always paced to real time; a new
    stream from the microphone (CMD START_STREAM 0, as tools.record sends) plays the audio again
    from its first sample (a board hears the room from whenever it starts; the twin's "room" is
    the file, and a recording of it starts with the file);
  - clock: the sample clock (audio time) or, with --realtime, the monotonic clock; inference
    times in STATUS are measured with the host's wall clock;
  - inference: tools.node.model (the tflite-micro interpreter on the exported .tflite);
  - NVS: memory, or a JSON file with --config FILE (survives restarts of the twin);
  - reboot (CMD REBOOT): re-initialisation of the app, a new HELLO with reset reason "sw";
  - alarm output and diagnostics: lines on stderr (--verbose), or with --uart-log as text on
    the link like the firmware's log output (plus ROM-style boot text before each HELLO);
  - ADC rate: 32 kHz (decimation x2), or 48 kHz with --adc-rate 48000 (x3).
"""

from __future__ import annotations

import errno
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from tools.errors import BadInput, check_output
from tools.node import params
from tools.sim.pty import open_raw_pty, write_some

ROOT = Path(__file__).resolve().parents[2]
ADC_RATE_HZ = 32000
ADC_BITS = 12
CHUNK_CODES = 1024  # ADC codes fed per step (512 samples at 16 kHz, 32 ms)
HIGH_WATER = 32 * 1024  # stop feeding the microphone above this many unsent bytes
HOST_SETTLE_S = 0.5  # output starts this long after a host opened the pty
# (or as soon as it sends something)
READY_RE = re.compile(r"earwitness twin on (\S+)")
AUDIO_EXTS = (".wav", ".flac")
STUB_LABELS = list(params.DEFAULT_LABELS)
FW_VERSION = (0, 2, 0)
RESET_POWERON, RESET_SW = 1, 3


class TwinError(BadInput):
    """A twin that cannot start, with the reason (exit 2)."""


# ---------------------------------------------------------------------------------------------
# Microphone


def audio_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files given, folders expanded (sorted, recursive, .wav/.flac)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_EXTS)
            if not found:
                raise TwinError(f"{p}: no .wav/.flac files in this folder")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise TwinError(f"{p}: no such file or folder")
    return out


def to_adc_codes(x: np.ndarray, sr: int, rate: int = ADC_RATE_HZ) -> np.ndarray:
    """Float audio (-1..1) at sr -> unsigned 12-bit ADC codes at `rate` (mid-scale bias, clipped)."""
    if sr != rate:
        import soxr

        x = soxr.resample(x, sr, rate, quality="HQ")
    half = 1 << (ADC_BITS - 1)
    return np.clip(np.round(x * half) + half, 0, (1 << ADC_BITS) - 1).astype(np.uint16)


def load_codes(path: Path, rate: int = ADC_RATE_HZ) -> np.ndarray:
    import soundfile as sf

    try:
        x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as e:  # soundfile raises RuntimeError / LibsndfileError
        raise TwinError(f"{path}: not a readable audio file ({e})") from None
    if x.size == 0:
        raise TwinError(f"{path}: contains no samples")
    x = x.mean(axis=1)
    if not np.all(np.isfinite(x)):
        raise TwinError(f"{path}: contains NaN/inf samples")
    return to_adc_codes(x, sr, rate)


class Microphone:
    """ADC code source: the files in order (optionally looped), then silence."""

    def __init__(self, files: Sequence[Path], loop: bool = False, rate: int = ADC_RATE_HZ):
        self.files, self.loop, self.rate = list(files), loop, rate
        self._it = self._chunks()
        self.codes_fed = 0
        self.silent = not self.files

    def _chunks(self) -> Iterator[np.ndarray]:
        while self.files:
            for f in self.files:
                codes = load_codes(f, self.rate)
                for i in range(0, codes.size, CHUNK_CODES):
                    yield codes[i : i + CHUNK_CODES]
            if not self.loop:
                break
        self.silent = True
        mid = np.full(CHUNK_CODES, 1 << (ADC_BITS - 1), np.uint16)
        while True:
            yield mid

    def rewind(self) -> None:
        """Play the audio again from its first sample (a new stream from the microphone)."""
        self._it = self._chunks()
        self.codes_fed = 0
        self.silent = not self.files

    def next(self) -> np.ndarray:
        c = next(self._it)
        self.codes_fed += c.size
        return c

    def check(self) -> None:
        """Load every file once up front so that bad input fails at start (exit 2)."""
        for f in self.files:
            load_codes(f, self.rate)


# ---------------------------------------------------------------------------------------------
# Classifier


def stub_classifier(scores: Sequence[int]):
    s = np.asarray(scores, np.int64)

    def classify(window, features):
        return s

    return classify


# ---------------------------------------------------------------------------------------------
# The twin process


class HostPort:
    """The host side of ew_port.h for the twin (everything that is not the firmware)."""

    def __init__(
        self,
        fd: int,
        realtime: bool,
        config_file: Path | None,
        verbose: bool,
        uart_log: bool = False,
    ):
        self.fd = fd
        self.out = bytearray()
        self.uart_log = uart_log
        self.realtime = realtime
        self.config_file = config_file
        self.verbose = verbose
        self.blob: bytes | None = None
        self.t0 = time.monotonic_ns()
        self.sample_us = 0
        self.reboot_requested = False
        self.baud = None
        if config_file is not None and config_file.exists():
            try:
                self.blob = bytes.fromhex(json.loads(config_file.read_text())["ew_app_blob"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.log(f"ignoring {config_file}: {e}")

    # ew_port_t
    def write(self, data: bytes) -> None:
        self.out += data

    def time_us(self) -> int:
        wall = (time.monotonic_ns() - self.t0) // 1000
        return wall if self.realtime else max(wall, self.sample_us)

    def config_load(self) -> bytes | None:
        return self.blob

    def config_save(self, blob: bytes) -> None:
        self.blob = bytes(blob)
        if self.config_file is not None:
            from tools.node import app

            doc = {
                "ew_app_blob": self.blob.hex(),
                "values": {f"0x{k:04x}": v for k, v in app.parse_config_blob(self.blob).items()},
            }
            tmp = self.config_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
            os.replace(tmp, self.config_file)

    def alarm(self, cls: int, ms: int) -> None:
        if self.verbose or self.uart_log:
            self.log(f"alarm: class {cls}, {ms} ms pulse")

    def set_baud(self, baud: int) -> None:
        self.baud = baud  # a pty has no baud rate
        if self.verbose:
            self.log(f"baud {baud} (no effect on a pty)")

    def reboot(self) -> None:
        self.reboot_requested = True

    def log(self, line: str) -> None:
        """Diagnostics: on stderr; with uart_log also as an ESP-IDF-style text line on the link
        (between frames, as the firmware's log output shares the UART)."""
        if self.uart_log:
            ms = (time.monotonic_ns() - self.t0) // 1_000_000
            self.out += f"I ({ms}) twin: {line}\r\n".encode("ascii", "replace")
        else:
            print(f"twin: {line}", file=sys.stderr, flush=True)

    def boot_banner(self, reason: str) -> None:
        """With uart_log: the text a booting ESP32 prints before the application's HELLO."""
        if self.uart_log:
            rst = "0x1 (POWERON_RESET)" if reason == "poweron" else "0xc (SW_CPU_RESET)"
            self.out += (
                f"ets Jun  8 2016 00:22:57\r\n\r\nrst:{rst},boot:0x13 "
                f"(SPI_FAST_FLASH_BOOT)\r\n"
                f"I (0) twin: earwitness twin (host port), fw "
                f"{'.'.join(map(str, FW_VERSION))}\r\n"
            ).encode()

    # link I/O
    def flush(self) -> None:
        """Write as much of the pending output as the pty takes now."""
        write_some(self.fd, self.out)


def build_app(
    port: HostPort,
    model,
    stub_scores,
    board: str,
    node_id: bytes,
    reset_reason: int = RESET_POWERON,
    adc_rate_hz: int = ADC_RATE_HZ,
):
    from tools.node import app

    if model is not None:
        labels, thresholds, classify, mhash = (
            model.labels,
            model.thresholds,
            model.classify,
            model.hash8,
        )
    else:
        labels = (
            STUB_LABELS[: len(stub_scores)]
            if len(stub_scores) <= len(STUB_LABELS)
            else [f"class{i}" for i in range(len(stub_scores))]
        )
        thresholds = [0.6] * (len(labels) - 1) + [None]
        classify, mhash = stub_classifier(stub_scores), bytes(8)
    return app.App(
        labels=labels,
        thresholds=thresholds,
        classify=classify,
        model_hash=mhash,
        board=board,
        fw_version=FW_VERSION,
        reset_reason=reset_reason,
        node_id=node_id,
        adc_rate_hz=adc_rate_hz,
        write=port.write,
        time_us=port.time_us,
        config_load=port.config_load,
        config_save=port.config_save,
        alarm=port.alarm,
        set_baud=port.set_baud,
        reboot=port.reboot,
        log=port.log,
    )


def serve(
    audio: Sequence[str] = (),
    model_dir: str | Path = params.MODEL_DIR,
    realtime: bool = False,
    loop: bool = False,
    silence: bool = False,
    config: str | None = None,
    board: str = "twin",
    node_id: bytes = bytes.fromhex("020000000001"),
    stub_scores: Sequence[int] | None = None,
    adc_rate: int = ADC_RATE_HZ,
    uart_log: bool = False,
    verbose: bool = False,
) -> int:
    """The simulated node on a new pty until SIGTERM/SIGINT (arguments checked by run())."""
    model = None
    if stub_scores is None:
        from tools.node import model as model_mod

        try:
            model = model_mod.load(model_dir)
            model.interpreter()
        except model_mod.ModelError as e:
            raise TwinError(str(e)) from None
        stub = None
    else:
        stub = list(stub_scores)
    rate = adc_rate
    mic = Microphone(
        audio_files(audio) if audio and not silence else [],
        loop=loop,
        rate=rate,
    )
    mic.check()

    master, slave = open_raw_pty(nonblocking=True)
    path = os.ttyname(slave)
    os.close(slave)  # POLLHUP on the master tells whether a host has it open
    port = HostPort(
        master,
        realtime,
        Path(config) if config else None,
        verbose,
        uart_log,
    )
    port.boot_banner("poweron")
    a = build_app(port, model, stub, board, node_id, adc_rate_hz=rate)
    print(f"earwitness twin on {path}", flush=True)

    stop = False

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    poller = select.poll()
    samples_seen = 0  # detector samples, across streams: the sample clock
    last_stream_samples = 0
    mic_t0, mic_codes = time.monotonic(), 0  # real-time pacing of the microphone
    connected_at = None  # when a host opened the pty (None: nobody has it open)
    host_spoke = False  # it has sent bytes: its open() (input flush) is over
    while not stop:
        now = time.monotonic()
        paced = realtime or mic.silent
        online = connected_at is not None and (host_spoke or now - connected_at >= HOST_SETTLE_S)
        feed = False
        timeout = 0.02
        if a.input != "mic":
            mic_t0, mic_codes = now, 0
        elif (online and len(port.out) < HIGH_WATER) or (not online and paced):
            if paced:
                due = mic_t0 + mic_codes / rate
                if now - due > 1.0:  # stalled (host not reading): like the
                    lost = int((now - due) * rate) // CHUNK_CODES  # device's DMA,
                    for _ in range(lost):  # lose that audio and report an overrun
                        mic.next()
                    if lost and a.input == "mic":
                        a.note_overrun(lost * CHUNK_CODES)
                    mic_t0, mic_codes, due = now, 0, now
                feed = now >= due
                timeout = 0 if feed else min(timeout, due - now)
            else:
                feed, timeout = True, 0
        poller.register(master, select.POLLIN | (select.POLLOUT if port.out and online else 0))
        try:
            events = poller.poll(int(timeout * 1000))
        except InterruptedError:
            continue
        ev = events[0][1] if events else 0
        if ev & select.POLLHUP:  # no host: hold output, drop it when it piles up
            connected_at, host_spoke = None, False
            if len(port.out) > HIGH_WATER:
                port.out.clear()
            if not feed:
                time.sleep(timeout)
        elif connected_at is None:
            connected_at = now  # a host opened the pty: let it settle (pyserial
        # host -> node                          # flushes its input while opening)
        if ev & select.POLLIN and not ev & select.POLLHUP:
            try:
                data = os.read(master, 65536)
            except (BlockingIOError, InterruptedError):
                data = b""
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                data = b""
            if data:
                host_spoke = True
                a.rx(data)
                if a.input == "mic" and a.stats["samples"] == 0 and mic.codes_fed:
                    # a new stream from the microphone (START_STREAM 0): the audio plays from
                    # its first sample, so a recording of the twin begins where its file does
                    mic.rewind()
                    mic_t0, mic_codes = time.monotonic(), 0
        if port.reboot_requested:
            port.reboot_requested = False
            port.boot_banner("sw")
            a.reinit(RESET_SW)
            last_stream_samples = 0
            feed = False
        # microphone
        if feed and a.input == "mic":
            codes = mic.next()
            a.feed_adc(codes)
            if paced:
                mic_codes += codes.size
            else:
                mic_t0, mic_codes = time.monotonic(), 0
        # clock, housekeeping, node -> host
        st = a.stats["samples"]
        samples_seen += st - last_stream_samples if st >= last_stream_samples else st
        last_stream_samples = st
        port.sample_us = samples_seen * 1000 // 16
        a.poll()
        if online:
            port.flush()
    os.close(master)
    return 0


def run(
    audio: Sequence[str] = (),
    model_dir: str | Path = params.MODEL_DIR,
    realtime: bool = False,
    loop: bool = False,
    silence: bool = False,
    config: str | None = None,
    board: str = "twin",
    node_id: str = "02:00:00:00:00:01",
    stub_scores: str | None = None,
    adc_rate: int = ADC_RATE_HZ,
    uart_log: bool = False,
    verbose: bool = False,
) -> int:
    """The command's work (python -m tools.twin), arguments as the command line gives them
    (node_id `02:00:00:00:00:01`, stub_scores `Q8,Q8,...`): checked (TwinError/BadInput:
    exit 2), then serve() until killed."""
    try:
        stub = None
        if stub_scores is not None:
            try:
                stub = [int(v) for v in stub_scores.split(",")]
            except ValueError:
                raise TwinError("--stub-scores: comma-separated integers 0..255") from None
            if not 1 <= len(stub) <= 16 or not all(0 <= v <= 255 for v in stub):
                raise TwinError("--stub-scores: 1..16 integers 0..255")
        try:
            nid = bytes.fromhex(node_id.replace(":", ""))
        except ValueError:
            nid = b""
        if len(nid) != 6:
            raise TwinError(f"--node-id {node_id}: 6 bytes, e.g. 02:00:00:00:00:01")
        if config:
            check_output(config, "--config")
        return serve(
            audio,
            model_dir,
            realtime=realtime,
            loop=loop,
            silence=silence,
            config=config,
            board=board,
            node_id=nid,
            stub_scores=stub,
            adc_rate=adc_rate,
            uart_log=uart_log,
            verbose=verbose,
        )
    except ValueError as e:
        raise BadInput(str(e)) from None


# ---------------------------------------------------------------------------------------------
# Library: run a twin in a subprocess


class Twin:
    """A running twin subprocess: `.port` (pty path), `.stop()`, context manager."""

    def __init__(self, proc: subprocess.Popen, port: str):
        self.proc = proc
        self.port = port

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def __enter__(self) -> Twin:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Twin(port={self.port!r}, pid={self.proc.pid})"


def start(
    audio=None,
    model=None,
    realtime: bool = False,
    *,
    loop: bool = False,
    silence: bool = False,
    config=None,
    board: str | None = None,
    node_id: str | None = None,
    stub_scores: Sequence[int] | None = None,
    verbose: bool = False,
    uart_log: bool = False,
    adc_rate: int | None = None,
    start_timeout: float = 120.0,
    stderr=None,
) -> Twin:
    """Start `python -m tools.twin` and wait for its pty path.

    audio: None (silence), a path, or a list of paths (files / folders); model: folder or
    manifest (default firmware/model); stub_scores: testing without a model.  start_timeout
    covers importing tflite-micro and loading the model.  Raises TwinError if the twin exits
    or prints nothing usable in time (its stderr is passed through, or to `stderr`)."""
    cmd = [sys.executable, "-m", "tools.twin"]
    if audio is not None:
        cmd += [str(a) for a in ([audio] if isinstance(audio, (str, Path)) else audio)]
    if model is not None:
        cmd += ["--model", str(model)]
    for flag, on in (
        ("--realtime", realtime),
        ("--loop", loop),
        ("--silence", silence),
        ("--verbose", verbose),
        ("--uart-log", uart_log),
    ):
        if on:
            cmd.append(flag)
    if config is not None:
        cmd += ["--config", str(config)]
    if board is not None:
        cmd += ["--board", board]
    if node_id is not None:
        cmd += ["--node-id", node_id]
    if adc_rate is not None:
        cmd += ["--adc-rate", str(adc_rate)]
    if stub_scores is not None:
        cmd += ["--stub-scores", ",".join(str(int(s)) for s in stub_scores)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the caller owns the twin's lifetime (Twin.close): a Ctrl-C at the terminal, which reaches
    # the whole process group, interrupts the caller only (Python keeps an inherited SIG_IGN)
    proc = subprocess.Popen(
        cmd,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + start_timeout
    line = ""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            line = proc.stdout.readline()
            m = READY_RE.search(line)
            if m:
                return Twin(proc, m.group(1))
            if line == "":  # EOF: the twin exited
                break
        elif proc.poll() is not None:
            break
    try:
        rc = proc.wait(5 if line == "" else 0.1)  # EOF: the twin is exiting
    except subprocess.TimeoutExpired:
        rc = None
    if rc is None:
        proc.kill()
        proc.wait()
        raise TwinError(f"twin did not report its pty within {start_timeout:.0f} s")
    raise TwinError(f"twin exited with status {rc} before reporting its pty")
