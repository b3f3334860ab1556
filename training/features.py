"""Training windows computed by the node's own C code (tools.node.core), aligned the way the node
aligns them.

For every clip several streams are built (tools.node.audio lead-in + clip as the evaluation plays
it, the same with a quieter room, background mixtures from training.augment, background-only
negatives); each stream goes through tools.node.core.Node (the real gate + detector) to find where
the node would open analysis windows, and the int8 features of those windows are sliced from
tools.node.core.features(stream) (bit-identical to what the node hands the classifier; checked in
the tests).  Extra windows at a fixed stride (the node's continuous mode) add negatives and
time-shifted targets.  A target clip whose event the gate misses still gives one window around
its loudest part (so the classifier learns the class), marked KIND_FALLBACK.

Window labels come from the event's own energy: a window holding at least `TARGET_DB` of the
best possible window's event energy is the clip's class, one holding less than `NEG_DB` is a
negative ("other"), anything in between is ambiguous and dropped.

Features are cached in build/training/features-<key>.npz, keyed by P.feature_hash and P.config_hash (gate), the data
(paths, labels, folds, file sizes), the class map, the augmentation config, the seed and
FEATURE_VERSION.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.node import audio, core, params
from training import augment, data

P = params.default()
HOP = P.hop_samples
FRAMES = P.frames_per_window
N_MELS = P.n_mels
WIN_BLOCKS = FRAMES + 1  # 64 frames of 512 samples at hop 256 span 65 hop blocks
FEATURE_VERSION = 4
LEAD_IN_S = 1.0  # as training.evaluate plays a clip: 1 s of room before...
TAIL_S = 1.0  # ...and 1 s after it
TARGET_DB = 10.0
NEG_DB = 30.0
CACHE_DIR = params.ROOT / "build" / "training"

KIND_PLAIN, KIND_QUIET_ROOM, KIND_MIX, KIND_BACKGROUND, KIND_CONTINUOUS, KIND_FALLBACK = range(6)
KIND_NAMES = ("plain", "quiet_room", "mix", "background", "continuous", "fallback")


@dataclass
class WindowSet:
    """Training windows: X int8 (n, 64, 40), y class index, clip index into `rows`, kind."""

    X: np.ndarray
    y: np.ndarray
    clip: np.ndarray
    kind: np.ndarray
    rows: list
    labels: list[str]

    def __len__(self) -> int:
        return int(self.y.size)

    def subset(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(
            self.X[mask], self.y[mask], self.clip[mask], self.kind[mask], self.rows, self.labels
        )

    def folds(self) -> np.ndarray:
        f = np.array([-1 if r.fold is None else r.fold for r in self.rows], dtype=np.int64)
        return f[self.clip] if self.clip.size else np.zeros(0, np.int64)

    def counts(self) -> dict:
        return {lab: int(np.sum(self.y == i)) for i, lab in enumerate(self.labels)}


def to_float(X: np.ndarray) -> np.ndarray:
    """int8 features -> the model's float input in dB: (q - zero_point) * scale."""
    return ((X.astype(np.float32) - P.quant.zero_point) * P.quant.scale)[..., None]


def eval_stream(x: np.ndarray, max_below_peak_db: float | None = None, seed: int = 0):
    """(stream, lead-in samples): the clip as the evaluation plays it to the node: noise at the
    clip's own floor before (tools.node.audio.with_lead_in) and after it."""
    stream, pre = audio.with_lead_in(x, LEAD_IN_S, seed=seed, max_below_peak_db=max_below_peak_db)
    tail = audio.lead_in(x, TAIL_S, seed=seed + 1, max_below_peak_db=max_below_peak_db)
    return np.concatenate([stream, tail]), pre


def node_windows(stream: np.ndarray) -> list[int]:
    """First frame index of every analysis window the node (gated mode) opens on this stream."""
    node = core.Node()
    node.process(stream)
    node.flush()
    return [w.start_sample // HOP for w in node.windows]


def event_window_energy(ev: np.ndarray, n_frames: int) -> np.ndarray:
    """Event energy inside each possible window start (frame index 0 .. n_frames - 64)."""
    nb = ev.size // HOP
    eb = np.zeros(max(nb, n_frames + 1))
    if nb:
        e = ev[: nb * HOP].astype(np.float64).reshape(nb, HOP)
        eb[:nb] = np.sum(e * e, axis=1)
    c = np.concatenate([[0.0], np.cumsum(eb)])
    starts = np.arange(max(0, n_frames - FRAMES + 1))
    return c[np.minimum(starts + WIN_BLOCKS, c.size - 1)] - c[starts]


def label_windows(starts, energy: np.ndarray | None, cls: int, neg: int) -> list[tuple[int, int]]:
    """(start, class) per window; ambiguous windows dropped."""
    out = []
    if energy is None or energy.size == 0 or energy.max() <= 0:
        return [(s, neg) for s in starts]
    emax = energy.max()
    for s in starts:
        e = energy[min(s, energy.size - 1)]
        if e >= emax * 10 ** (-TARGET_DB / 10):
            out.append((s, cls))
        elif e < emax * 10 ** (-NEG_DB / 10):
            out.append((s, neg))
    return out


class _Builder:
    def __init__(
        self,
        cmap: data.ClassMap,
        seed: int,
        cfg: augment.AugmentConfig,
        max_gated: int = 4,
        max_continuous: int = 3,
        continuous_stride: int = 32,
    ):
        self.cmap, self.seed, self.cfg = cmap, seed, cfg
        self.max_gated, self.max_continuous, self.stride = (
            max_gated,
            max_continuous,
            continuous_stride,
        )
        self.X, self.y, self.clip, self.kind = [], [], [], []

    def add_stream(self, stream, ev, cls, ci, kind, rng, fallback=False, continuous=True):
        F = core.features(stream)
        nf = F.shape[0]
        if nf < FRAMES:
            return
        neg = self.cmap.negative_index
        energy = None if (ev is None or cls == neg) else event_window_energy(ev, nf)
        gated = [s for s in node_windows(stream) if 0 <= s and s + FRAMES <= nf]
        lab = label_windows(gated, energy, cls, neg)
        pos = [t for t in lab if t[1] != neg]
        negs = [t for t in lab if t[1] == neg]
        keep = []
        for group in (pos, negs):
            if len(group) > self.max_gated:
                idx = rng.choice(len(group), self.max_gated, replace=False)
                group = [group[i] for i in sorted(idx)]
            keep += group
        for s, c in keep:
            self._add(F[s : s + FRAMES], c, ci, kind)
        if fallback and energy is not None and not pos:
            # the gate missed this event: one window around its loudest part (classifier only)
            best = int(np.argmax(energy))
            self._add(F[best : best + FRAMES], cls, ci, KIND_FALLBACK)
        if continuous:
            off = int(rng.integers(0, self.stride))
            starts = list(range(off, nf - FRAMES + 1, self.stride))
            lab = label_windows(starts, energy, cls, neg)
            if len(lab) > self.max_continuous:
                idx = rng.choice(len(lab), self.max_continuous, replace=False)
                lab = [lab[i] for i in sorted(idx)]
            for s, c in lab:
                self._add(F[s : s + FRAMES], c, ci, KIND_CONTINUOUS)

    def _add(self, f, c, ci, kind):
        self.X.append(np.asarray(f, np.int8))
        self.y.append(c)
        self.clip.append(ci)
        self.kind.append(kind)


def build(
    clips: list[data.Clip],
    cmap: data.ClassMap,
    seed: int = 0,
    cfg: augment.AugmentConfig | None = None,
    augment_data: bool = True,
    progress: bool = False,
) -> WindowSet:
    """All training windows of the clips. Background mixtures only draw backgrounds from the
    clip's own fold, so selecting windows by fold never leaks another fold's audio."""
    cfg = cfg or augment.AugmentConfig()
    b = _Builder(cmap, seed, cfg)
    bg_pool: dict = {}
    for c in clips:
        if c.label in data.BACKGROUND_LABELS:
            bg_pool.setdefault(c.row.fold, []).append(c.pcm)
    neg = cmap.negative_index
    it = enumerate(clips)
    if progress:
        from tqdm import tqdm

        it = tqdm(list(it), desc="features", unit="clip", file=sys.stderr, leave=False)
    for ci, c in it:
        rng = augment.rng_for(seed, c.row.path)
        cls = cmap.index(c.label)
        x = c.pcm
        target = cls != neg
        stream, pre = eval_stream(x)  # as the evaluation plays it
        ev = np.zeros(stream.size)
        ev[pre : pre + x.size] = x
        b.add_stream(stream, ev, cls, ci, KIND_PLAIN, rng, fallback=target)
        if not augment_data:
            continue
        if target:
            stream, pre = eval_stream(x, max_below_peak_db=20.0, seed=2)
            ev = np.zeros(stream.size)
            ev[pre : pre + x.size] = x
            b.add_stream(stream, ev, cls, ci, KIND_QUIET_ROOM, rng, fallback=True, continuous=False)
        pool = bg_pool.get(c.row.fold) or [p for v in bg_pool.values() for p in v]
        if c.label in data.BACKGROUND_LABELS:
            for _ in range(cfg.background_only):
                g = rng.uniform(*cfg.gain_db)
                s = augment.shift(x, int(rng.integers(0, x.size)))
                stream, _pre = audio.with_lead_in(
                    augment.gain(s, g), seed=int(rng.integers(1 << 30))
                )
                b.add_stream(stream, None, neg, ci, KIND_BACKGROUND, rng)
            continue
        n_mix = cfg.mixes_per_target if target else cfg.mixes_per_negative
        for _ in range(n_mix if pool else 0):
            bg = pool[int(rng.integers(len(pool)))]
            stream, ev, _start = augment.mix(x, bg, rng, cfg)
            b.add_stream(stream, ev, cls, ci, KIND_MIX, rng, fallback=target)
    if not b.X:
        X = np.zeros((0, FRAMES, N_MELS), np.int8)
    else:
        X = np.stack(b.X)
    return WindowSet(
        X,
        np.array(b.y, np.int64),
        np.array(b.clip, np.int64),
        np.array(b.kind, np.int64),
        [c.row for c in clips],
        cmap.labels,
    )


def cache_key(rows, root, cmap, seed, cfg, augment_data=True) -> str:
    # config_hash, not only feature_hash: the gate (whose parameters feature_hash leaves out)
    # decides where the node-aligned windows start
    blob = json.dumps(
        {
            "feature_hash": P.feature_hash,
            "config_hash": P.config_hash,
            "data": data.rows_hash(rows, root),
            "classes": cmap.to_json(),
            "seed": seed,
            "augment": cfg.to_json(),
            "augment_data": augment_data,
            "version": FEATURE_VERSION,
        },
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_or_build(
    rows,
    root,
    cmap,
    seed=0,
    cfg=None,
    augment_data=True,
    strict=False,
    cache_dir: Path | None = CACHE_DIR,
    progress=True,
    log=None,
) -> WindowSet:
    """Windows for rows under root, from the cache when the key matches."""
    cfg = cfg or augment.AugmentConfig()
    log = log or (lambda m: print(m, file=sys.stderr))
    key = cache_key(rows, root, cmap, seed, cfg, augment_data)
    path = Path(cache_dir) / f"features-{key}.npz" if cache_dir else None
    if path is not None and path.exists():
        z = np.load(path, allow_pickle=False)
        kept = set(z["paths"].tolist())
        rows_kept = [r for r in rows if r.path in kept]
        log(f"features: cache {path.name} ({z['y'].size} windows)")
        return WindowSet(z["X"], z["y"], z["clip"], z["kind"], rows_kept, cmap.labels)
    clips, _problems = data.load_clips(rows, root, strict=strict, progress=progress, log=log)
    ws = build(clips, cmap, seed, cfg, augment_data, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            X=ws.X,
            y=ws.y,
            clip=ws.clip,
            kind=ws.kind,
            paths=np.array([r.path for r in ws.rows]),
        )
        tmp.replace(path)
        log(f"features: {ws.y.size} windows from {len(clips)} clips -> {path}")
    return ws
