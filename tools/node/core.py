"""Python binding of the portable C core (ctypes over the library `pip install -e .` builds).

This is the code the node runs, compiled for the host: training computes its features here,
the simulated node runs its detector here, and the tests compare it with the NumPy
reference (tools/reference.py) bit for bit.

    from tools.node import core
    L = core.logmel(pcm16)                 # (frames, n_mels) uint16, log2 Q8
    q = core.features(pcm16)               # (frames, n_mels) int8 (model input quantisation)
    node = core.Node(classify=fn)          # streaming detector with gate, windows, events
    node.process(chunk); node.flush(); node.events
"""

from __future__ import annotations

import ctypes as C
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tools.node import params as _params
from tools.node.params import THRESHOLD_OFF  # noqa: F401  (core.THRESHOLD_OFF: the detector's EW_THRESHOLD_OFF)

P = _params.default()
N_MELS = P.n_mels
FRAMES_PER_WINDOW = P.frames_per_window
HOP = P.hop_samples
MAX_CLASSES = 16
TRIGGER_KINDS = ("onset", "recheck", "continuous", "early")
EVENT_KINDS = ("onset", "end")


def _load() -> C.CDLL:
    spec = importlib.util.find_spec("tools.node._ewcore")
    if spec is None or spec.origin is None:
        raise ImportError("the C core is not built: run `make setup` (or `pip install -e .`)")
    return C.CDLL(spec.origin)


lib = _load()

i16p = np.ctypeslib.ndpointer(np.int16, flags="C_CONTIGUOUS")
u16p = np.ctypeslib.ndpointer(np.uint16, flags="C_CONTIGUOUS")
i8p = np.ctypeslib.ndpointer(np.int8, flags="C_CONTIGUOUS")


class GateConfig(C.Structure):
    _fields_ = [
        ("floor_q8", C.c_int32),
        ("onset_margin_q8", C.c_int32),
        ("strong_margin_q8", C.c_int32),
        ("jump_margin_q8", C.c_int32),
        ("confirm_margin_q8", C.c_int32),
        ("onset_blocks", C.c_uint8),
        ("sustain_margin_q8", C.c_int32),
        ("spread_max_q16", C.c_uint32),
        ("sustain_blocks", C.c_uint16),
        ("recheck_blocks", C.c_uint16),
        ("warmup_blocks", C.c_uint16),
        ("bg_fall_shift", C.c_uint8),
        ("bg_rise_shift", C.c_uint8),
        ("nf_fall_shift", C.c_uint8),
        ("nf_rise_shift", C.c_uint8),
        ("peak_margin_q8", C.c_int32),
        ("peak_decay_q8", C.c_int32),
        ("tonal_margin_q8", C.c_int32),
        ("tonal_shift", C.c_uint8),
    ]


class Quant(C.Structure):
    _fields_ = [("mult", C.c_int32), ("shift", C.c_uint8), ("zero_point", C.c_int8)]


class NodeConfig(C.Structure):
    _fields_ = [
        ("gate", GateConfig),
        ("quant", Quant),
        ("thresholds_q8", C.c_uint16 * MAX_CLASSES),
        ("holdoff_samples", C.c_uint32),
        ("n_classes", C.c_uint8),
        ("preroll_frames", C.c_uint8),
        ("mode", C.c_uint8),
        ("continuous_stride", C.c_uint16),
        ("early_preroll_frames", C.c_uint8),
        ("early_continue_blocks", C.c_uint8),
        ("early_continue_margin_q8", C.c_int32),
        ("habituate_onsets", C.c_uint8),
        ("habituate_max_score_q8", C.c_uint8),
        ("habituate_blocks", C.c_uint16),
        ("habituate_margin_q8", C.c_int32),
        ("habituate_rechecks", C.c_uint8),
        ("habituate_recheck_max_score_q8", C.c_uint8),
        ("habituate_recheck_blocks", C.c_uint16),
    ]


class Event(C.Structure):
    _fields_ = [
        ("onset_sample", C.c_uint64),
        ("duration_samples", C.c_uint32),
        ("class_index", C.c_uint8),
        ("score", C.c_uint8),
        ("kind", C.c_uint8),
        ("hits", C.c_uint16),
    ]


class Window(C.Structure):
    _fields_ = [
        ("start_sample", C.c_int64),
        ("trigger_sample", C.c_uint64),
        ("trigger_block", C.c_uint64),
        ("kind", C.c_uint8),
    ]


class BlockInfo(C.Structure):
    _fields_ = [
        ("block", C.c_uint64),
        ("level_q8", C.c_int32),
        ("bg_q8", C.c_int32),
        ("excess_q8", C.c_int32),
        ("nf_q8", C.c_int32),
        ("spread_q16", C.c_uint32),
        ("flags", C.c_uint8),
        ("trigger", C.c_uint8),
        ("gate_open", C.c_uint8),
    ]


class Stats(C.Structure):
    _fields_ = [
        ("samples", C.c_uint64),
        ("blocks", C.c_uint64),
        ("frames", C.c_uint64),
        ("gate_open_blocks", C.c_uint64),
        ("triggers_onset", C.c_uint32),
        ("triggers_recheck", C.c_uint32),
        ("windows", C.c_uint32),
        ("classify_errors", C.c_uint32),
        ("events", C.c_uint32),
        ("windows_dropped", C.c_uint32),
        ("onsets_habituated", C.c_uint32),
        ("rechecks_slowed", C.c_uint32),
    ]


class LayoutRow(C.Structure):
    """One row of the C compiler's layout table (ew_layout_rows, tools/node/_ewcore_module.c)."""

    _fields_ = [
        ("type", C.c_char_p),
        ("field", C.c_char_p),
        ("offset_bytes", C.c_uint32),
        ("size_bytes", C.c_uint32),
    ]


class LayoutError(ImportError):
    """A ctypes mirror disagrees with the C compiler's layout of its struct."""


def c_layout() -> dict[str, list[tuple[str, int, int]]]:
    """The compiler's view of every mirrored struct: {C type: [("", 0, sizeof), (field, offset,
    size), ...]} in declaration order (bytes)."""
    n = C.c_uint32()
    rows = lib.ew_layout_rows(C.byref(n))
    out: dict[str, list[tuple[str, int, int]]] = {}
    for i in range(n.value):
        r = rows[i]
        out.setdefault(r.type.decode(), []).append((r.field.decode(), r.offset_bytes, r.size_bytes))
    return out


def check_layout(mirrors: dict) -> None:
    """Every ctypes mirror {Structure class: "c_type_t"} must have the C struct's fields in order,
    each at the C offset with the C size, and the C sizeof; else LayoutError, one line naming the
    struct and the field."""
    layout = c_layout()
    for cls, ctype in mirrors.items():
        where = f"ctypes mirror {cls.__name__} of {ctype}"
        if ctype not in layout:
            raise LayoutError(f"{where}: not in the C layout table (tools/node/_ewcore_module.c)")
        (_, _, c_size), *c_fields = layout[ctype]
        py = [(f[0], getattr(cls, f[0]).offset, getattr(cls, f[0]).size) for f in cls._fields_]
        for (name, off, size), (c_name, c_off, c_sz) in zip(py, c_fields):
            if name != c_name:
                raise LayoutError(f"{where}: field {name} where C has {c_name}")
            if (off, size) != (c_off, c_sz):
                raise LayoutError(
                    f"{where}: field {name} at offset {off} ({size} bytes), "
                    f"C has offset {c_off} ({c_sz} bytes)"
                )
        if len(py) != len(c_fields):
            extra = py[len(c_fields) :] or c_fields[len(py) :]
            side = "the mirror" if len(py) > len(c_fields) else "C"
            raise LayoutError(f"{where}: field {extra[0][0]} only in {side}")
        if C.sizeof(cls) != c_size:
            raise LayoutError(f"{where}: sizeof {C.sizeof(cls)}, C has {c_size}")


lib.ew_layout_rows.restype = C.POINTER(LayoutRow)
lib.ew_layout_rows.argtypes = [C.POINTER(C.c_uint32)]
#: the ctypes mirrors of this module and their C types (checked at import)
MIRRORS = {
    GateConfig: "ew_gate_config_t",
    Quant: "ew_quant_t",
    NodeConfig: "ew_node_config_t",
    Event: "ew_event_t",
    Window: "ew_window_t",
    BlockInfo: "ew_block_info_t",
    Stats: "ew_node_stats_t",
}
check_layout(MIRRORS)


CLASSIFY_FN = C.CFUNCTYPE(
    C.c_int, C.c_void_p, C.POINTER(Window), C.POINTER(C.c_int8), C.POINTER(C.c_uint8)
)
EVENT_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(Event))
BLOCK_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(BlockInfo))


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_sig("ew_adc_to_pcm", None, u16p, i16p, C.c_size_t)
_sig("ew_decim_init", C.c_int, C.c_void_p, C.c_uint)
_sig("ew_decim_process", C.c_size_t, C.c_void_p, i16p, C.c_size_t, i16p)
_sig("ew_dcblock_reset", None, C.c_void_p)
_sig("ew_dcblock_process", None, C.c_void_p, i16p, i16p, C.c_size_t)
_sig("ew_log2_q8_u64", C.c_uint32, C.c_uint64)
_sig("ew_frontend_logmel", None, C.c_void_p, i16p, u16p)
_sig("ew_frontend_logmel_frames", None, C.c_void_p, i16p, C.c_size_t, C.c_size_t, u16p)
_sig("ew_frontend_quantize", None, u16p, i8p, C.c_size_t, C.POINTER(Quant))
_sig("ew_node_config_default", None, C.POINTER(NodeConfig), C.c_uint8)
_sig(
    "ew_node_init",
    C.c_int,
    C.c_void_p,
    C.POINTER(NodeConfig),
    CLASSIFY_FN,
    EVENT_FN,
    BLOCK_FN,
    C.c_void_p,
)
_sig("ew_node_reset", None, C.c_void_p)
_sig("ew_node_process", None, C.c_void_p, i16p, C.c_size_t)
_sig("ew_node_flush", None, C.c_void_p)
_sig("ew_node_sizeof", C.c_size_t)
_sig("ew_decim_sizeof", C.c_size_t)
_sig("ew_dcblock_sizeof", C.c_size_t)
_sig("ew_frontend_sizeof", C.c_size_t)

# opaque C state is allocated with the sizes the C compiler reports
_NODE_SIZE = lib.ew_node_sizeof()
_DECIM_SIZE = lib.ew_decim_sizeof()
_DCBLOCK_SIZE = lib.ew_dcblock_sizeof()
_FE_SIZE = lib.ew_frontend_sizeof()


def _pcm(x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.int16:
        raise TypeError(f"expected int16 PCM, got {a.dtype} (use tools.audio to load and convert)")
    return np.ascontiguousarray(a)


def quant_struct(q: _params.Quant | None = None) -> Quant:
    q = q or P.quant
    return Quant(q.mult, q.shift, q.zero_point)


# ---- stage functions ----------------------------------------------------------------------------


def adc_to_pcm(codes) -> np.ndarray:
    codes = np.ascontiguousarray(codes, dtype=np.uint16)
    out = np.empty(codes.shape, np.int16)
    lib.ew_adc_to_pcm(codes, out, codes.size)
    return out


def decimate(x, factor: int) -> np.ndarray:
    """Anti-alias decimation by `factor` (2: 32 kHz -> 16 kHz, 3: 48 kHz -> 16 kHz)."""
    x = _pcm(x)
    state = C.create_string_buffer(_DECIM_SIZE)
    rc = lib.ew_decim_init(state, factor)
    if rc != 0:
        raise ValueError(f"unsupported decimation factor {factor} (supported: {P.decim_factors})")
    out = np.empty(x.size // factor + 1, np.int16)
    n = lib.ew_decim_process(state, x, x.size, out)
    return out[:n].copy()


def dc_block(x) -> np.ndarray:
    x = _pcm(x)
    state = C.create_string_buffer(_DCBLOCK_SIZE)
    lib.ew_dcblock_reset(state)
    out = np.empty_like(x)
    lib.ew_dcblock_process(state, x, out, x.size)
    return out


def log2_q8(v: int) -> int:
    return lib.ew_log2_q8_u64(v)


def logmel_stream(x) -> np.ndarray:
    """Log-mel of every frame (hop spacing) of an already conditioned signal."""
    x = _pcm(x)
    n = max(0, (x.size - P.frame_samples) // HOP + 1)
    out = np.empty((n, N_MELS), np.uint16)
    if n:
        lib.ew_frontend_logmel_frames(C.create_string_buffer(_FE_SIZE), x, n, HOP, out)
    return out


def quantize(logmel, q: _params.Quant | None = None) -> np.ndarray:
    L = np.ascontiguousarray(logmel, dtype=np.uint16)
    out = np.empty(L.shape, np.int8)
    qs = quant_struct(q)
    lib.ew_frontend_quantize(L.reshape(-1), out.reshape(-1), L.size, C.byref(qs))
    return out


# ---- the detector ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRec:
    onset_sample: int
    duration_samples: int
    class_index: int
    score: int
    kind: str
    hits: int

    @property
    def onset_s(self) -> float:
        return self.onset_sample / P.sample_rate_hz


@dataclass(frozen=True)
class WindowRec:
    start_sample: int
    trigger_sample: int
    trigger_block: int
    kind: str


class Node:
    """The node's detector on the host: DC blocker, gate, front end, windows, decisions.

    classify(window: WindowRec, features: np.ndarray[int8] (64, n_mels)) -> scores (Q0.8 ints)
    Events (EventRec) accumulate in .events, analysis windows in .windows, and with
    trace=True one row per block in .trace (level, background, excess, spread, flags...).
    """

    def __init__(
        self,
        classify: Callable | None = None,
        n_classes: int = 0,
        *,
        thresholds: Sequence[float] | None = None,
        mode: str = "gated",
        quant: _params.Quant | None = None,
        gate: dict | None = None,
        holdoff_ms: float | None = None,
        continuous_stride: int | None = None,
        early_preroll: int | None = None,
        habituate: int | None = None,
        habituate_max_score: float | None = None,
        habituate_rechecks: int | None = None,
        habituate_recheck_s: float | None = None,
        habituate_recheck_max_score: float | None = None,
        keep_features: bool = False,
        trace: bool = False,
    ):
        if n_classes > MAX_CLASSES:
            raise ValueError(f"at most {MAX_CLASSES} classes")
        cfg = NodeConfig()
        lib.ew_node_config_default(C.byref(cfg), n_classes)
        cfg.quant = quant_struct(quant)
        if thresholds is not None:
            if len(thresholds) != n_classes:
                raise ValueError("one threshold per class")
            for i, t in enumerate(thresholds):
                cfg.thresholds_q8[i] = THRESHOLD_OFF if t is None else int(round(t * 256))
        if mode not in ("gated", "continuous"):
            raise ValueError("mode is 'gated' or 'continuous'")
        cfg.mode = 0 if mode == "gated" else 1
        for k, v in (gate or {}).items():
            setattr(cfg.gate, k, v)
        if holdoff_ms is not None:
            cfg.holdoff_samples = int(holdoff_ms * P.sample_rate_hz / 1000)
        if continuous_stride is not None:
            cfg.continuous_stride = continuous_stride
        if early_preroll is not None:
            cfg.early_preroll_frames = early_preroll  # 0: no early window per onset
        if habituate is not None:
            cfg.habituate_onsets = habituate  # 0: no habituation
        if habituate_max_score is not None:
            cfg.habituate_max_score_q8 = _params.score_q8(
                habituate_max_score, "habituate_max_score"
            )
        if habituate_rechecks is not None:
            cfg.habituate_rechecks = habituate_rechecks  # 0: re-checks never slow down
        if habituate_recheck_max_score is not None:
            cfg.habituate_recheck_max_score_q8 = _params.score_q8(
                habituate_recheck_max_score, "habituate_recheck_max_score"
            )
        if habituate_recheck_s is not None:
            cfg.habituate_recheck_blocks = P.seconds_to_blocks(habituate_recheck_s)
        self.config = cfg
        self.n_classes = n_classes
        self._classify = classify
        self.keep_features = keep_features
        self.events: list[EventRec] = []
        self.windows: list[WindowRec] = []
        self.features: list[np.ndarray] = []
        self._trace_rows: list[tuple] = []
        self._error: BaseException | None = None
        self._buf = C.create_string_buffer(_NODE_SIZE)
        self._cb_classify = CLASSIFY_FN(self._on_classify)
        self._cb_event = EVENT_FN(self._on_event)
        self._cb_block = BLOCK_FN(self._on_block) if trace else BLOCK_FN()
        rc = lib.ew_node_init(
            self._buf, C.byref(cfg), self._cb_classify, self._cb_event, self._cb_block, None
        )
        if rc != 0:
            raise ValueError(f"ew_node_init rejected the configuration (error {rc})")

    # callbacks from C -----------------------------------------------------------------------
    def _on_classify(self, _ctx, w, feats, scores) -> int:
        try:
            win = WindowRec(
                w[0].start_sample, w[0].trigger_sample, w[0].trigger_block, TRIGGER_KINDS[w[0].kind]
            )
            f = np.ctypeslib.as_array(feats, shape=(FRAMES_PER_WINDOW, N_MELS)).copy()
            self.windows.append(win)
            if self.keep_features:
                self.features.append(f)
            if self._classify is None:
                return 0
            s = np.asarray(self._classify(win, f)).astype(np.int64)
            if s.shape != (self.n_classes,):
                raise ValueError(
                    f"classifier returned shape {s.shape}, expected ({self.n_classes},)"
                )
            for i, v in enumerate(np.clip(s, 0, 255)):
                scores[i] = int(v)
            return 0
        except BaseException as e:  # never let an exception unwind through C
            self._error = e
            return 1

    def _on_event(self, _ctx, ev) -> None:
        e = ev[0]
        self.events.append(
            EventRec(
                e.onset_sample,
                e.duration_samples,
                e.class_index,
                e.score,
                EVENT_KINDS[e.kind],
                e.hits,
            )
        )

    def _on_block(self, _ctx, b) -> None:
        x = b[0]
        self._trace_rows.append(
            (
                x.block,
                x.level_q8,
                x.bg_q8,
                x.excess_q8,
                x.nf_q8,
                x.spread_q16,
                x.flags,
                x.trigger,
                x.gate_open,
            )
        )

    # API ------------------------------------------------------------------------------------
    def process(self, pcm) -> None:
        x = _pcm(pcm)
        lib.ew_node_process(self._buf, x, x.size)
        self._raise()

    def flush(self) -> None:
        lib.ew_node_flush(self._buf)
        self._raise()

    def reset(self) -> None:
        lib.ew_node_reset(self._buf)
        self.events.clear()
        self.windows.clear()
        self.features.clear()
        self._trace_rows.clear()

    def _raise(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise e

    @property
    def trace(self) -> np.ndarray:
        """Structured array, one row per block."""
        dt = [
            ("block", "u8"),
            ("level_q8", "i4"),
            ("bg_q8", "i4"),
            ("excess_q8", "i4"),
            ("nf_q8", "i4"),
            ("spread_q16", "u4"),
            ("flags", "u1"),
            ("trigger", "u1"),
            ("gate_open", "u1"),
        ]
        return np.array(self._trace_rows, dtype=dt)

    @property
    def stats(self) -> dict:
        s = Stats()
        lib.ew_node_get_stats(self._buf, C.byref(s))
        return {name: getattr(s, name) for name, _ in Stats._fields_}


_sig("ew_node_get_stats", None, C.c_void_p, C.POINTER(Stats))


# ---- convenience for training and tools --------------------------------------------------------


def logmel(pcm) -> np.ndarray:
    """Log-mel (log2 Q8, uint16) of every frame of a 16 kHz stream, exactly as the node computes:
    DC blocker from rest, frame j = samples [j*hop, j*hop + frame)."""
    return logmel_stream(dc_block(_pcm(pcm)))


def features(pcm, q: _params.Quant | None = None) -> np.ndarray:
    """int8 model-input features of every frame of a stream: quantize(logmel(pcm))."""
    return quantize(logmel(pcm), q)
