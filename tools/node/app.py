"""Python binding of the node application (firmware/lib/ewcore ew_app*.c, ctypes): the code the
firmware runs above its drivers, with its port (ew_port.h) implemented by Python callables.

The simulated node (tools/twin.py) is this plus a pty; tests drive it directly:

    from tools.node import app
    out = bytearray()
    a = app.App(labels=["gunshot", "other"], write=out.extend,
                classify=lambda window, features: [200, 0])
    a.rx(wire_bytes_from_host); a.poll()
    a.feed_adc(codes_32khz)          # microphone: 12-bit ADC codes, decimated like the device
    a.stats["samples"], a.config_get(protocol.CFG_MODE)

Port callables (all optional except write and classify):
    write(data: bytes) -> None             bytes for the host (one whole frame per call)
    classify(window: core.WindowRec, features: int8 (64, 40)) -> n_classes Q0.8 scores
    time_us() -> int                       monotonic µs (default: time.monotonic_ns)
    perf_us() -> int                       times classify (default: time.perf_counter_ns)
    config_load() -> bytes | None          persisted blob (ew_app.h "Persistence")
    config_save(blob: bytes) -> None
    alarm(class_index: int, pulse_ms: int) -> None
    set_baud(baud: int) -> None            raise to report an unsupported rate
    reboot() -> None                       called after the ACK; call App.reinit() later
    log(line: str) -> None
An exception raised by a callable is kept and re-raised by the App method that triggered it
(it never unwinds through C); the C side sees a failure for that call.
"""

from __future__ import annotations

import ctypes as C
import time
from collections.abc import Callable, Sequence

import numpy as np

from tools.node import core
from tools.node import params as _params

lib = core.lib
P = _params.default()

INPUT_MIC, INPUT_INJECT, INPUT_STOPPED = 0, 1, 2
INPUT_NAMES = {INPUT_MIC: "mic", INPUT_INJECT: "inject", INPUT_STOPPED: "stopped"}
ERR_ARG, ERR_FACTOR, ERR_CONFIG = -1, -2, -3
ERR_KEY, ERR_VALUE, ERR_STATE = -10, -11, -12
CONFIG_MAX = 512

WRITE_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(C.c_uint8), C.c_size_t)
TIME_FN = C.CFUNCTYPE(C.c_uint64, C.c_void_p)
CLASSIFY_FN = C.CFUNCTYPE(
    C.c_int,
    C.c_void_p,
    C.POINTER(core.Window),
    C.POINTER(C.c_int8),
    C.POINTER(C.c_uint8),
    C.c_uint8,
)
LOAD_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(C.c_uint8), C.c_size_t)
SAVE_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(C.c_uint8), C.c_size_t)
ALARM_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_uint8, C.c_uint32)
BAUD_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_uint32)
REBOOT_FN = C.CFUNCTYPE(None, C.c_void_p)
LOG_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p)


class Port(C.Structure):
    _fields_ = [
        ("ctx", C.c_void_p),
        ("write", WRITE_FN),
        ("time_us", TIME_FN),
        ("perf_us", TIME_FN),
        ("classify", CLASSIFY_FN),
        ("config_load", LOAD_FN),
        ("config_save", SAVE_FN),
        ("alarm", ALARM_FN),
        ("set_baud", BAUD_FN),
        ("reboot", REBOOT_FN),
        ("log", LOG_FN),
    ]


class AppInfo(C.Structure):
    _fields_ = [
        ("board", C.c_char_p),
        ("fw_major", C.c_uint8),
        ("fw_minor", C.c_uint8),
        ("fw_patch", C.c_uint8),
        ("reset_reason", C.c_uint8),
        ("model_hash", C.c_uint8 * 8),
        ("config_hash", C.c_uint8 * 8),
        ("node_id", C.c_uint8 * 6),
        ("n_classes", C.c_uint8),
        ("labels", C.POINTER(C.c_char_p)),
        ("thresholds_q8", C.POINTER(C.c_uint16)),
        ("quant", core.Quant),
        ("adc_rate_hz", C.c_uint32),
        ("default_baud", C.c_uint32),
    ]


class AppStats(C.Structure):
    _fields_ = [
        ("samples", C.c_uint64),
        ("input", C.c_uint8),
        ("credits", C.c_uint32),
        ("inject_queued", C.c_uint32),
        ("rx_frames", C.c_uint32),
        ("rx_bad_frames", C.c_uint32),
        ("rx_unknown", C.c_uint32),
        ("rx_bad_payload", C.c_uint32),
        ("rx_seq_gaps", C.c_uint32),
        ("tx_frames", C.c_uint32),
        ("tx_bytes", C.c_uint32),
        ("tx_errors", C.c_uint32),
        ("inject_samples", C.c_uint32),
        ("inject_no_credit", C.c_uint32),
        ("inject_gap_samples", C.c_uint32),
        ("inject_overlap_samples", C.c_uint32),
        ("dropped_samples", C.c_uint32),
        ("audio_frames", C.c_uint32),
        ("audio_skipped_samples", C.c_uint32),
        ("status_frames", C.c_uint32),
        ("events", C.c_uint32),
        ("inference_count", C.c_uint32),
        ("inference_us_last", C.c_uint32),
        ("inference_us_max", C.c_uint32),
        ("persist_errors", C.c_uint32),
    ]


#: the ctypes mirrors of this module and their C types (checked at import)
MIRRORS = {Port: "ew_port_t", AppInfo: "ew_app_info_t", AppStats: "ew_app_stats_t"}
core.check_layout(MIRRORS)


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_u16p = np.ctypeslib.ndpointer(np.uint16, flags="C_CONTIGUOUS")
_i16p = np.ctypeslib.ndpointer(np.int16, flags="C_CONTIGUOUS")
_sig("ew_app_sizeof", C.c_size_t)
_sig("ew_app_init", C.c_int, C.c_void_p, C.POINTER(AppInfo), C.POINTER(Port))
_sig("ew_app_rx", None, C.c_void_p, C.c_char_p, C.c_size_t)
_sig("ew_app_feed_adc", C.c_int, C.c_void_p, _u16p, C.c_size_t)
_sig("ew_app_feed_pcm16", C.c_int, C.c_void_p, _i16p, C.c_size_t)
_sig("ew_app_note_overrun", None, C.c_void_p, C.c_uint32)
_sig("ew_app_poll", None, C.c_void_p)
_sig("ew_app_config_get", C.c_int, C.c_void_p, C.c_uint16, C.POINTER(C.c_int32))
_sig("ew_app_config_set", C.c_int, C.c_void_p, C.c_uint16, C.c_int32, C.POINTER(C.c_int32))
_sig("ew_app_factory_reset", None, C.c_void_p)
_sig("ew_app_set_input", C.c_int, C.c_void_p, C.c_uint8)
_sig("ew_app_send_hello", None, C.c_void_p)
_sig("ew_app_send_status", None, C.c_void_p)
_sig("ew_app_send_error", None, C.c_void_p, C.c_uint16, C.c_uint16, C.c_char_p)
_sig("ew_app_get_stats", None, C.c_void_p, C.POINTER(AppStats))
_sig("ew_app_config_blob", C.c_int, C.c_void_p, C.POINTER(C.c_uint8), C.c_size_t)
_sig("ew_app_limits", C.c_int, C.POINTER(C.c_uint32), C.c_int)

APP_SIZE = lib.ew_app_sizeof()
_lim = (C.c_uint32 * 8)()
lib.ew_app_limits(_lim, 8)
#: build-time sizes of the C app (ew_app.h)
LIMITS = dict(
    zip(
        (
            "inject_samples",
            "credit_step",
            "audio_ring_samples",
            "event_preroll_samples",
            "event_postroll_samples",
            "audio_frame_samples",
        ),
        list(_lim)[:6],
    )
)


class AppError(Exception):
    """ew_app refused a call; `code` is the C return code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def config_hash8() -> bytes:
    """First 8 bytes of the core configuration hash (EW_CONFIG_HASH8)."""
    return bytes.fromhex(P.config_hash[:16])


def thresholds_q8(thresholds: Sequence[float | None]) -> list[int]:
    """Manifest-style thresholds (probability or None) -> Q0.8 (256 = off), as core.Node."""
    return [core.THRESHOLD_OFF if t is None else int(round(t * 256)) for t in thresholds]


class App:
    """One ew_app_t with a Python port.  See the module docstring."""

    def __init__(
        self,
        *,
        labels: Sequence[str],
        write: Callable[[bytes], object],
        classify: Callable,
        thresholds: Sequence[float | None] | None = None,
        model_hash: bytes = bytes(8),
        board: str = "twin",
        fw_version: tuple[int, int, int] = (0, 0, 0),
        reset_reason: int = 1,
        node_id: bytes = bytes(6),
        config_hash: bytes | None = None,
        adc_rate_hz: int = 32000,
        default_baud: int = 0,
        time_us: Callable[[], int] | None = None,
        perf_us: Callable[[], int] | None = None,
        config_load: Callable[[], bytes | None] | None = None,
        config_save: Callable[[bytes], object] | None = None,
        alarm: Callable[[int, int], object] | None = None,
        set_baud: Callable[[int], object] | None = None,
        reboot: Callable[[], object] | None = None,
        log: Callable[[str], object] | None = None,
    ):
        self.labels = list(labels)
        self.n_classes = len(self.labels)
        if not 1 <= self.n_classes <= core.MAX_CLASSES:
            raise ValueError(f"1..{core.MAX_CLASSES} labels, got {self.n_classes}")
        self._write, self._classify = write, classify
        self._time = time_us or (lambda: time.monotonic_ns() // 1000)
        self._perf = perf_us or (lambda: time.perf_counter_ns() // 1000)
        self._load, self._save, self._alarm = config_load, config_save, alarm
        self._baud, self._reboot, self._log = set_baud, reboot, log
        self._error: BaseException | None = None
        self.rebooting = False

        # C-visible objects, kept alive with the App
        self._labels_c = (C.c_char_p * self.n_classes)(*[s.encode() for s in self.labels])
        th = (
            thresholds_q8(thresholds)
            if thresholds is not None
            else [
                P.detector["default_threshold_q8"]
                if "default_threshold_q8" in P.detector
                else round(P.detector["default_threshold"] * 256)
            ]
            * self.n_classes
        )
        if len(th) != self.n_classes:
            raise ValueError("one threshold per label")
        self._thr_c = (C.c_uint16 * self.n_classes)(*th)
        self._board = board.encode()
        info = AppInfo()
        info.board = self._board
        info.fw_major, info.fw_minor, info.fw_patch = fw_version
        info.reset_reason = reset_reason
        for name, value, n in (
            ("model_hash", model_hash, 8),
            ("config_hash", config_hash or config_hash8(), 8),
            ("node_id", node_id, 6),
        ):
            value = bytes(value)
            if len(value) != n:
                raise ValueError(f"{name} must be {n} bytes")
            getattr(info, name)[:] = list(value)
        info.n_classes = self.n_classes
        info.labels = self._labels_c
        info.thresholds_q8 = self._thr_c
        info.quant = core.quant_struct()
        info.adc_rate_hz = adc_rate_hz
        info.default_baud = default_baud
        self.info = info

        self._cbs = dict(
            write=WRITE_FN(self._cb_write),
            time_us=TIME_FN(self._cb_time),
            perf_us=TIME_FN(self._cb_perf),
            classify=CLASSIFY_FN(self._cb_classify),
            config_load=LOAD_FN(self._cb_load) if config_load else LOAD_FN(),
            config_save=SAVE_FN(self._cb_save) if config_save else SAVE_FN(),
            alarm=ALARM_FN(self._cb_alarm) if alarm else ALARM_FN(),
            set_baud=BAUD_FN(self._cb_baud) if set_baud else BAUD_FN(),
            reboot=REBOOT_FN(self._cb_reboot) if reboot else REBOOT_FN(),
            log=LOG_FN(self._cb_log) if log else LOG_FN(),
        )
        self.port = Port(None, **self._cbs)
        self._buf = C.create_string_buffer(APP_SIZE)
        self.reinit(reset_reason)

    # ---- lifecycle ------------------------------------------------------------------------
    def reinit(self, reset_reason: int | None = None) -> None:
        """ew_app_init again (a reboot: persisted config reloaded, new HELLO)."""
        if reset_reason is not None:
            self.info.reset_reason = reset_reason
        self.rebooting = False
        rc = lib.ew_app_init(self._buf, C.byref(self.info), C.byref(self.port))
        self._raise()
        if rc != 0:
            raise AppError(f"ew_app_init failed ({rc})", rc)

    # ---- callbacks from C -------------------------------------------------------------------
    def _guard(self, fn, fail):
        try:
            return fn()
        except BaseException as e:  # never unwind through C
            if self._error is None:
                self._error = e
            return fail

    def _cb_write(self, _ctx, data, n):
        def run():
            self._write(C.string_at(data, n))
            return n

        return self._guard(run, -1)

    def _cb_time(self, _ctx):
        return self._guard(lambda: int(self._time()) & 0xFFFFFFFFFFFFFFFF, 0)

    def _cb_perf(self, _ctx):
        return self._guard(lambda: int(self._perf()) & 0xFFFFFFFFFFFFFFFF, 0)

    def _cb_classify(self, _ctx, w, feats, scores, n):
        def run():
            win = core.WindowRec(
                w[0].start_sample,
                w[0].trigger_sample,
                w[0].trigger_block,
                core.TRIGGER_KINDS[w[0].kind],
            )
            f = np.ctypeslib.as_array(feats, shape=(core.FRAMES_PER_WINDOW, core.N_MELS)).copy()
            s = np.asarray(self._classify(win, f)).astype(np.int64).reshape(-1)
            if s.shape != (n,):
                raise ValueError(f"classifier returned {s.shape[0]} scores, expected {n}")
            for i, v in enumerate(np.clip(s, 0, 255)):
                scores[i] = int(v)
            return 0

        return self._guard(run, 1)

    def _cb_load(self, _ctx, buf, cap):
        def run():
            blob = self._load()
            if not blob:
                return 0
            blob = bytes(blob)[:cap]
            C.memmove(buf, blob, len(blob))
            return len(blob)

        return self._guard(run, -1)

    def _cb_save(self, _ctx, blob, n):
        return self._guard(lambda: (self._save(C.string_at(blob, n)), 0)[1], -1)

    def _cb_alarm(self, _ctx, cls, ms):
        self._guard(lambda: self._alarm(cls, ms), None)

    def _cb_baud(self, _ctx, baud):
        return self._guard(lambda: (self._baud(baud), 0)[1], -1)

    def _cb_reboot(self, _ctx):
        self.rebooting = True
        self._guard(self._reboot, None)

    def _cb_log(self, _ctx, line):
        self._guard(lambda: self._log(line.decode("ascii", "replace")), None)

    def _raise(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise e

    # ---- API --------------------------------------------------------------------------------
    def rx(self, data: bytes) -> None:
        """Bytes from the host."""
        data = bytes(data)
        lib.ew_app_rx(self._buf, data, len(data))
        self._raise()

    def feed_adc(self, codes) -> int:
        """Microphone: unsigned 12-bit ADC codes at adc_rate_hz.  Returns the C code (0, or
        ERR_STATE when the input is not the microphone)."""
        c = np.ascontiguousarray(codes, dtype=np.uint16)
        rc = lib.ew_app_feed_adc(self._buf, c, c.size)
        self._raise()
        if rc not in (0, ERR_STATE):
            raise AppError(f"ew_app_feed_adc failed ({rc})", rc)
        return rc

    def feed_pcm16(self, pcm) -> int:
        """Microphone already at 16 kHz (int16)."""
        x = core._pcm(pcm)
        rc = lib.ew_app_feed_pcm16(self._buf, x, x.size)
        self._raise()
        return rc

    def note_overrun(self, n: int) -> None:
        lib.ew_app_note_overrun(self._buf, n)
        self._raise()

    def poll(self) -> None:
        lib.ew_app_poll(self._buf)
        self._raise()

    def config_get(self, key: int) -> int:
        v = C.c_int32()
        rc = lib.ew_app_config_get(self._buf, key, C.byref(v))
        if rc != 0:
            raise AppError(f"CONFIG key 0x{key:04x}: error {rc}", rc)
        return v.value

    def config_set(self, key: int, value: int) -> int:
        """Apply (and persist) a CONFIG value; returns the value in effect."""
        v = C.c_int32()
        rc = lib.ew_app_config_set(self._buf, key, value, C.byref(v))
        self._raise()
        if rc != 0:
            raise AppError(f"CONFIG key 0x{key:04x} = {value}: error {rc}", rc)
        return v.value

    def factory_reset(self) -> None:
        lib.ew_app_factory_reset(self._buf)
        self._raise()

    def set_input(self, source: int) -> None:
        rc = lib.ew_app_set_input(self._buf, source)
        self._raise()
        if rc != 0:
            raise AppError(f"set_input({source}) failed ({rc})", rc)

    def send_hello(self) -> None:
        lib.ew_app_send_hello(self._buf)
        self._raise()

    def send_status(self) -> None:
        lib.ew_app_send_status(self._buf)
        self._raise()

    def send_error(self, code: int, message: str = "", ref_seq: int = 0) -> None:
        lib.ew_app_send_error(self._buf, code, ref_seq, message.encode("ascii", "replace"))
        self._raise()

    def config_blob(self) -> bytes:
        out = (C.c_uint8 * CONFIG_MAX)()
        n = lib.ew_app_config_blob(self._buf, out, CONFIG_MAX)
        return bytes(out[:n])

    @property
    def stats(self) -> dict:
        s = AppStats()
        lib.ew_app_get_stats(self._buf, C.byref(s))
        return {name: getattr(s, name) for name, _ in AppStats._fields_}

    @property
    def input(self) -> str:
        return INPUT_NAMES.get(self.stats["input"], "?")


def parse_config_blob(blob: bytes) -> dict:
    """The persisted blob as {key: value} (ew_app.h "Persistence"); ValueError if invalid."""
    import struct
    import zlib

    if len(blob) < 17 or blob[:3] != b"EWC" or blob[3] != 1:
        raise ValueError("not an ew_app configuration blob")
    n = blob[12]
    body = 13 + 6 * n
    if len(blob) < body + 4 or struct.unpack_from("<I", blob, body)[0] != zlib.crc32(blob[:body]):
        raise ValueError("configuration blob: bad length or CRC")
    return {k: v for k, v in (struct.unpack_from("<Hi", blob, 13 + 6 * i) for i in range(n))}
