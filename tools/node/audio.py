"""Audio I/O for the host side: load any clip as the node hears it (16 kHz mono int16).

Errors are `AudioError` with the path and a reason a person can act on; callers turn them into
exit code 2 (bad input) without a traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.node import params as _params

SR = _params.default().sample_rate_hz

# The columns of a corpus metadata.csv (one row per clip): what training reads
# (training.data.read_csv) and what tools.record writes next to its recordings.
CORPUS_COLUMNS = ["path", "label", "source_label", "fold", "duration_s", "source", "licence"]


class AudioError(Exception):
    """A clip that cannot be used, with the reason."""


def load(path, sr: int = SR) -> np.ndarray:
    """Read WAV/FLAC/OGG, mix to mono, resample to `sr` (soxr, VHQ), return int16."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    try:
        x, file_sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:  # malformed or unsupported file
        raise AudioError(f"{path}: not a readable audio file ({e})") from None
    if x.size == 0:
        raise AudioError(f"{path}: contains no samples")
    x = x.mean(axis=1)
    if file_sr != sr:
        import soxr

        x = soxr.resample(x, file_sr, sr, quality="VHQ")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: contains NaN/inf samples")
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def block_levels_db(x: np.ndarray, block: int | None = None) -> np.ndarray:
    """Mean-square level of each hop-sized block, dBFS (for reports and lead-ins)."""
    block = block or _params.default().hop_samples
    n = x.size // block
    if n == 0:
        return np.zeros(0)
    b = x[: n * block].astype(np.float64).reshape(n, block) / 32768.0
    return 10 * np.log10(np.mean(b * b, axis=1) + 1e-12)


def lead_in(
    x: np.ndarray,
    seconds: float = 1.0,
    seed: int = 0,
    percentile: float = 10.0,
    max_below_peak_db: float | None = None,
) -> np.ndarray:
    """White noise at the clip's own floor (the `percentile` of its non-silent block levels).

    Clips in datasets start abruptly, a node never does: it has been listening to the room.
    Prepending `seconds` of noise at the clip's own background level lets the gate settle on
    that background before the clip starts, the same way for event and background clips.
    Blocks below -90 dBFS (zero padding in ESC-50 and others) are ignored.  With
    max_below_peak_db the room is put at least that far below the clip's loudest block: for
    dataset chunks cut from inside an event, whose quietest part is still the event.
    """
    lv = block_levels_db(x)
    lv = lv[lv > -90.0]  # datasets pad clips with digital silence: not the room
    floor_db = float(np.percentile(lv, percentile)) if lv.size else -90.0
    if max_below_peak_db is not None and lv.size:
        floor_db = min(floor_db, float(lv.max()) - max_below_peak_db)
    rms = 32768.0 * 10 ** (max(floor_db, -90.0) / 20)
    noise = np.random.default_rng(seed).normal(0.0, rms, int(seconds * SR))
    return np.clip(np.round(noise), -32768, 32767).astype(np.int16)


def looped(x: np.ndarray, fade_samples: int = 320) -> np.ndarray:
    """x twice, joined with a short linear cross-fade (no click at the join)."""
    if x.size <= 2 * fade_samples:
        return np.concatenate([x, x])
    r = np.linspace(0.0, 1.0, fade_samples)
    join = x[-fade_samples:] * (1 - r) + x[:fade_samples] * r
    y = np.concatenate([x[:-fade_samples], join, x[fade_samples:]])
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def with_lead_in(
    x: np.ndarray, seconds: float = 1.0, seed: int = 0, max_below_peak_db: float | None = None
) -> tuple[np.ndarray, int]:
    """(lead-in + clip, number of lead-in samples)."""
    pre = lead_in(x, seconds, seed, max_below_peak_db=max_below_peak_db)
    return np.concatenate([pre, x]), pre.size
