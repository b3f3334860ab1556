"""Measure the block-power gate on real clips: where it opens, how much it keeps inference busy.

    python -m tools.gate_eval --root ../shared/data --csv ../shared/data/all_metadata.csv

Every clip is streamed through the node's C core (tools.core.Node) after a 1 s lead-in at the
clip's own noise floor (tools.audio.lead_in), as a node that has been listening to the room
would hear it.  Figures:
  - duty cycle: the audio time covered by analysis windows (what the classifier looks at) as a
    fraction of the audio time, on steady background recordings in steady state: each clip is
    played twice (tools.audio.looped) and only the second pass counts, so the figure measures
    the background itself, not the moment it starts (dataset clips start abruptly);
  - recall: the fraction of impulsive event clips in which an analysis window covers the clip's
    loudest block (the event's peak), i.e. the classifier saw the event.  The lead-in of an
    event clip is at its own floor but at least ROOM_BELOW_PEAK_DB below its peak: many dataset
    clips are 1-s chunks cut from inside the event, whose quietest part is the event itself.
    `gate_recall_impulsive_own_floor` is the same figure with the lead-in at the clip's own floor.
Reported next to the headline, not instead of it:
  - per-source duty (the CSV's source_label; Edge-Impulse chunks as one source);
  - `gate_duty_cycle_background_unpadded`: the same measurement with the digital silence that
    datasets pad short clips with (blocks below -90 dBFS at either end, 10 ESC clips) cut off
    before looping: looped, the padding becomes "silence, then the background starts again"
    every 5 s, which a node in a real room never hears.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools import audio, core

IMPULSIVE = ("gunshot", "glass_breaking", "fireworks_explosion", "door_slam")
ROOM_BELOW_PEAK_DB = 20.0   # event clips: the room is at least this far below the event's peak
BACKGROUND = ("background",)
H = core.HOP
WINDOW_SAMPLES = core.P.window_samples


SILENCE_DBFS = -90.0        # digital silence (dataset padding), as in tools.audio.lead_in


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
    return x[keep[0] * H:min(x.size, (keep[-1] + 1) * H)]


@dataclass
class ClipResult:
    path: str
    label: str
    seconds: float
    window_seconds: float      # union of analysis windows inside the clip
    opened_on_peak: bool
    trigger_times_s: list      # trigger onsets relative to the clip start
    peak_time_s: float
    opened_own_floor: bool | None = None

    @property
    def duty(self) -> float:
        return self.window_seconds / self.seconds if self.seconds else 0.0


def window_coverage(windows, offset: int, n: int) -> np.ndarray:
    """Boolean mask of the n samples after `offset` that some analysis window covers."""
    covered = np.zeros(n, bool)
    for w in windows:
        a = max(w.start_sample - offset, 0)
        b = min(w.start_sample - offset + WINDOW_SAMPLES, n)
        if b > a:
            covered[a:b] = True
    return covered


def run_clip(x: np.ndarray, *, path: str = "", label: str = "", gate: dict | None = None,
             steady: bool = False, room_below_peak_db: float | None = None) -> ClipResult:
    """Stream one clip (after its lead-in; with steady=True twice, measuring the second pass)."""
    body = audio.looped(x) if steady else x
    stream, pre = audio.with_lead_in(body, max_below_peak_db=room_below_peak_db)
    if steady:
        pre += body.size - x.size
    node = core.Node(gate=gate)
    node.process(stream)
    node.flush()
    covered = window_coverage(node.windows, pre, x.size)
    lv = audio.block_levels_db(x)
    pk = int(np.argmax(lv)) if lv.size else 0
    p0, p1 = pre + pk * H, pre + (pk + 1) * H
    opened = any(w.start_sample <= p0 and w.start_sample + WINDOW_SAMPLES >= p1 for w in node.windows)
    sr = audio.SR
    return ClipResult(path, label, x.size / sr, covered.sum() / sr, opened,
                      [round((w.trigger_sample - pre) / sr, 3) for w in node.windows], pk * H / sr)


def read_csv(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def evaluate(root: Path, rows: list[dict], *, gate: dict | None = None, progress: bool = True) -> dict:
    from tqdm import tqdm

    rows = [r for r in rows if r["label"] in IMPULSIVE + BACKGROUND]
    results, unpadded, sources = [], [], {}
    for r in tqdm(rows, desc="gate", unit="clip", disable=not progress):
        try:
            x = audio.load(root / r["path"])
        except audio.AudioError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        if r["label"] in BACKGROUND:
            sources[r["path"]] = source_of(r)
            results.append(run_clip(x, path=r["path"], label=r["label"], gate=gate, steady=True))
            t = trim_padding(x)
            unpadded.append(results[-1] if t.size == x.size else
                            run_clip(t, path=r["path"], label=r["label"], gate=gate, steady=True))
            continue
        own = run_clip(x, path=r["path"], label=r["label"], gate=gate)
        res = run_clip(x, path=r["path"], label=r["label"], gate=gate,
                       room_below_peak_db=ROOM_BELOW_PEAK_DB)
        res.opened_own_floor = own.opened_on_peak
        results.append(res)
    bg = [c for c in results if c.label in BACKGROUND]
    imp = [c for c in results if c.label in IMPULSIVE]
    per_label = {}
    for lab in IMPULSIVE:
        cs = [c for c in imp if c.label == lab]
        if cs:
            per_label[lab] = {"clips": len(cs), "recall": sum(c.opened_on_peak for c in cs) / len(cs),
                              "recall_own_floor": sum(c.opened_own_floor for c in cs) / len(cs)}
    bg_time = sum(c.seconds for c in bg)
    un_time = sum(c.seconds for c in unpadded)
    per_source = {}
    for c, u in zip(bg, unpadded):
        d = per_source.setdefault(sources[c.path], {"clips": 0, "seconds": 0.0, "window_seconds": 0.0,
                                                    "unpadded_seconds": 0.0, "unpadded_window_seconds": 0.0})
        d["clips"] += 1
        d["seconds"] += c.seconds
        d["window_seconds"] += c.window_seconds
        d["unpadded_seconds"] += u.seconds
        d["unpadded_window_seconds"] += u.window_seconds
    per_source = {k: {"clips": d["clips"], "seconds": round(d["seconds"], 1),
                      "window_seconds": round(d["window_seconds"], 1),
                      "duty": round(d["window_seconds"] / d["seconds"], 3),
                      "duty_unpadded": round(d["unpadded_window_seconds"] / d["unpadded_seconds"], 3)}
                  for k, d in sorted(per_source.items(), key=lambda kv: -kv[1]["window_seconds"])}
    return {
        "gate_duty_cycle_background": sum(c.window_seconds for c in bg) / bg_time if bg_time else None,
        "gate_duty_cycle_background_unpadded":
            sum(c.window_seconds for c in unpadded) / un_time if un_time else None,
        "gate_recall_impulsive": sum(c.opened_on_peak for c in imp) / len(imp) if imp else None,
        "gate_recall_impulsive_own_floor":
            sum(c.opened_own_floor for c in imp) / len(imp) if imp else None,
        "background_clips": len(bg),
        "background_seconds": round(bg_time, 1),
        "impulsive_clips": len(imp),
        "per_label": per_label,
        "per_source": per_source,
        "missed": [c.path for c in imp if not c.opened_on_peak],
        "busiest_background": sorted(((round(c.duty, 3), c.path) for c in bg), reverse=True)[:10],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.gate_eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="folder the CSV paths are relative to")
    ap.add_argument("--csv", type=Path, help="metadata CSV with path,label (default ROOT/all_metadata.csv)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    csv_path = args.csv or args.root / "all_metadata.csv"
    if not csv_path.exists():
        print(f"error: {csv_path}: no such file (give --csv)", file=sys.stderr)
        return 2
    res = evaluate(args.root, read_csv(csv_path))
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
