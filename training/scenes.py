"""Scene benchmark: synthetic soundscapes and negative streams built from one test fold's clips.

    python -m training scenes build --csv CSV --root DIR --fold K --out DIR [--seed S]
        [--ebr -6,0,6] [--per-ebr 8] [--scenes N] [--stream-minutes 20]
    python -m training scenes inspect DIR [--plot SCENE --png OUT]
    python -m training scenes eval --scenes DIR --model firmware/model [--json OUT]

Library (what crossval calls once per test fold):

    from training import scenes, scene_eval
    ss = scenes.build_fold(rows, root, fold, seed, out=None)     # -> SceneSet (in memory)
    ss = scenes.load(dir)                                        # a written set
    res = scene_eval.evaluate_fold(model_dir_or_Model, ss)       # -> JSON-ready dict
    pooled = scene_eval.summarise([res, ...])

Every piece comes from fold-K rows only (the CSV's fold column), deterministically from the seed.

Scenes.  A bed of fold-K `background` clips (each trimmed of digital-silence padding, set to the
scene's bed level, a dBFS RMS drawn in BED_DBFS_RANGE, and joined with 0.5-s cross-fades) at
least MIN_SCENE_S long (clips whose loudest 20-ms frame is more than BED_MAX_PEAK_DB above their
median frame -- events in a quiet recording: crackling fire, water drops -- are not beds; they
still play in the negative streams); 3-5 target events (the model's classes; default training.data's) and
1-3 hard negatives (HARD_NEGATIVE_LABELS, never scored) pasted into it one after the other,
2-6 s of bed between pasted segments, 2-4 s of bed before the first and after the last.
  - Cutting: a clip longer than MAX_EVENT_S is cut to its MAX_EVENT_S-long stretch of most
    energy; every pasted segment gets 10-ms linear fades.
  - Active span: from the first to the last 20-ms frame whose power is within ACTIVE_DB (25 dB)
    of the segment's loudest frame.
  - EBR (event-to-background ratio, DCASE 2017 task 2, Mesaros et al.): the event's power over
    its active span / the bed's power over the same samples as placed; the event is scaled to
    the requested EBR exactly.  The EBRs are cycled (every class meets every EBR, PER_EBR events
    per class and EBR per fold where the fold has that many clips; a clip serves at most once
    per EBR).
  - Audible onset/offset (the ground truth): the first/last 20-ms frame (frames from the pasted
    onset) of the first/last run of >= 2 consecutive frames where the scaled event's own power
    exceeds the bed's.  An event that is never audible by this rule is not kept: the next unused
    clip of its class is tried (up to RETRIES), and when none is audible the event is dropped
    and counted (`dropped_inaudible` in the index).  A scaled event that would clip (peak over
    full scale) is treated the same way.
Negative streams.  Every fold-K non-target clip (background, other, door_slam, car_horn, alarm,
and every other label outside the classes) shuffled and concatenated (10-ms fades) as recorded,
until the streams last --stream-minutes; when the fold has less the shuffled list is repeated
(reshuffled; `streams.repeated` in the index says how often).  Split into files of STREAM_FILE_S.

Files written (OUT/, via a temporary folder renamed at the end; nothing left on error):
  scenes/scene_NNN.wav, streams/stream_NN.wav     16 kHz mono int16
  scenes/scene_NNN.txt     DCASE: audible onset<TAB>audible offset<TAB>label (targets only)
  events.csv               scene,onset_s,offset_s,label,kind,ebr_db,source,source_label,
                           audible_onset_s,audible_offset_s,pasted_onset_s,pasted_offset_s,
                           active_onset_s,active_offset_s,gain_db   (kind target|negative;
                           onset_s/offset_s = the audible span; scene relative to OUT)
  truth.csv                tools/hil.py --scenes format (scene,onset_s,offset_s,label,source):
                           the scored targets, and a row without onset for every stream
  streams.csv              stream,start_s,end_s,label,source_label,source (what is playing)
  index.json               settings, per-scene/stream lengths, counts per class per EBR,
                           shortfalls, dropped events
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training import data

SR = 16000
FRAME = 320  # 20-ms frames: active span, audible span
ACTIVE_DB = 25.0  # active span: frames within this of the segment's peak frame
MAX_EVENT_S = 5.0  # longer clips are cut to their most energetic 5 s
FADE_S = 0.010  # fades of pasted segments and stream joins
XFADE_S = 0.5  # bed cross-fades
MIN_SCENE_S = 30.0
EVENTS_PER_SCENE = (3, 5)
NEGATIVES_PER_SCENE = (1, 3)
GAP_S = (2.0, 6.0)
EDGE_S = (2.0, 4.0)
BED_DBFS_RANGE = (-42.0, -30.0)
BED_MAX_PEAK_DB = 20.0  # background clips whose loudest 20-ms frame is further above their
# median frame are not beds (crackling fire, drops, birds: ~5 %)
DEFAULT_EBRS = (-6.0, 0.0, 6.0)
PER_EBR = 8  # events per class per EBR per fold (fewer where the fold lacks clips)
STREAM_MINUTES = 20.0
STREAM_FILE_S = 300.0
RETRIES = 5
SILENCE_DBFS = -90.0
HARD_NEGATIVE_LABELS = data.HARD_NEGATIVES  # other, door_slam, car_horn, alarm
INDEX_VERSION = 1


class SceneError(data.DataError):
    """Bad input for the benchmark (missing clips, impossible settings): exit 2, one line."""


# ---- signal helpers -----------------------------------------------------------------------------


def frame_power(x: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """Mean square per frame (float, full scale 1.0); a partial last frame counts."""
    x = np.asarray(x, np.float64) / 32768.0
    n = int(math.ceil(x.size / frame))
    pad = np.zeros(n * frame)
    pad[: x.size] = x
    return np.mean(pad.reshape(n, frame) ** 2, axis=1)


def trim_silence(x: np.ndarray) -> np.ndarray:
    """x without digital-silence frames at either end (dataset padding)."""
    lv = 10 * np.log10(frame_power(x) + 1e-20)
    keep = np.nonzero(lv > SILENCE_DBFS)[0]
    if keep.size == 0:
        return x[:0]
    return x[keep[0] * FRAME : min(x.size, (keep[-1] + 1) * FRAME)]


def cut_loudest(x: np.ndarray, max_s: float = MAX_EVENT_S) -> tuple[np.ndarray, int]:
    """(the max_s-long stretch of x with most energy, its start) -- x itself when shorter."""
    n = int(max_s * SR)
    if x.size <= n:
        return x, 0
    e = np.concatenate([[0.0], np.cumsum((x.astype(np.float64) / 32768.0) ** 2)])
    starts = np.arange(0, x.size - n + 1, FRAME)
    s = int(starts[np.argmax(e[starts + n] - e[starts])])
    return x[s : s + n], s


def faded(x: np.ndarray, fade_s: float = FADE_S) -> np.ndarray:
    y = np.asarray(x, np.float64).copy()
    k = min(int(fade_s * SR), y.size // 2)
    if k > 0:
        r = np.linspace(0.0, 1.0, k, endpoint=False)
        y[:k] *= r
        y[-k:] *= r[::-1]
    return y


def active_span(x: np.ndarray, below_peak_db: float = ACTIVE_DB) -> tuple[int, int]:
    """(first, end) sample of the frames within below_peak_db of the loudest frame."""
    p = frame_power(x)
    on = np.nonzero(p >= p.max() * 10 ** (-below_peak_db / 10))[0]
    return int(on[0] * FRAME), int(min(x.size, (on[-1] + 1) * FRAME))


def audible_span(event: np.ndarray, bed: np.ndarray, run: int = 2) -> tuple[int, int] | None:
    """(first, end) sample, relative to the event's start, of the 20-ms frames where the event's
    own power exceeds the bed's (same samples) in >= run consecutive frames; None if never."""
    pe, pb = frame_power(event), frame_power(bed[: event.size])
    above = pe > pb
    ok = np.zeros(above.size, bool)
    for i in range(above.size - run + 1):
        if above[i : i + run].all():
            ok[i : i + run] = True
    idx = np.nonzero(ok)[0]
    if idx.size == 0:
        return None
    return int(idx[0] * FRAME), int(min(event.size, (idx[-1] + 1) * FRAME))


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


# ---- the set ------------------------------------------------------------------------------------


@dataclass
class Scene:
    name: str  # relative to the set folder: scenes/scene_000.wav
    pcm: np.ndarray  # int16
    events: list[dict]  # events.csv rows (targets and negatives)
    bed_dbfs: float = 0.0
    bed: np.ndarray | None = field(default=None, repr=False)  # float, in memory after build

    @property
    def seconds(self) -> float:
        return self.pcm.size / SR

    @property
    def targets(self) -> list[dict]:
        return [e for e in self.events if e["kind"] == "target"]


@dataclass
class Stream:
    name: str  # streams/stream_00.wav
    pcm: np.ndarray
    segments: list[dict]  # streams.csv rows

    @property
    def seconds(self) -> float:
        return self.pcm.size / SR


@dataclass
class SceneSet:
    fold: int
    seed: int
    classes: list[str]
    ebrs: list[float]
    scenes: list[Scene]
    streams: list[Stream]
    index: dict
    path: Path | None = None


class _Clips:
    """Lazily loaded clips of the fold (int16, 16 kHz); unreadable files are reported and skipped."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[str, np.ndarray | None] = {}
        self.problems: list[str] = []

    def get(self, row: data.Row) -> np.ndarray | None:
        if row.path not in self.cache:
            from tools.node import audio

            try:
                x = trim_silence(audio.load(self.root / row.path))
            except audio.AudioError as e:
                self.problems.append(str(e))
                x = None
            self.cache[row.path] = x if x is not None and x.size >= 2 * FRAME else None
        return self.cache[row.path]


def clips_fingerprint(rows) -> str:
    """sha256 of a fold's clip list (path, label, sorted): a cached set is stale when it changes."""
    import hashlib

    txt = "\n".join(f"{r.path}\t{r.label}" for r in sorted(rows, key=lambda r: (r.path, r.label)))
    return hashlib.sha256(txt.encode()).hexdigest()


def parse_ebrs(spec) -> list[float]:
    if isinstance(spec, str):
        try:
            vals = [float(v) for v in spec.split(",") if v.strip()]
        except ValueError:
            raise SceneError(f"--ebr '{spec}': not a comma-separated list of dB values") from None
    else:
        vals = [float(v) for v in spec]
    if not vals:
        raise SceneError("no EBR given")
    bad = [v for v in vals if not math.isfinite(v) or abs(v) > 30]
    if bad:
        raise SceneError(
            f"EBR {bad[0]:g} dB cannot be met: EBRs must lie within -30..+30 dB "
            f"(bed levels {BED_DBFS_RANGE[0]:g}..{BED_DBFS_RANGE[1]:g} dBFS)"
        )
    return vals


def _plan(targets: dict[str, list[data.Row]], ebrs, per_ebr, rng) -> list[tuple[str, float, list]]:
    """[(class, ebr, candidate rows)] in round-robin order (class, then EBR, then repetition) so
    that any prefix is balanced; each class's clips are dealt to the EBRs so that a clip serves
    at most once per EBR."""
    plan = []
    orders = {c: [rows[i] for i in rng.permutation(len(rows))] for c, rows in targets.items()}
    for i in range(per_ebr):
        for j, e in enumerate(ebrs):
            for c, rows in orders.items():
                if i < len(rows):
                    # clip for (i, ebr j): rotate the order by j so that EBRs use the clips in turn
                    k = (i + j * max(1, len(rows) // len(ebrs))) % len(rows)
                    cands = rows[k:] + rows[:k]
                    plan.append((c, e, cands))
    return plan


def check_fold(rows, fold: int, classes=None):
    """The fold's clips for a scene set: (rows, background, {class: targets}, hard negatives,
    stream rows); raises SceneError naming what the fold lacks (no audio is read)."""
    classes = list(classes or data.DEFAULT_TARGETS)
    rows = sorted((r for r in rows if r.fold == fold), key=lambda r: r.path)
    if not rows:
        raise SceneError(f"fold {fold}: no clips in the CSV")
    bg_rows = [r for r in rows if r.label in data.BACKGROUND_LABELS]
    tgt = {c: [r for r in rows if r.label == c] for c in classes}
    tgt = {c: v for c, v in tgt.items() if v}
    neg_rows = [r for r in rows if r.label in HARD_NEGATIVE_LABELS]
    stream_rows = [r for r in rows if r.label not in classes]
    if not bg_rows:
        raise SceneError(f"fold {fold}: no background clips (label 'background') for the bed")
    if not tgt:
        raise SceneError(f"fold {fold}: no target clips of {', '.join(classes)}")
    if not neg_rows:
        raise SceneError(f"fold {fold}: no hard-negative clips ({', '.join(HARD_NEGATIVE_LABELS)})")
    return rows, bg_rows, tgt, neg_rows, stream_rows


def build_fold(
    rows,
    root,
    fold: int,
    seed: int = 0,
    *,
    out=None,
    classes=None,
    ebrs=DEFAULT_EBRS,
    per_ebr: int = PER_EBR,
    n_scenes: int | None = None,
    stream_minutes: float = STREAM_MINUTES,
    progress: bool = False,
) -> SceneSet:
    """Build the scene set of one fold (see the module doc); write it to `out` when given."""
    root = Path(root)
    classes = list(classes or data.DEFAULT_TARGETS)
    ebrs = parse_ebrs(ebrs)
    if per_ebr < 1:
        raise SceneError(f"--per-ebr must be 1 or more, not {per_ebr}")
    if stream_minutes < 0:
        raise SceneError(f"--stream-minutes must be 0 or more, not {stream_minutes}")
    if n_scenes is not None and n_scenes < 1:
        raise SceneError(f"--scenes must be 1 or more, not {n_scenes}")
    rows, bg_rows, tgt, neg_rows, stream_rows = check_fold(rows, fold, classes)
    rng = np.random.default_rng([seed, fold])
    clips = _Clips(root)
    plan = _plan(tgt, ebrs, per_ebr, rng)
    groups = []
    i = 0
    while i < len(plan):
        k = int(rng.integers(EVENTS_PER_SCENE[0], EVENTS_PER_SCENE[1] + 1))
        groups.append(plan[i : i + k])
        i += k
    if len(groups) > 1 and len(groups[-1]) < EVENTS_PER_SCENE[0]:  # a short last group:
        tail = groups.pop(-2) + groups.pop()  # merge it, or split the
        h = (len(tail) + 1) // 2 if len(tail) > EVENTS_PER_SCENE[1] else len(tail)  # two evenly
        groups += [g for g in (tail[:h], tail[h:]) if g]
    if n_scenes is not None:
        groups = groups[:n_scenes]
    used = {e: set() for e in ebrs}  # clip paths used per EBR
    bg_order = [bg_rows[i] for i in rng.permutation(len(bg_rows))]
    bg_pos = [0]
    neg_order = [neg_rows[i] for i in rng.permutation(len(neg_rows))]
    neg_pos = [0]
    dropped: list[dict] = []
    scenes = []
    it = groups
    if progress:
        from tqdm import tqdm

        it = tqdm(groups, desc=f"fold {fold} scenes", unit="scene", file=sys.stderr, leave=False)
    for si, group in enumerate(it):
        scenes.append(
            _build_scene(
                si, group, ebrs, rng, clips, used, bg_order, bg_pos, neg_order, neg_pos, dropped
            )
        )
    streams, stream_info = _build_streams(stream_rows, stream_minutes, rng, clips, progress, fold)
    counts = {c: {f"{e:g}": 0 for e in ebrs} for c in classes}
    for s in scenes:
        for e in s.targets:
            counts[e["label"]][f"{e['ebr_db']:g}"] += 1
    index = {
        "version": INDEX_VERSION,
        "fold": fold,
        "seed": seed,
        "classes": classes,
        "ebrs_db": ebrs,
        "per_ebr": per_ebr,
        "settings": {
            "frame_s": FRAME / SR,
            "active_db_below_peak": ACTIVE_DB,
            "max_event_s": MAX_EVENT_S,
            "min_scene_s": MIN_SCENE_S,
            "events_per_scene": list(EVENTS_PER_SCENE),
            "negatives_per_scene": list(NEGATIVES_PER_SCENE),
            "gap_s": list(GAP_S),
            "bed_dbfs_range": list(BED_DBFS_RANGE),
            "bed_max_peak_db": BED_MAX_PEAK_DB,
            "stream_minutes": stream_minutes,
            "hard_negative_labels": list(HARD_NEGATIVE_LABELS),
        },
        "counts": counts,
        "clips_sha256": clips_fingerprint(rows),
        "missing_classes": [c for c in classes if c not in tgt],
        "dropped_inaudible": dropped,
        "unreadable": clips.problems,
        "scenes": [
            {
                "name": s.name,
                "seconds": round(s.seconds, 3),
                "bed_dbfs": round(s.bed_dbfs, 2),
                "targets": len(s.targets),
                "negatives": len(s.events) - len(s.targets),
            }
            for s in scenes
        ],
        "scene_seconds": round(sum(s.seconds for s in scenes), 3),
        "streams": stream_info,
    }
    ss = SceneSet(fold, seed, classes, ebrs, scenes, streams, index)
    if out is not None:
        write(ss, out)
    return ss


def _bed(n: int, level_dbfs: float, rng, clips: _Clips, order, pos) -> np.ndarray:
    """n samples of background clips (taken in `order` from pos[0], cyclically), each set to
    level_dbfs RMS, cross-faded."""
    target = 10 ** (level_dbfs / 20) * 32768.0
    out = np.zeros(0)
    xf = int(XFADE_S * SR)
    tries = 0
    while out.size < n + xf:
        r = order[pos[0] % len(order)]
        pos[0] += 1
        x = clips.get(r)
        tries += 1
        if tries > 4 * len(order) + 50 and out.size == 0:
            raise SceneError("no usable background clip (all unreadable, silent or too short)")
        if x is None or x.size < 2 * xf:
            continue
        y = x.astype(np.float64)
        rms = math.sqrt(np.mean(y**2))
        fp = frame_power(x)
        if rms < 10 ** (SILENCE_DBFS / 20) * 32768 or fp.max() > np.median(fp) * 10 ** (
            BED_MAX_PEAK_DB / 10
        ):
            continue  # silent, or events in a quiet clip: not a bed
        y *= target / rms
        if out.size == 0:
            out = y
        else:
            r_ = np.linspace(0.0, 1.0, xf)
            out = np.concatenate([out[:-xf], out[-xf:] * (1 - r_) + y[:xf] * r_, y[xf:]])
    return out[:n]


def _segment(x: np.ndarray) -> tuple[np.ndarray, int]:
    seg, start = cut_loudest(x)
    return faded(seg), start


def _build_scene(
    si, group, ebrs, rng, clips, used, bg_order, bg_pos, neg_order, neg_pos, dropped
) -> Scene:
    name = f"scenes/scene_{si:03d}.wav"
    bed_db = float(rng.uniform(*BED_DBFS_RANGE))
    # the pieces: targets (class, ebr, candidates) and negatives, in a shuffled order
    n_neg = int(rng.integers(NEGATIVES_PER_SCENE[0], NEGATIVES_PER_SCENE[1] + 1))
    items = [("target", c, e, cands) for c, e, cands in group]
    for j in range(n_neg):
        cands = [neg_order[(neg_pos[0] + t) % len(neg_order)] for t in range(RETRIES + 1)]
        neg_pos[0] += 1
        items.append(("negative", None, ebrs[(si + j) % len(ebrs)], cands))
    items = [items[i] for i in rng.permutation(len(items))]
    # choose the segments (cut, faded) first: the layout needs their lengths
    chosen = []
    for kind, c, e, cands in items:
        segs = []
        for r in cands:
            if kind == "target" and r.path in used[e]:
                continue
            x = clips.get(r)
            if x is None:
                continue
            segs.append((r, *_segment(x)))
            if len(segs) > RETRIES:
                break
        chosen.append((kind, c, e, segs))
    gaps = [float(rng.uniform(*EDGE_S))] + [float(rng.uniform(*GAP_S)) for _ in chosen[1:]]
    tail = float(rng.uniform(*EDGE_S))
    longest = [max((s[1].size for s in segs), default=0) for *_, segs in chosen]
    total = int(sum(g * SR for g in gaps) + sum(longest) + tail * SR)
    n = max(int(MIN_SCENE_S * SR), total)
    bed = _bed(n, bed_db, rng, clips, bg_order, bg_pos)
    mix = bed.copy()
    events = []
    t = 0
    for (kind, c, e, segs), g in zip(chosen, gaps):
        t += int(g * SR)
        placed, why = None, []
        for r, seg, cut in segs:
            if kind == "target" and r.path in used[e]:  # taken by an earlier event of this scene
                why.append((r.path, "used"))
                continue
            a0, a1 = active_span(seg)
            b = bed[t : t + seg.size]
            pe, pb = np.mean(seg[a0:a1] ** 2), np.mean(b[a0:a1] ** 2)
            if pe <= 0 or pb <= 0 or b.size < seg.size:
                why.append((r.path, "silent"))
                continue
            gain = math.sqrt(pb * 10 ** (e / 10) / pe)
            ev = seg * gain
            if np.abs(ev + b).max() >= 32767:
                why.append((r.path, "would clip"))
                continue
            aud = audible_span(ev, b)
            if aud is None:
                why.append((r.path, "inaudible"))
                continue
            placed = (r, ev, cut, a0, a1, gain, aud)
            break
        if placed is None:
            if kind == "target":
                dropped.append(
                    {
                        "scene": name,
                        "label": c,
                        "ebr_db": e,
                        "tried": [f"{p} ({w})" for p, w in why],
                    }
                )
            t -= int(g * SR)  # the next piece keeps its own gap to the last one
            continue
        r, ev, cut, a0, a1, gain, aud = placed
        mix[t : t + ev.size] += ev
        if kind == "target":
            used[e].add(r.path)

        def s(k, t=t):
            return round((t + k) / SR, 3)

        events.append(
            {
                "scene": name,
                "onset_s": s(aud[0]),
                "offset_s": s(aud[1]),
                "label": c if kind == "target" else r.label,
                "kind": kind,
                "ebr_db": e,
                "source": r.path,
                "source_label": r.source_label,
                "audible_onset_s": s(aud[0]),
                "audible_offset_s": s(aud[1]),
                "pasted_onset_s": s(0),
                "pasted_offset_s": s(ev.size),
                "active_onset_s": s(a0),
                "active_offset_s": s(a1),
                "cut_start_s": round(cut / SR, 3),
                "gain_db": round(20 * math.log10(gain), 3),
            }
        )
        t += ev.size
    return Scene(name, to_int16(mix), events, bed_db, bed)


def _build_streams(rows, minutes, rng, clips, progress, fold):
    want = int(minutes * 60 * SR)
    info = {
        "minutes_requested": minutes,
        "clips_in_fold": len(rows),
        "repeated": 0,
        "files": [],
        "seconds": 0.0,
        "clips_used": 0,
    }
    if want == 0:
        return [], info
    if not rows:
        raise SceneError(f"fold {fold}: no non-target clips for the negative streams")
    pieces, segs, total, passes = [], [], 0, 0
    pbar = None
    if progress:
        from tqdm import tqdm

        pbar = tqdm(
            total=round(minutes, 1),
            desc=f"fold {fold} streams",
            unit="min",
            file=sys.stderr,
            leave=False,
        )
    while total < want:
        order = [rows[i] for i in rng.permutation(len(rows))]
        got = False
        for r in order:
            if total >= want:
                break
            x = clips.get(r)
            if x is None:
                continue
            got = True
            y = faded(x)
            segs.append(
                {
                    "start": total,
                    "end": total + y.size,
                    "label": r.label,
                    "source_label": r.source_label,
                    "source": r.path,
                }
            )
            pieces.append(y)
            total += y.size
            info["clips_used"] += 1
            if pbar:
                pbar.update(round(y.size / SR / 60, 3))
        if not got:
            raise SceneError(f"fold {fold}: no readable non-target clip for the negative streams")
        passes += 1
    if pbar:
        pbar.close()
    info["repeated"] = passes - 1
    x = to_int16(np.concatenate(pieces))
    per = int(STREAM_FILE_S * SR)
    streams = []
    for k, a in enumerate(range(0, x.size, per)):
        b = min(a + per, x.size)
        name = f"streams/stream_{k:02d}.wav"
        ss = []
        for s in segs:
            lo, hi = max(s["start"], a), min(s["end"], b)
            if hi > lo:
                ss.append(
                    {
                        "stream": name,
                        "start_s": round((lo - a) / SR, 3),
                        "end_s": round((hi - a) / SR, 3),
                        "label": s["label"],
                        "source_label": s["source_label"],
                        "source": s["source"],
                    }
                )
        streams.append(Stream(name, x[a:b], ss))
        info["files"].append({"name": name, "seconds": round((b - a) / SR, 3)})
    info["seconds"] = round(x.size / SR, 3)
    return streams, info


# ---- files --------------------------------------------------------------------------------------

EVENT_COLUMNS = [
    "scene",
    "onset_s",
    "offset_s",
    "label",
    "kind",
    "ebr_db",
    "source",
    "source_label",
    "audible_onset_s",
    "audible_offset_s",
    "pasted_onset_s",
    "pasted_offset_s",
    "active_onset_s",
    "active_offset_s",
    "cut_start_s",
    "gain_db",
]
STREAM_COLUMNS = ["stream", "start_s", "end_s", "label", "source_label", "source"]


def _write_wav(path: Path, pcm: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), pcm, SR, subtype="PCM_16", format="WAV")


def _csv_text(rows, cols) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write(ss: SceneSet, out) -> Path:
    """Write the set under `out` (a temporary sibling folder, renamed when complete; an existing
    `out` is replaced)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "scenes").mkdir()
        (tmp / "streams").mkdir()
        for s in ss.scenes:
            _write_wav(tmp / s.name, s.pcm)
            (tmp / s.name).with_suffix(".txt").write_text(
                "".join(
                    f"{e['onset_s']:.3f}\t{e['offset_s']:.3f}\t{e['label']}\n" for e in s.targets
                )
            )
        for s in ss.streams:
            _write_wav(tmp / s.name, s.pcm)
        (tmp / "events.csv").write_text(
            _csv_text([e for s in ss.scenes for e in s.events], EVENT_COLUMNS)
        )
        truth = [
            {
                "scene": e["scene"],
                "onset_s": e["onset_s"],
                "offset_s": e["offset_s"],
                "label": e["label"],
                "source": e["source"],
            }
            for s in ss.scenes
            for e in s.targets
        ]
        truth += [
            {"scene": s.name, "onset_s": "", "offset_s": "", "label": "", "source": ""}
            for s in ss.scenes
            if not s.targets
        ]
        truth += [
            {"scene": s.name, "onset_s": "", "offset_s": "", "label": "", "source": ""}
            for s in ss.streams
        ]
        (tmp / "truth.csv").write_text(
            _csv_text(truth, ["scene", "onset_s", "offset_s", "label", "source"])
        )
        (tmp / "streams.csv").write_text(
            _csv_text([g for s in ss.streams for g in s.segments], STREAM_COLUMNS)
        )
        (tmp / "index.json").write_text(json.dumps(ss.index, indent=1) + "\n")
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ss.path = out
    return out


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def load(path) -> SceneSet:
    """A set written by `write` (WAVs, events.csv, streams.csv, index.json)."""
    from tools.node import audio

    path = Path(path)
    ip = path / "index.json"
    if not ip.is_file():
        raise SceneError(
            f"{path}: not a scene set (no index.json; build one with "
            f"`python -m training scenes build`)"
        )
    try:
        index = json.loads(ip.read_text())
        ev = list(csv.DictReader((path / "events.csv").read_text().splitlines()))
        sg = list(csv.DictReader((path / "streams.csv").read_text().splitlines()))
    except (OSError, ValueError) as e:
        raise SceneError(f"{path}: unreadable scene set ({e})") from None
    num = {c for c in (*EVENT_COLUMNS, *STREAM_COLUMNS) if c.endswith(("_s", "_db"))}
    ev = [{k: (_num(v) if k in num else v) for k, v in r.items()} for r in ev]
    sg = [{k: (_num(v) if k in num else v) for k, v in r.items()} for r in sg]
    try:
        scenes = [
            Scene(
                s["name"],
                audio.load(path / s["name"]),
                [e for e in ev if e["scene"] == s["name"]],
                s.get("bed_dbfs", 0.0),
            )
            for s in index["scenes"]
        ]
        streams = [
            Stream(
                f["name"], audio.load(path / f["name"]), [g for g in sg if g["stream"] == f["name"]]
            )
            for f in index["streams"]["files"]
        ]
    except audio.AudioError as e:
        raise SceneError(str(e)) from None
    return SceneSet(
        index["fold"],
        index["seed"],
        index["classes"],
        index["ebrs_db"],
        scenes,
        streams,
        index,
        path,
    )


# ---- inspect ------------------------------------------------------------------------------------


def summary_text(ss: SceneSet) -> str:
    ix = ss.index
    cols = [f"{e:g}" for e in ss.ebrs]
    lines = [
        f"scene set {ss.path or '(in memory)'}: fold {ss.fold}, seed {ss.seed}",
        f"scenes: {len(ss.scenes)}, {sum(s.seconds for s in ss.scenes) / 60:.1f} min of bed, "
        f"{sum(len(s.targets) for s in ss.scenes)} target events, "
        f"{sum(len(s.events) - len(s.targets) for s in ss.scenes)} hard negatives",
        f"streams: {len(ss.streams)} files, {sum(s.seconds for s in ss.streams) / 60:.1f} min "
        f"({ix['streams']['clips_used']} clips of {ix['streams']['clips_in_fold']} non-target "
        f"clips in the fold; list repeated {ix['streams']['repeated']}x)",
        "",
        "events per class per EBR (dB):",
        "  " + "class".ljust(22) + "".join(c.rjust(7) for c in cols) + "  total",
    ]
    for c, d in ix["counts"].items():
        lines.append(
            "  "
            + c.ljust(22)
            + "".join(str(d.get(k, 0)).rjust(7) for k in cols)
            + str(sum(d.values())).rjust(7)
        )
    if ix.get("missing_classes"):
        lines.append(f"classes without clips in fold {ss.fold}: {', '.join(ix['missing_classes'])}")
    if ix.get("dropped_inaudible"):
        lines.append(
            f"dropped (never audible over the bed / would clip): "
            f"{len(ix['dropped_inaudible'])} events"
        )
    return "\n".join(lines)


def plot_scene(ss: SceneSet, name: str, png, detections=None) -> Path:
    """Waveform and spectrogram of one scene with the event spans (pasted: light, audible: dark)
    coloured by class; hard negatives grey (plot_timeline)."""
    sc = next((s for s in ss.scenes if s.name == name or Path(s.name).stem == name), None)
    if sc is None:
        raise SceneError(f"no scene '{name}' (scenes: {ss.scenes[0].name} ...)")
    return plot_timeline(
        sc.pcm,
        sc.events,
        ss.classes,
        png,
        f"{sc.name} (fold {ss.fold}; bed {sc.bed_dbfs:.1f} dBFS)",
        detections,
    )


def plot_timeline(
    pcm: np.ndarray, events: list[dict], classes, png, title: str, detections=None
) -> Path:
    """The timeline plot: waveform and spectrogram, events.csv rows as spans (targets coloured
    by class, missed targets hatched when `hit` is given; hard negatives grey) and, when given,
    the node's detections [{label, onset_s, match: hit|false}] as markers (hit: class colour,
    false: red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = pcm.astype(np.float64) / 32768
    t = np.arange(x.size) / SR
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(14, 6), sharex=True)
    a1.plot(t, x, lw=0.3, color="k")
    a2.specgram(x + 1e-9, NFFT=512, Fs=SR, noverlap=256, cmap="magma")
    cmap = plt.get_cmap("tab10")
    colour = lambda lab: cmap(list(classes).index(lab) % 10) if lab in classes else "grey"  # noqa: E731
    for e in events:
        col = "grey" if e["kind"] == "negative" else colour(e["label"])
        for ax in (a1, a2):
            ax.axvspan(e["pasted_onset_s"], e["pasted_offset_s"], color=col, alpha=0.12)
            ax.axvspan(
                e["audible_onset_s"],
                e["audible_offset_s"],
                color=col,
                alpha=0.35,
                hatch="//" if e.get("hit") is False else None,
            )
        tag = "" if "hit" not in e else (" hit" if e["hit"] else " MISSED")
        a1.text(
            e["audible_onset_s"],
            0.92,
            f"{e['label']} {float(e['ebr_db'] or 0):+g} dB{tag}"
            if e["kind"] == "target"
            else e["label"],
            fontsize=8,
            color="k",
            transform=a1.get_xaxis_transform(),
            va="top",
        )
    for d in detections or []:
        col = colour(d["label"]) if d["match"] == "hit" else "red"
        for ax in (a1, a2):
            ax.axvline(d["onset_s"], color=col, lw=1.5, ls="-" if d["match"] == "hit" else "--")
        a1.text(
            d["onset_s"],
            0.05,
            f"{d['label']} ({d['match']})",
            fontsize=7,
            color=col,
            rotation=90,
            transform=a1.get_xaxis_transform(),
            va="bottom",
        )
    a1.set_ylabel("amplitude")
    a2.set_ylabel("Hz")
    a2.set_xlabel("s")
    a1.set_title(
        title + ("" if detections is None else "; node detections: solid = hit, dashed red = false")
    )
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


# ---- CLI ----------------------------------------------------------------------------------------


def add_parser(sub) -> None:
    """Register `scenes` (build / inspect / eval) on the training CLI's subparsers."""
    from pathlib import Path as _P

    p = sub.add_parser(
        "scenes",
        help="scene benchmark: build / inspect / eval",
        description="The scene benchmark of one cross-validation fold: the fold's target "
        "events mixed into beds of its own background recordings at set "
        "event-to-background ratios, its hard negatives, and long streams of its "
        "non-target clips; scored through the node as deployed.",
    )
    s = p.add_subparsers(dest="scenes_cmd", metavar="action")
    b = s.add_parser("build", help="build one fold's scenes and negative streams")
    b.add_argument(
        "--csv",
        type=_P,
        required=True,
        help="clip CSV (path,label,fold,...), e.g. all_metadata.csv",
    )
    b.add_argument("--root", type=_P, required=True, help="folder the CSV's paths are relative to")
    b.add_argument("--fold", type=int, required=True, help="use this fold's recordings only")
    b.add_argument(
        "--out",
        type=_P,
        required=True,
        help="output folder (scenes/*.wav + .txt, streams/*.wav, events.csv, truth.csv, "
        "streams.csv, index.json); written whole or not at all",
    )
    b.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    import re

    b._negative_number_matcher = re.compile(r"^-\d")  # `--ebr -6,0,6` is a value
    b.add_argument(
        "--ebr",
        default=",".join(f"{e:g}" for e in DEFAULT_EBRS),
        help="event-to-background ratios, dB (default -6,0,6)",
    )
    b.add_argument(
        "--per-ebr",
        type=int,
        default=PER_EBR,
        help=f"events per class per EBR (default {PER_EBR}; fewer where the fold lacks clips)",
    )
    b.add_argument("--scenes", type=int, default=None, help="at most this many scenes")
    b.add_argument(
        "--stream-minutes",
        type=float,
        default=STREAM_MINUTES,
        help=f"minutes of negative streams (default {STREAM_MINUTES:g}; the fold's "
        "non-target clips are repeated when they are shorter)",
    )
    b.add_argument("--classes", default=None, help="target classes (default training.data's)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    i = s.add_parser("inspect", help="summary of a built set")
    i.add_argument("dir", type=_P, help="a folder written by `scenes build`")
    i.add_argument("--plot", default=None, metavar="SCENE", help="timeline PNG of this scene")
    i.add_argument("--png", type=_P, default=None, help="where (default DIR/<scene>.png)")
    e = s.add_parser("eval", help="score a model on a built set through the node")
    e.add_argument("--scenes", type=_P, required=True, help="a folder written by `scenes build`")
    e.add_argument("--model", type=_P, default=None, help="model folder (default firmware/model)")
    e.add_argument(
        "--json-out",
        type=_P,
        default=None,
        metavar="FILE",
        help="write every figure as JSON to FILE",
    )
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args) -> int:
    """Run a parsed `scenes` command; bad input: one line, exit 2."""

    def die(msg):
        print(f"python -m training scenes: error: {msg}", file=sys.stderr)
        return 2

    try:
        if args.scenes_cmd == "build":
            if not args.root.is_dir():
                return die(f"{args.root}: no such folder")
            rows = data.read_csv(args.csv)
            classes = list(data.ClassMap.parse(args.classes).targets)
            import time

            t0 = time.time()
            ss = build_fold(
                rows,
                args.root,
                args.fold,
                args.seed,
                out=args.out,
                classes=classes,
                ebrs=args.ebr,
                per_ebr=args.per_ebr,
                n_scenes=args.scenes,
                stream_minutes=args.stream_minutes,
                progress=not args.quiet,
            )
            print(summary_text(ss))
            print(f"wrote {args.out} in {time.time() - t0:.0f} s")
            return 0
        if args.scenes_cmd == "inspect":
            ss = load(args.dir)
            print(summary_text(ss))
            if args.plot:
                png = plot_scene(
                    ss, args.plot, args.png or args.dir / f"{Path(args.plot).stem}.png"
                )
                print(f"wrote {png}")
            return 0
        if args.scenes_cmd == "eval":
            from tools.node import model as tmodel
            from training import scene_eval

            ss = load(args.scenes)
            try:
                m = tmodel.load(args.model)
            except tmodel.ModelError as e:
                return die(str(e))
            res = scene_eval.evaluate_fold(m, ss, progress=not args.quiet)
            print(scene_eval.summary_text(res))
            if args.json_out:
                args.json_out.parent.mkdir(parents=True, exist_ok=True)
                args.json_out.write_text(json.dumps(res, indent=1) + "\n")
                print(f"wrote {args.json_out}")
            return 0
        return die("choose an action: build, inspect or eval")
    except data.DataError as e:
        return die(str(e))
