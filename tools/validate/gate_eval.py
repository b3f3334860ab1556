"""Measure the block-power gate on real clips: where it opens, how much it keeps inference busy.

    python -m tools.gate_eval --root ../shared/data --csv ../shared/data/all_metadata.csv

Every clip is streamed through the node's C core (tools.node.core.Node) after a 1 s lead-in at the
clip's own noise floor (tools.node.audio.lead_in), as a node that has been listening to the room
would hear it.  Figures:
  - duty cycle: the audio time covered by analysis windows (what the classifier looks at) as a
    fraction of the audio time, on steady background recordings in steady state: each clip is
    played twice (tools.node.audio.looped) and only the second pass counts, so the figure measures
    the background itself, not the moment it starts (dataset clips start abruptly);
  - recall: the fraction of impulsive event clips in which an analysis window covers the clip's
    loudest block (the event's peak), i.e. the classifier saw the event.  The lead-in of an
    event clip is at its own floor but at least ROOM_BELOW_PEAK_DB below its peak: many dataset
    clips are 1-s chunks cut from inside the event, whose quietest part is the event itself.
    `gate_recall_impulsive_own_floor` is the same figure with the lead-in at the clip's own floor.
With a model (--model, or --fold-models: fold k's clips classified by DIR/fold<k>, the
cross-validation's held-out models) the node runs as it does on a board: the classifier's
verdicts feed the detector's habituation (docs/core.md), so an impulsive background that the
model rejects stops opening windows.  Without one, the gate alone (no habituation: the node
has no enabled class); `make bench` reports both (`*_gate_only` for the gate alone).
Reported next to the headline, not instead of it:
  - per-source duty (the CSV's source_label; Edge-Impulse chunks as one source);
  - `gate_duty_cycle_background_unpadded`: the same measurement with the digital silence that
    datasets pad short clips with (blocks below -90 dBFS at either end, 10 ESC clips) cut off
    before looping: looped, the padding becomes "silence, then the background starts again"
    every 5 s, which a node in a real room never hears.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.errors import BadInput
from tools.node import audio, core
from tools.node.coverage import window_coverage

IMPULSIVE = ("gunshot", "glass_breaking", "fireworks_explosion", "door_slam")
ROOM_BELOW_PEAK_DB = 20.0  # event clips: the room is at least this far below the event's peak
BACKGROUND = ("background",)
H = core.HOP
WINDOW_SAMPLES = core.P.window_samples


SILENCE_DBFS = -90.0  # digital silence (dataset padding), as in tools.node.audio.lead_in


def source_of(row: dict) -> str:
    """Background source for the per-source table: the dataset's own class name."""
    if row.get("corpus") == "glassbreak_ei":
        return "edge_impulse_background"
    s = row.get("source_label", "").strip().lower().replace(" ", "_")
    return {"crackling_fire": "fire_crackling"}.get(s, s or row["label"])


def trim_padding(x: np.ndarray) -> np.ndarray:
    """x without the digital-silence blocks at its start and end (dataset zero padding)."""
    lv = audio.block_levels_db(x)
    keep = np.nonzero(lv > SILENCE_DBFS)[0]
    if keep.size == 0:
        return x
    return x[keep[0] * H : min(x.size, (keep[-1] + 1) * H)]


@dataclass
class ClipResult:
    path: str
    label: str
    seconds: float
    window_seconds: float  # union of analysis windows inside the clip
    opened_on_peak: bool
    trigger_times_s: list  # trigger onsets relative to the clip start
    peak_time_s: float
    opened_own_floor: bool | None = None

    @property
    def duty(self) -> float:
        return self.window_seconds / self.seconds if self.seconds else 0.0


def run_clip(
    x: np.ndarray,
    *,
    path: str = "",
    label: str = "",
    gate: dict | None = None,
    steady: bool = False,
    room_below_peak_db: float | None = None,
    model=None,
) -> ClipResult:
    """Stream one clip (after its lead-in; with steady=True twice, measuring the second pass).
    model: a tools.node.model.Model classifying the windows (habituation), or None (gate alone)."""
    body = audio.looped(x) if steady else x
    stream, pre = audio.with_lead_in(body, max_below_peak_db=room_below_peak_db)
    if steady:
        pre += body.size - x.size
    node = core.Node(gate=gate) if model is None else model.node(gate=gate)
    node.process(stream)
    node.flush()
    covered = window_coverage(node.windows, pre, x.size)
    lv = audio.block_levels_db(x)
    pk = int(np.argmax(lv)) if lv.size else 0
    p0, p1 = pre + pk * H, pre + (pk + 1) * H
    opened = any(
        w.start_sample <= p0 and w.start_sample + WINDOW_SAMPLES >= p1 for w in node.windows
    )
    sr = audio.SR
    return ClipResult(
        path,
        label,
        x.size / sr,
        covered.sum() / sr,
        opened,
        [round((w.trigger_sample - pre) / sr, 3) for w in node.windows],
        pk * H / sr,
    )


def read_csv(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def _model_of(row: dict, model, fold_models: dict | None):
    """(use the row?, the model that classifies its windows): with fold_models, the model of
    the row's fold, and rows of folds without one are skipped."""
    if fold_models is None:
        return True, model
    m = fold_models.get(str(row.get("fold", "")).strip())
    return m is not None, m


def evaluate(
    root: Path,
    rows: list[dict],
    *,
    gate: dict | None = None,
    progress: bool = True,
    model=None,
    fold_models: dict | None = None,
) -> dict:
    """model: classify every clip's windows with this tools.node.model.Model; fold_models: {fold:
    Model} for the clips of each fold (held-out models); neither: the gate alone."""
    from tqdm import tqdm

    rows = [r for r in rows if r["label"] in IMPULSIVE + BACKGROUND]
    results, unpadded, sources = [], [], {}
    for r in tqdm(rows, desc="gate", unit="clip", disable=not progress):
        use, m = _model_of(r, model, fold_models)
        if not use:
            continue
        try:
            x = audio.load(root / r["path"])
        except audio.AudioError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        kw = dict(path=r["path"], label=r["label"], gate=gate, model=m)
        if r["label"] in BACKGROUND:
            sources[r["path"]] = source_of(r)
            results.append(run_clip(x, steady=True, **kw))
            t = trim_padding(x)
            unpadded.append(results[-1] if t.size == x.size else run_clip(t, steady=True, **kw))
            continue
        own = run_clip(x, **kw)
        res = run_clip(x, room_below_peak_db=ROOM_BELOW_PEAK_DB, **kw)
        res.opened_own_floor = own.opened_on_peak
        results.append(res)
    bg = [c for c in results if c.label in BACKGROUND]
    imp = [c for c in results if c.label in IMPULSIVE]
    per_label = {}
    for lab in IMPULSIVE:
        cs = [c for c in imp if c.label == lab]
        if cs:
            per_label[lab] = {
                "clips": len(cs),
                "recall": sum(c.opened_on_peak for c in cs) / len(cs),
                "recall_own_floor": sum(c.opened_own_floor for c in cs) / len(cs),
            }
    bg_time = sum(c.seconds for c in bg)
    un_time = sum(c.seconds for c in unpadded)
    per_source = {}
    for c, u in zip(bg, unpadded):
        d = per_source.setdefault(
            sources[c.path],
            {
                "clips": 0,
                "seconds": 0.0,
                "window_seconds": 0.0,
                "unpadded_seconds": 0.0,
                "unpadded_window_seconds": 0.0,
            },
        )
        d["clips"] += 1
        d["seconds"] += c.seconds
        d["window_seconds"] += c.window_seconds
        d["unpadded_seconds"] += u.seconds
        d["unpadded_window_seconds"] += u.window_seconds
    per_source = {
        k: {
            "clips": d["clips"],
            "seconds": round(d["seconds"], 1),
            "window_seconds": round(d["window_seconds"], 1),
            "duty": round(d["window_seconds"] / d["seconds"], 3),
            "duty_unpadded": round(d["unpadded_window_seconds"] / d["unpadded_seconds"], 3),
        }
        for k, d in sorted(per_source.items(), key=lambda kv: -kv[1]["window_seconds"])
    }
    return {
        "gate_duty_cycle_background": sum(c.window_seconds for c in bg) / bg_time
        if bg_time
        else None,
        "gate_duty_cycle_background_unpadded": sum(c.window_seconds for c in unpadded) / un_time
        if un_time
        else None,
        "gate_recall_impulsive": sum(c.opened_on_peak for c in imp) / len(imp) if imp else None,
        "gate_recall_impulsive_own_floor": sum(c.opened_own_floor for c in imp) / len(imp)
        if imp
        else None,
        "background_clips": len(bg),
        "background_seconds": round(bg_time, 1),
        "impulsive_clips": len(imp),
        "per_label": per_label,
        "per_source": per_source,
        "missed": [c.path for c in imp if not c.opened_on_peak],
        "busiest_background": sorted(((round(c.duty, 3), c.path) for c in bg), reverse=True)[:10],
    }


IMPULSIVE_BACKGROUNDS = ("fire_crackling", "water_drops")  # sequences of real impulses
MIX_SNRS_DB = (0.0, 3.0, 6.0, 10.0)
MIX_LEAD_S = 6.0
NO_HABITUATION = dict(habituate=0, habituate_rechecks=0)  # tools.node.core.Node settings


def mixed_recall(
    root: Path,
    rows: list[dict],
    *,
    model=None,
    fold_models: dict | None = None,
    node_kw: dict | None = None,
    snrs_db=MIX_SNRS_DB,
    progress: bool = True,
) -> dict:
    """Recall of impulsive events heard *inside* an impulsive background (crackling fire,
    dripping water): each event clip is mixed into MIX_LEAD_S s of a background clip of the
    same fold (looped, so the node has heard it long enough to habituate), its loudest block
    snr dB above the background's loudest block; detected = an analysis window covers the
    event's loudest block.  The cost of habituation shows here, not on isolated clips.
    node_kw: tools.node.core.Node settings, e.g. NO_HABITUATION."""
    from tqdm import tqdm

    bgs = [r for r in rows if r["label"] in BACKGROUND and source_of(r) in IMPULSIVE_BACKGROUNDS]
    evs = [r for r in rows if r["label"] in IMPULSIVE]
    by_fold: dict[str, list] = {}
    for r in bgs:
        by_fold.setdefault(str(r.get("fold", "")).strip(), []).append(r)
    hits = {snr: [0, 0] for snr in snrs_db}
    rng = np.random.default_rng(0)
    for r in tqdm(evs, desc="mixed", unit="clip", disable=not progress):
        f = str(r.get("fold", "")).strip()
        use, m = _model_of(r, model, fold_models)
        if not use or not by_fold.get(f):
            continue
        b = by_fold[f][int(rng.integers(len(by_fold[f])))]
        try:
            x, y = audio.load(root / r["path"]), audio.load(root / b["path"])
        except audio.AudioError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        y = trim_padding(y)
        reps = int(np.ceil((MIX_LEAD_S * audio.SR + x.size) / max(y.size, 1)))
        bg = np.concatenate([y] * max(reps, 1))[: int(MIX_LEAD_S * audio.SR) + x.size].astype(
            np.float64
        )
        lx, ly = audio.block_levels_db(x), audio.block_levels_db(y)
        if lx.size == 0 or ly.size == 0:
            continue
        pk = int(np.argmax(lx))
        off = int(MIX_LEAD_S * audio.SR)
        p0, p1 = off + pk * H, off + (pk + 1) * H
        for snr in snrs_db:
            g = 10 ** ((ly.max() + snr - lx.max()) / 20)
            mix = bg.copy()
            mix[off : off + x.size] += g * x
            mix = np.clip(np.round(mix), -32768, 32767).astype(np.int16)
            stream, pre = audio.with_lead_in(mix)
            node = core.Node() if m is None else m.node(**(node_kw or {}))
            node.process(stream)
            node.flush()
            ok = any(
                w.start_sample <= pre + p0 and w.start_sample + WINDOW_SAMPLES >= pre + p1
                for w in node.windows
            )
            hits[snr][0] += ok
            hits[snr][1] += 1
    return {f"{snr:g}": round(h / n, 4) if n else None for snr, (h, n) in hits.items()} | {
        "clips": hits[snrs_db[0]][1],
        "backgrounds": list(IMPULSIVE_BACKGROUNDS),
    }


def run(
    root: Path,
    csv_path: Path | None = None,
    json_out: Path | None = None,
    model_dir: Path | None = None,
    fold_models: Path | None = None,
    mixed: bool = False,
) -> int:
    """The command's work (python -m tools.gate_eval): print the figures as JSON, and write
    them to `json_out` if given; BadInput for a missing file or model."""
    csv_path = csv_path or root / "all_metadata.csv"
    if not csv_path.exists():
        raise BadInput(f"{csv_path}: no such file (give --csv)")
    if mixed and model_dir is None and fold_models is None:
        raise BadInput("--mixed needs --model or --fold-models")
    from tools.node import model as _model

    try:
        model = _model.load(model_dir) if model_dir else None
        folds = None
        if fold_models:
            dirs = sorted(fold_models.glob("fold*/manifest.json"))
            if not dirs:
                raise BadInput(f"{fold_models}: no fold<k>/manifest.json in it")
            folds = {d.parent.name[4:]: _model.load(d.parent) for d in dirs}
    except _model.ModelError as e:
        raise BadInput(str(e)) from None
    rows = read_csv(csv_path)
    res = evaluate(root, rows, model=model, fold_models=folds)
    if mixed:
        res["mixed_recall_impulsive"] = {
            "habituating": mixed_recall(root, rows, model=model, fold_models=folds),
            "not_habituating": mixed_recall(
                root, rows, model=model, fold_models=folds, node_kw=NO_HABITUATION
            ),
        }
    text = json.dumps(res, indent=2)
    print(text)
    if json_out:
        json_out.write_text(text + "\n")
    return 0
