"""Deterministic augmentation of 16 kHz int16 clips (all randomness from a numpy Generator).

The seeds' lesson (DCASE 2017 task 2): isolated events must be heard inside real rooms, so a
target event is mixed into a real background recording at a random SNR and offset, with gain
changes; backgrounds alone and hard negatives (door slams, knocks, claps, other impulsive
sounds) mixed the same way teach the model what is *not* an event.

Every function returns (stream, event_part): the int16 stream the node hears and the
event's contribution alone (float, aligned with the stream; used to label windows).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from tools.node import audio

SR = audio.SR


@dataclass(frozen=True)
class AugmentConfig:
    mixes_per_target: int = 2  # background mixtures per target clip
    mixes_per_negative: int = 1  # background mixtures per hard-negative clip
    snr_db: tuple[float, float] = (-6.0, 12.0)
    gain_db: tuple[float, float] = (-20.0, 6.0)  # overall gain of a mixture (quiet..loud room)
    lead_s: tuple[float, float] = (1.0, 2.5)  # background before the event (gate warm-up)
    tail_s: float = 0.5
    background_only: int = 1  # extra background-only negative streams per background clip

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def rng_for(seed: int, *keys) -> np.random.Generator:
    """A generator that depends only on the seed and the keys (e.g. a clip's path), not on
    the order clips are processed in: caches and subsets stay reproducible."""
    h = hashlib.sha256(("|".join(str(k) for k in (seed,) + keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round to int16; a mixture that would clip is scaled down as a whole (no hard clipping)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 32767.0:
        x = x * (32767.0 / peak)
    return np.round(x).astype(np.int16)


def active_power(x: np.ndarray, seconds: float = 1.0) -> float:
    """Mean square of the loudest `seconds` of x (the event's level, not diluted by silence)."""
    x = x.astype(np.float64)
    n = min(x.size, int(seconds * SR))
    if n == 0:
        return 0.0
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    return float(np.max(c[n:] - c[:-n]) / n)


def background_segment(bg: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of a background recording from a random offset, looped (cross-faded) when short."""
    x = bg
    while x.size < n + 1:
        x = audio.looped(x)
    start = int(rng.integers(0, x.size - n + 1))
    return x[start : start + n].astype(np.float64)


def mix(
    event: np.ndarray,
    bg: np.ndarray,
    rng: np.random.Generator,
    cfg: AugmentConfig,
    snr_db: float | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Event inside a background at a random SNR/offset/gain. Returns (stream int16,
    event part float aligned with it, event start sample)."""
    lead = int(rng.uniform(*cfg.lead_s) * SR)
    n = lead + event.size + int(cfg.tail_s * SR)
    b = background_segment(bg, n, rng)
    e = event.astype(np.float64)
    snr = rng.uniform(*cfg.snr_db) if snr_db is None else snr_db
    pe, pb = active_power(e), float(np.mean(b * b)) + 1e-9
    if pe > 0:
        e = e * np.sqrt(pb * 10 ** (snr / 10) / pe)
    ev = np.zeros(n)
    ev[lead : lead + e.size] = e
    y = b + ev
    g = 10 ** (rng.uniform(*cfg.gain_db) / 20)
    y, ev = y * g, ev * g
    peak = float(np.max(np.abs(y)))
    if peak > 32767.0:
        ev = ev * (32767.0 / peak)
    return to_int16(y), ev, lead


def gain(x: np.ndarray, db: float) -> np.ndarray:
    return to_int16(x.astype(np.float64) * 10 ** (db / 20))


def shift(x: np.ndarray, samples: int) -> np.ndarray:
    """Circular time shift (used for background-only negatives)."""
    return np.roll(x, samples)
