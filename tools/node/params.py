"""The node core's parameters, read from the single source `firmware/lib/ewcore/ewcore.toml`.

Everything derived from them (fixed-point constants, window, twiddles, mel filterbank, log table,
decimator taps) is computed here, once, and used by both the C generator (tools/gen_params.py)
and the NumPy reference (tools/reference.py).  Tables are plain Python ints so that the
generated C and the reference can never disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CONFIG_PATH = ROOT / "firmware" / "lib" / "ewcore" / "ewcore.toml"
MODEL_DIR = ROOT / "firmware" / "model"  # the shipped model (manifest.json, .tflite, C arrays)
SCHEMA_VERSION = 1
DB_PER_LOG2 = 10.0 * math.log10(2.0)  # 3.0103 dB of power per octave of power
FULL_SCALE_LOG2_POWER = 30  # (2^15)^2: mean square of a full-scale int16 signal
QUANT_SHIFT = 24  # q = zp + (L * mult + 2^23) >> 24
LOG2_LUT_BITS = 7  # 128-segment interpolated log2 table
LOG2_LUT_FRAC = 14  # table values in Q14


def db_to_log2_q8(db: float) -> int:
    """A power ratio in dB as log2 units in Q8 (the gate's and front end's log domain)."""
    return int(round(db / DB_PER_LOG2 * 256))


def score_q8(score: float, name: str = "score") -> int:
    """A 0..1 classifier score as the node's Q0.8 byte (round(score * 256)); ValueError when it
    does not fit 0..255 (a score of 1.0, or above 255.5/256, would wrap to 0 in the uint8)."""
    q = int(round(score * 256))
    if not 0 <= q <= 255:
        raise ValueError(f"{name} must be a score in 0..1 below 1 (Q0.8 0..255), not {score}")
    return q


def hz_to_mel(f):
    """Slaney mel scale (librosa's default, htk=False)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(
        f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, mels
    )


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_weights_float(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters with peak 1 (librosa.filters.mel(..., norm=None)); shape (n_mels, n_fft//2+1)."""
    fftfreqs = np.arange(n_fft // 2 + 1) * (sr / n_fft)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper))


def kaiser_lowpass(n_taps: int, cutoff: float, beta: float) -> np.ndarray:
    """Windowed-sinc low-pass, cutoff as a fraction of the input Nyquist rate, unity DC gain."""
    m = np.arange(n_taps) - (n_taps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(n_taps, beta)
    return h / h.sum()


def q15(values) -> list[int]:
    return [int(v) for v in np.clip(np.round(np.asarray(values) * 32768.0), -32768, 32767)]


@dataclass(frozen=True)
class Quant:
    """Integer mapping of the front end's log-mel (log2 Q8) to the model's int8 input."""

    scale: float
    zero_point: int
    mult: int
    shift: int = QUANT_SHIFT

    @classmethod
    def from_scale(cls, scale: float, zero_point: int) -> Quant:
        if not (scale > 0 and -128 <= zero_point <= 127):
            raise ValueError(f"bad input quantisation: scale={scale} zero_point={zero_point}")
        mult = int(round(DB_PER_LOG2 / 256.0 / scale * (1 << QUANT_SHIFT)))
        if not 0 < mult < (1 << 31):
            raise ValueError(f"input scale {scale} out of range for the fixed-point quantiser")
        return cls(scale, zero_point, mult)


@dataclass(frozen=True)
class Params:
    raw: dict = field(repr=False)
    sample_rate_hz: int
    adc_bits: int
    decim_factors: tuple
    decim_taps: tuple
    decim_cutoff_hz: tuple
    decim_beta: tuple
    dc_pole_shift: int
    dc_frac_bits: int
    frame_samples: int
    hop_samples: int
    n_mels: int
    fmin_hz: float
    fmax_hz: float
    frames_per_window: int
    window_frac_bits: int
    power_shift: int
    gate: dict
    detector: dict
    quant: Quant

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def fft_bins(self) -> int:
        return self.frame_samples // 2 + 1

    @property
    def window_samples(self) -> int:
        return (self.frames_per_window - 1) * self.hop_samples + self.frame_samples

    @property
    def hop_log2(self) -> int:
        return self.hop_samples.bit_length() - 1

    def seconds_to_blocks(self, seconds: float) -> int:
        """A duration in gate blocks (hops), rounded."""
        return int(round(seconds * self.sample_rate_hz / self.hop_samples))

    # ---- fixed-point gate constants ---------------------------------------------------------
    @property
    def gate_fixed(self) -> dict:
        g = self.gate
        return {
            "window_blocks": g["window_blocks"],
            "floor_q8": int(round((g["floor_dbfs"] / DB_PER_LOG2 + FULL_SCALE_LOG2_POWER) * 256)),
            "onset_margin_q8": db_to_log2_q8(g["onset_margin_db"]),
            "strong_margin_q8": db_to_log2_q8(g["strong_margin_db"]),
            "jump_margin_q8": db_to_log2_q8(g["jump_margin_db"]),
            "confirm_margin_q8": db_to_log2_q8(g["confirm_margin_db"]),
            "onset_blocks": g["onset_blocks"],
            "sustain_margin_q8": db_to_log2_q8(g["sustain_margin_db"]),
            "spread_max_q16": int(round(g["spread_max"] * 65536)),
            "recheck_blocks": g["recheck_blocks"],
            "sustain_blocks": g["sustain_blocks"],
            "bg_fall_shift": g["bg_fall_shift"],
            "bg_rise_shift": g["bg_rise_shift"],
            "nf_fall_shift": g["nf_fall_shift"],
            "nf_rise_shift": g["nf_rise_shift"],
            "warmup_blocks": g["warmup_blocks"],
            "peak_margin_q8": db_to_log2_q8(g["peak_margin_db"]),
            # dB per second -> log2 Q8 per block (at least 1: a peak that never decays would mute the gate)
            "peak_decay_q8": max(
                1, db_to_log2_q8(g["peak_decay_db_per_s"] * self.hop_samples / self.sample_rate_hz)
            ),
            "tonal_margin_q8": db_to_log2_q8(g["tonal_margin_db"]),
            "tonal_shift": g["tonal_shift"],
        }

    @property
    def detector_fixed(self) -> dict:
        d = self.detector
        return {
            "preroll_frames": d["preroll_frames"],
            "early_preroll_frames": d.get("early_preroll_frames", 0),
            "early_continue_blocks": d.get("early_continue_blocks", 0),
            "early_continue_margin_q8": db_to_log2_q8(d.get("early_continue_margin_db", 0.0)),
            "habituate_onsets": d.get("habituate_onsets", 0),
            "habituate_max_score_q8": score_q8(d.get("habituate_max_score", 0.0)),
            "habituate_margin_q8": db_to_log2_q8(d.get("habituate_margin_db", 0.0)),
            "habituate_blocks": self.seconds_to_blocks(d.get("habituate_s", 0.0)),
            "habituate_rechecks": d.get("habituate_rechecks", 0),
            "habituate_recheck_max_score_q8": score_q8(d.get("habituate_recheck_max_score", 0.0)),
            "habituate_recheck_blocks": self.seconds_to_blocks(d.get("habituate_recheck_s", 0.0)),
            "holdoff_samples": int(d["holdoff_ms"] * self.sample_rate_hz // 1000),
            "default_threshold_q8": int(round(d["default_threshold"] * 256)),
            "continuous_stride_frames": d["continuous_stride_frames"],
        }

    # ---- tables ----------------------------------------------------------------------------
    @property
    def hann_q15(self) -> list[int]:
        n = np.arange(self.frame_samples)
        w = 0.5 - 0.5 * np.cos(2 * np.pi * n / self.frame_samples)  # periodic Hann
        return [min(v, 32767) for v in q15(w)]

    @property
    def twiddles_q31(self) -> tuple[list[int], list[int]]:
        """cos / -sin of 2*pi*k/frame_samples for k < frame_samples/2 (Q31, 1.0 -> 2^31 - 1)."""
        k = np.arange(self.frame_samples // 2)
        ang = 2 * np.pi * k / self.frame_samples
        q31 = lambda v: [int(min(max(x, -(1 << 31)), (1 << 31) - 1)) for x in np.round(v * 2.0**31)]
        return q31(np.cos(ang)), q31(-np.sin(ang))

    @property
    def bitrev(self) -> list[int]:
        """Bit-reversal permutation of the frame_samples/2-point complex FFT."""
        m = self.frame_samples // 2
        bits = m.bit_length() - 1
        return [int(format(i, f"0{bits}b")[::-1], 2) for i in range(m)]

    @property
    def mel_sparse(self) -> tuple[list[int], list[int], list[int]]:
        """Per band: first FFT bin, number of bins, and the concatenated Q15 weights (uint16)."""
        w = mel_weights_float(
            self.sample_rate_hz, self.frame_samples, self.n_mels, self.fmin_hz, self.fmax_hz
        )
        wq = np.round(w * 32768.0).astype(np.int64)
        starts, lens, weights = [], [], []
        for band in wq:
            nz = np.nonzero(band)[0]
            if len(nz) == 0:
                raise ValueError("a mel band covers no FFT bin: lower n_mels or raise fmin_hz")
            lo, hi = int(nz[0]), int(nz[-1]) + 1
            starts.append(lo)
            lens.append(hi - lo)
            weights.extend(int(v) for v in band[lo:hi])
        return starts, lens, weights

    @property
    def log2_lut_q14(self) -> list[int]:
        n = 1 << LOG2_LUT_BITS
        return [int(round(math.log2(1 + i / n) * (1 << LOG2_LUT_FRAC))) for i in range(n + 1)]

    def decim_taps_q15(self, factor: int) -> list[int]:
        i = self.decim_factors.index(factor)
        n = self.decim_taps[i]
        cutoff = self.decim_cutoff_hz[i] / (self.sample_rate_hz * factor / 2)
        taps = q15(kaiser_lowpass(n, cutoff, self.decim_beta[i]))
        if taps != taps[::-1]:
            raise ValueError("decimator taps must be symmetric (the C filter folds them)")
        if sum(abs(t) for t in taps) >= 65536:
            raise ValueError("decimator taps could overflow the 32-bit accumulator")
        return taps

    def decim_folded(self, factor: int) -> tuple[list[int], list[int], int]:
        """Non-zero folded pairs (offset k pairs with n-1-k) and the centre tap (0 if n even)."""
        taps = self.decim_taps_q15(factor)
        n = len(taps)
        offs = [k for k in range(n // 2) if taps[k] != 0]
        return offs, [taps[k] for k in offs], taps[n // 2] if n % 2 else 0

    # ---- identity ----------------------------------------------------------------------------
    def canonical(self) -> dict:
        """Everything that affects the node's numbers, as plain JSON (hashed into config_hash)."""
        raw = {k: v for k, v in self.raw.items() if k not in SETTING_SECTIONS}
        return {"schema_version": SCHEMA_VERSION, "config": raw}

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    FEATURE_SECTIONS = ("audio", "decimator", "dc_block", "frontend", "quant")

    @property
    def feature_hash(self) -> str:
        """Hash of only what changes the int8 features a model sees (audio, conditioning, front
        end, input quantisation): a model stays valid when gate/detector defaults change."""
        raw = {k: self.raw[k] for k in self.FEATURE_SECTIONS}
        blob = json.dumps(
            {"schema_version": SCHEMA_VERSION, "features": raw},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        return hashlib.sha256(blob).hexdigest()


def _check(raw: dict) -> None:
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"ewcore.toml schema_version {raw.get('schema_version')} != {SCHEMA_VERSION}"
        )
    fe = raw["frontend"]
    if fe["frame_samples"] & (fe["frame_samples"] - 1) or fe["frame_samples"] < 64:
        raise ValueError("frame_samples must be a power of two >= 64")
    if fe["hop_samples"] & (fe["hop_samples"] - 1) or fe["frame_samples"] != 2 * fe["hop_samples"]:
        raise ValueError("hop_samples must be a power of two and half of frame_samples")
    if not 0 <= fe["window_frac_bits"] <= 6 or fe["power_shift"] < 2 * fe["window_frac_bits"] + 4:
        raise ValueError(
            "window_frac_bits must be 0..6 and power_shift >= 2 * window_frac_bits + 4 "
            "(64-bit mel accumulator bound)"
        )
    if not 1 <= raw["gate"]["onset_blocks"] <= 4:
        raise ValueError("gate.onset_blocks must be 1..4")
    if not 0 <= raw["gate"]["tonal_shift"] <= 15:
        raise ValueError("gate.tonal_shift must be 0..15")
    if raw["detector"]["preroll_frames"] >= fe["frames_per_window"]:
        raise ValueError("preroll_frames must be smaller than frames_per_window")
    if raw["detector"]["preroll_frames"] > raw["gate"]["warmup_blocks"]:
        raise ValueError("warmup_blocks must cover the pre-roll")
    early = raw["detector"].get("early_preroll_frames", 0)
    if early and not raw["detector"]["preroll_frames"] < early < fe["frames_per_window"]:
        raise ValueError(
            "early_preroll_frames must be 0 (off) or between preroll_frames and frames_per_window"
        )
    if not 0 <= raw["detector"].get("early_continue_blocks", 0) <= 255:
        raise ValueError("early_continue_blocks must be 0..255")
    det = raw["detector"]
    if not 0 <= det.get("habituate_onsets", 0) <= 255:
        raise ValueError("habituate_onsets must be 0..255")
    score_q8(det.get("habituate_max_score", 0.0), "habituate_max_score")
    if not 0.0 <= det.get("habituate_s", 0.0) <= 600.0:
        raise ValueError("habituate_s must be 0..600 s")
    if not 0 <= det.get("habituate_rechecks", 0) <= 255:
        raise ValueError("habituate_rechecks must be 0..255")
    score_q8(det.get("habituate_recheck_max_score", 0.0), "habituate_recheck_max_score")
    rb = (
        det.get("habituate_recheck_s", 0.0)
        * raw["audio"]["sample_rate_hz"]
        / raw["frontend"]["hop_samples"]
    )
    if det.get("habituate_rechecks", 0) and not raw["gate"]["recheck_blocks"] <= round(rb) <= 65535:
        raise ValueError(
            "habituate_recheck_s must be at least the gate's recheck period "
            "(recheck_blocks) and at most 65535 blocks"
        )


def load(path: Path | str | None = None, overrides: dict | None = None) -> Params:
    raw = tomllib.loads(Path(path or CONFIG_PATH).read_text())
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    _check(raw)
    a, dec, dc, fe = raw["audio"], raw["decimator"], raw["dc_block"], raw["frontend"]
    return Params(
        raw=raw,
        sample_rate_hz=a["sample_rate_hz"],
        adc_bits=a["adc_bits"],
        decim_factors=tuple(dec["factors"]),
        decim_taps=tuple(dec["taps"]),
        decim_cutoff_hz=tuple(dec["cutoff_hz"]),
        decim_beta=tuple(dec["kaiser_beta"]),
        dc_pole_shift=dc["pole_shift"],
        dc_frac_bits=dc["frac_bits"],
        frame_samples=fe["frame_samples"],
        hop_samples=fe["hop_samples"],
        n_mels=fe["n_mels"],
        fmin_hz=fe["fmin_hz"],
        fmax_hz=fe["fmax_hz"],
        frames_per_window=fe["frames_per_window"],
        window_frac_bits=fe["window_frac_bits"],
        power_shift=fe["power_shift"],
        gate=dict(raw["gate"]),
        detector=dict(raw["detector"]),
        quant=Quant.from_scale(raw["quant"]["input_scale"], raw["quant"]["input_zero_point"]),
    )


@lru_cache(maxsize=1)
def default() -> Params:
    return load()


# ---- CONFIG settings ---------------------------------------------------------------------------
SETTING_SECTIONS = ("setting", "setting_threshold")  # not hashed: they change no computed number
SETTING_FIELDS = {
    "key": int,
    "id": str,
    "name": str,
    "unit": str,
    "scale": int,
    "min": int,
    "max": int,
    "zero_off": bool,
    "persisted": bool,
    "restart": bool,
    "default": (int, float, str),
    "wire": str,
    "help": str,
}


@dataclass(frozen=True)
class Setting:
    """One CONFIG setting of ewcore.toml's [[setting]] table (field meanings there)."""

    key: int
    id: str
    name: str
    unit: str
    scale: int
    min: int
    max: int
    zero_off: bool
    persisted: bool
    restart: bool
    default: int | float | str
    wire: str
    help: str

    def accepts(self, raw: int) -> bool:
        """The table's range check (the node may refuse more, e.g. EARLY_PREROLL_FRAMES <= preroll)."""
        return self.min <= raw <= self.max or (self.zero_off and raw == 0)


@dataclass(frozen=True)
class ThresholdSetting:
    """The per-class score thresholds: keys key_base + class index (ewcore.toml [setting_threshold])."""

    key_base: int
    key_last: int
    name_prefix: str
    scale: int
    max: int
    default: str


def settings_from(raw: dict) -> tuple[tuple[Setting, ...], ThresholdSetting]:
    """The [[setting]] table and [setting_threshold] of a parsed ewcore.toml, checked; ValueError
    names the first bad entry."""
    out = []
    for i, entry in enumerate(raw.get("setting", [])):
        where = f"setting #{i + 1} ({entry.get('id', '?')})"
        if set(entry) != set(SETTING_FIELDS):
            missing, extra = set(SETTING_FIELDS) - set(entry), set(entry) - set(SETTING_FIELDS)
            raise ValueError(f"{where}: missing {sorted(missing)}, unknown {sorted(extra)}")
        for k, t in SETTING_FIELDS.items():
            if not isinstance(entry[k], t) or (t is int and isinstance(entry[k], bool)):
                raise ValueError(f"{where}: {k} has the wrong type")
        s = Setting(**entry)
        if not 0 < s.key < 0x10000 or not s.min <= s.max or s.scale <= 0:
            raise ValueError(f"{where}: key must be 1..0xFFFF, min <= max, scale > 0")
        if not (-(2**31) <= s.min and s.max < 2**31):
            raise ValueError(f"{where}: range must fit an i32")
        if not s.id.isidentifier() or not s.id.isupper():
            raise ValueError(f"{where}: id must be an UPPER_CASE identifier")
        if isinstance(s.default, str) and s.default != "board":
            section, _, name = s.default.partition(".")
            if name not in raw.get(section, {}):
                raise ValueError(f"{where}: default {s.default!r} names no ewcore.toml parameter")
        out.append(s)
    t = ThresholdSetting(**raw["setting_threshold"])
    for attr in ("key", "id", "name"):
        seen = [getattr(s, attr) for s in out]
        if len(set(seen)) != len(seen):
            raise ValueError(f"[[setting]]: duplicate {attr}")
    if any(t.key_base <= s.key <= t.key_last for s in out) or out != sorted(
        out, key=lambda s: s.key
    ):
        raise ValueError("[[setting]]: keys must be ascending and outside the threshold keys")
    return tuple(out), t


@lru_cache(maxsize=1)
def settings() -> tuple[tuple[Setting, ...], ThresholdSetting]:
    """The CONFIG settings of firmware/lib/ewcore/ewcore.toml (in key order) and the thresholds."""
    return settings_from(default().raw)


#: a class threshold (Q8) that disables the class: the core's EW_THRESHOLD_OFF, also the wire value
#: (ewcore.toml [setting_threshold] max)
THRESHOLD_OFF = settings()[1].max


#: the node's target classes in the shipped model's output order, and its negative class: the
#: default of training (training.data) and the labels of a simulated node without a model
DEFAULT_TARGETS = (
    "gunshot",
    "glass_breaking",
    "scream",
    "siren",
    "fireworks_explosion",
    "baby_cry",
    "dog_bark",
)
NEGATIVE_LABEL = "other"
DEFAULT_LABELS = (*DEFAULT_TARGETS, NEGATIVE_LABEL)
