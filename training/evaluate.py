"""Evaluate an exported int8 model the way the node runs it, and as a plain classifier.

    python -m training.evaluate --csv ../shared/data/all_metadata.csv --root ../shared/data \\
        --fold 5 --json-out build/eval/fold5.json [--model firmware/model] [--skip-bad]

A listed clip that cannot be read (missing, malformed, empty) refuses the run before any work
(one line naming the first such file and the count, exit 2) unless --skip-bad; skipped clips
are counted in every summary (stdout, `skipped` in the JSON, the report).

Library (what `python -m training crossval` calls once per fold; keep the signature stable):

    from training import evaluate
    res = evaluate.evaluate("firmware/model", rows, root, progress=True)   # -> dict (JSON below)
    evaluate.read_csv(path) -> list[dict]                  # rows with at least path,label
    evaluate.main(argv=None) -> int                        # the CLI; 2 = bad input

Every clip is streamed as a node that has been listening to the room hears it: 1 s of noise at
the clip's own floor before it (tools.node.audio.with_lead_in, as tools/demo.py and tools/gate_eval.py
do) and 1 s after it (so that a window opened near the end of a short clip is completed with
room noise, not with digital silence).  Only what overlaps the clip itself counts.
Many dataset clips are chunks cut from inside an event (1-s Edge-Impulse glass chunks), whose
own floor is the event itself, so the gate sees no onset: `room_below_peak_db` (CLI
`--room-below-peak 20`, the figure tools.validate.gate_eval headlines) puts the room at least that far
below the clip's loudest block instead (not for `background` clips: stationary ambience has
no peak to be below).  `steady_background` (`--steady-background`) plays each background clip
twice and scores only the second pass, so that false alarms are counted in steady state rather
than at the clip's abrupt start (the way tools.validate.gate_eval measures duty).

Two systems are scored on the same clips, with the same int8 model run by the real TFLM
interpreter (tools.node.model):
  - `node`: the real C detector (tools.node.core.Node in gated mode with the manifest's thresholds):
    gate -> analysis windows -> model -> thresholds -> events (holdoff merging).  The clip's
    answer is the class of its highest-scoring event (END record: best score over the merged
    hits); no event = "no target event".  Curve scores: per class, the best score over the gated
    windows that overlap the clip (0 when the gate never opened).
  - `classifier`: the model alone, without gate and thresholds, on one window per clip: the
    window aligned on the clip's loudest block (the block's hop minus the node's preroll, i.e.
    where the node would place it on an onset there), computed with the same front end
    (tools.node.core.features of the same stream).  The clip's answer is that window's arg-max class,
    which may be the negative class.  This is the figure comparable with published clip
    classifiers (one decision per segmented clip); the gap to `node` is what the gate and the
    thresholds cost (or gain).  Curve scores: that window's per-class scores.
  - `classifier_any_window` (extra): every `classifier_stride` hops (default 4 = 64 ms) the
    node's continuous mode classifies a window; windows overlapping the clip by at least half of
    min(clip, window) are candidates; the answer is the arg-max of the most target-like window
    (highest target-class score).  An upper bound on target recall that is biased against long
    negative clips (many chances for one window to look like a target).  Curve scores: per
    class, the best score over the candidate windows.
  - `gate_ceiling` (extra, no curves): what the node would score with a perfect model behind
    its gate: a target clip is answered right when the gate placed at least one analysis window
    on it and "no target event" when it placed none; negatives never fire.  The node's figures
    cannot exceed it whatever the model, so `gate_ceiling` minus `node` is what the model and
    its thresholds lose, 1 minus `gate_ceiling` what the gate loses.

Labels that are not target classes (background, other, door_slam, car_horn, ...) are negatives:
the correct answer is "no target event".  `false_alarms_per_hour` counts the node's events on
negative clips per hour of negative audio (lead-in and tail excluded);
`false_alarms_per_hour_background` only on clips labelled `background` (stationary ambience).

JSON (top level): schema_version, n_clips, n_unreadable (= skipped), skipped, unreadable
[{path, reason}],
warnings, audio_seconds, model_sha256, model {path, name, labels, negative_label, thresholds},
feature_config_hash, classes, negative_label, thresholds (those used), settings, node, classifier,
classifier_any_window, gate_ceiling, false_alarms_per_hour, false_alarms_per_hour_background,
false_alarms {events, seconds, clips, by_label}, clips [per clip: path, label, truth, node, classifier,
classifier_any_window, events, node_scores, classifier_scores, classifier_any_window_scores,
windows].  `node` and `classifier` hold training.metrics.summary() (macro_f1,
accuracy, per_class {label: precision, recall, f1, support, ..., average_precision, roc_auc},
negative, confusion {labels, matrix}); `node` adds `diagnostics` (gate and event coverage).
A Markdown report with figures (training.report) is written next to the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training import data, metrics

SCHEMA_VERSION = 1
BACKGROUND_LABELS = ("background",)
DEFAULT_STRIDE = 4  # classifier: one continuous window every 4 hops (64 ms)
DEFAULT_LEAD_IN_S = 1.0
DEFAULT_TAIL_S = 1.0
NO_NEGATIVE_LABEL = "none"  # name of the negative when the manifest gives none


class EvalError(Exception):
    """Bad input (CSV, model, options): the CLI prints the reason and exits 2."""


# ---- input ------------------------------------------------------------------------------------


def field_of(row, name: str, default=None):
    """row[name] for CSV dicts, row.name for objects (training.data.Row); `default` if absent."""
    if isinstance(row, dict):
        v = row.get(name, default)
    else:
        v = getattr(row, name, default)
    return default if v is None else v


def read_csv(path) -> list[dict]:
    """Rows of a metadata CSV with at least `path` and `label` columns (others are kept); rows
    with an empty path are skipped (training.data.read_rows, errors as EvalError)."""
    try:
        rows = [r for r in data.read_rows(path) if (r.get("path") or "").strip()]
    except data.DataError as e:
        raise EvalError(str(e)) from None
    if not rows:
        raise EvalError(f"{path}: no clips listed")
    return rows


def unreadable_rows(rows, root) -> list[dict]:
    """[{path, reason}] of the rows whose audio cannot be read (no such file, not an audio file,
    no samples): the cheap header check the CLI runs before any work."""
    import soundfile as sf

    bad = []
    for r in rows:
        path = str(field_of(r, "path", ""))
        p = Path(root) / path
        if not p.is_file():
            bad.append({"path": path, "reason": f"{p}: no such file"})
            continue
        try:
            info = sf.info(str(p))
        except (RuntimeError, sf.LibsndfileError) as e:
            bad.append({"path": path, "reason": f"{p}: not a readable audio file ({e})"})
            continue
        if info.frames == 0:
            bad.append({"path": path, "reason": f"{p}: contains no samples"})
    return bad


def load_model(model_dir):
    """tools.node.model.load plus the evaluation's own check: the manifest must name the feature
    configuration it was trained on, and it must be this core's (else EvalError)."""
    from tools.node import model as _model
    from tools.node import params

    if isinstance(model_dir, _model.Model):
        m = model_dir
    else:
        try:
            m = _model.load(model_dir)
        except _model.ModelError as e:
            raise EvalError(str(e)) from None
    fh = m.manifest.get("feature_config_hash")
    want = params.default().feature_hash
    if fh is None:
        raise EvalError(
            f"{m.path}: manifest has no feature_config_hash: cannot prove the model "
            f"was trained on this core's features (re-export it)"
        )
    if fh != want:
        raise EvalError(
            f"{m.path}: model features {fh[:16]} != this core's {want[:16]} "
            f"(retrain, or evaluate with the matching firmware/lib)"
        )
    return m


def config_warnings(m) -> list[str]:
    """Differences that do not invalidate the model but change what it is shown: the gate and
    detector parameters (core_config_hash covers them, feature_config_hash does not) decide
    where analysis windows start, and training aligns its windows the same way."""
    from tools.node import params

    ch = m.manifest.get("core_config_hash")
    now = params.default().config_hash
    if ch is None:
        return [
            f"{m.path}: manifest has no core_config_hash: cannot tell whether the model was "
            f"trained with this node's window alignment"
        ]
    if ch != now:
        return [
            f"{m.path}: model trained with core configuration {ch[:16]}, the node now runs "
            f"{now[:16]} (same features, other gate/detector parameters, e.g. pre-roll): "
            f"retrain for figures that describe the current node"
        ]
    return []


# ---- one clip ---------------------------------------------------------------------------------


@dataclass
class ClipResult:
    path: str
    label: str
    truth: str
    seconds: float
    node: str = ""
    classifier: str = ""
    classifier_any_window: str = ""
    events: list = field(default_factory=list)
    node_scores: dict = field(default_factory=dict)
    classifier_scores: dict = field(default_factory=dict)
    classifier_any_window_scores: dict = field(default_factory=dict)
    windows: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return dict(self.__dict__)


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def run_clip(
    m,
    x: np.ndarray,
    *,
    classes: list[str],
    negative: str,
    path: str = "",
    label: str = "",
    truth: str = "",
    stride: int = DEFAULT_STRIDE,
    lead_in_s: float = DEFAULT_LEAD_IN_S,
    tail_s: float = DEFAULT_TAIL_S,
    room_below_peak_db: float | None = None,
    steady: bool = False,
    node_kw: dict | None = None,
) -> ClipResult:
    """Stream one 16 kHz int16 clip through the gated node and the classifier (peak-aligned
    window; and every continuous window).  steady=True plays the clip twice (cross-faded) and
    scores the second pass only."""
    from tools.node import audio, core

    sr = core.P.sample_rate_hz
    W = core.P.window_samples
    H = core.HOP
    FPW = core.FRAMES_PER_WINDOW
    body = audio.looped(x) if steady else x
    stream, pre = audio.with_lead_in(body, seconds=lead_in_s, max_below_peak_db=room_below_peak_db)
    pre += body.size - x.size
    if tail_s > 0:
        tail = audio.lead_in(x, tail_s, seed=1, max_below_peak_db=room_below_peak_db)
        stream = np.concatenate([stream, tail])
    c0, c1 = pre, pre + x.size
    labels = m.labels
    cls_idx = [labels.index(c) for c in classes]

    def answer(index: int) -> str:
        lab = labels[index]
        return lab if lab in classes else negative

    # the node: gate, windows, thresholds, events
    gated = []

    def on_window(w, f):
        s = m.scores(f)
        gated.append((w, s))
        return s

    kw = dict(node_kw or {})
    kw.setdefault("thresholds", m.thresholds)
    node = core.Node(on_window, m.n_classes, **kw)
    node.process(stream)
    node.flush()
    ends = [
        e
        for e in node.events
        if e.kind == "end"
        and _overlap(e.onset_sample, e.onset_sample + max(e.duration_samples, 1), c0, c1)
    ]
    best = max(ends, key=lambda e: e.score, default=None)  # first of equal scores
    node_answer = negative if best is None else answer(best.class_index)
    g = [s for w, s in gated if _overlap(w.start_sample, w.start_sample + W, c0, c1)]
    node_best = np.max(g, axis=0) if g else np.zeros(m.n_classes, np.uint8)

    # the classifier: the window aligned on the clip's loudest block the way the node aligns a
    # window on an onset (preroll hops before it), from the same front end (core.features)
    feats = core.features(stream)
    lv = audio.block_levels_db(x)
    peak = pre + (int(np.argmax(lv)) * H + H // 2 if lv.size else x.size // 2)
    s0 = min(max(peak // H - core.P.detector["preroll_frames"], 0), max(feats.shape[0] - FPW, 0))
    win = feats[s0 : s0 + FPW]
    if win.shape[0] < FPW:  # only with no lead-in/tail: pad the end
        pad = np.full((FPW - win.shape[0], win.shape[1]), core.P.quant.zero_point, np.int8)
        win = np.concatenate([win, pad])
    peak_scores = m.scores(win).astype(np.int64)
    clf_answer = answer(int(np.argmax(peak_scores)))

    # ... and over every continuous window of the clip: the most target-like one
    cont = []

    def on_cont(w, f):
        if _overlap(w.start_sample, w.start_sample + W, c0, c1) >= min(W, x.size) / 2:
            cont.append(m.scores(f))
        return np.zeros(m.n_classes, np.uint8)

    cnode = core.Node(
        on_cont,
        m.n_classes,
        thresholds=[None] * m.n_classes,
        mode="continuous",
        continuous_stride=stride,
    )
    cnode.process(stream)
    cnode.flush()
    if cont:
        S = np.array(cont, np.int64)
        k = int(np.argmax(S[:, cls_idx].max(axis=1))) if cls_idx else 0
        any_answer = answer(int(np.argmax(S[k])))
        any_best = S.max(axis=0)
    else:
        any_answer = negative
        any_best = np.zeros(m.n_classes, np.int64)

    return ClipResult(
        path=path,
        label=label,
        truth=truth,
        seconds=round(x.size / sr, 4),
        node=node_answer,
        classifier=clf_answer,
        classifier_any_window=any_answer,
        events=[
            {
                "label": labels[e.class_index],
                "score": e.score / 256,
                "onset_s": round((e.onset_sample - pre) / sr, 4),
                "duration_s": round(e.duration_samples / sr, 4),
                "hits": e.hits,
            }
            for e in ends
        ],
        node_scores={c: int(node_best[i]) / 256 for c, i in zip(classes, cls_idx)},
        classifier_scores={c: int(peak_scores[i]) / 256 for c, i in zip(classes, cls_idx)},
        classifier_any_window_scores={c: int(any_best[i]) / 256 for c, i in zip(classes, cls_idx)},
        windows={"gated": len(g), "continuous": len(cont)},
    )


# ---- the whole set ----------------------------------------------------------------------------


def _curves_into(summary: dict, clips: list[ClipResult], key: str, classes: list[str]) -> None:
    for c in classes:
        y = [r.truth == c for r in clips]
        s = [getattr(r, key)[c] for r in clips]
        cur = metrics.binary_curves(y, s)
        summary["per_class"][c]["average_precision"] = cur["average_precision"]
        summary["per_class"][c]["roc_auc"] = cur["roc_auc"]


def evaluate(
    model_dir,
    rows,
    root,
    progress: bool = True,
    *,
    classes=None,
    label_map: dict | None = None,
    stride: int = DEFAULT_STRIDE,
    lead_in_s: float = DEFAULT_LEAD_IN_S,
    tail_s: float = DEFAULT_TAIL_S,
    room_below_peak_db: float | None = None,
    steady_background: bool = False,
    node_kw: dict | None = None,
    thresholds: dict | None = None,
    include_clips: bool = True,
) -> dict:
    """Evaluate a model folder (or a loaded tools.node.model.Model) on rows: CSV dicts with at least
    path, label, or objects with .path/.label (training.data.Row); paths relative to `root`.
    Returns the JSON dict described in the module docstring.
    classes: target classes to score (default: the model's labels without its negative);
    label_map: dataset label -> model label before scoring; thresholds: {label: score or None}
    overriding the manifest's for the node (what-if analysis).  Unreadable clips are skipped
    with a message on stderr and listed under `unreadable` (the CLI refuses them before calling
    this unless --skip-bad: `unreadable_rows`).  Raises EvalError on bad input
    (model mismatch, unknown class or threshold, no readable clip)."""
    from tqdm import tqdm

    from tools.node import audio

    m = load_model(model_dir)
    warnings = config_warnings(m)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    negative = m.manifest.get("negative_label") or NO_NEGATIVE_LABEL
    targets = [lab for lab in m.labels if lab != negative]
    classes = list(classes) if classes else targets
    unknown = [c for c in classes if c not in targets]
    if unknown:
        raise EvalError(
            f"class {', '.join(unknown)} is not a target class of the model "
            f"(targets: {', '.join(targets)})"
        )
    if stride < 1:
        raise EvalError("the classifier stride is at least 1 hop")
    label_map = label_map or {}
    th = list(m.thresholds)
    for lab, v in (thresholds or {}).items():
        if lab not in m.labels:
            raise EvalError(f"threshold for {lab!r}: not a model label ({', '.join(m.labels)})")
        if v is not None and not 0.0 <= float(v) <= 1.0:
            raise EvalError(f"threshold for {lab!r}: {v} is not a score in [0, 1] (or none)")
        th[m.labels.index(lab)] = None if v is None else float(v)
    node_kw = dict(node_kw or {}, thresholds=th) if thresholds else node_kw
    root = Path(root)
    clips: list[ClipResult] = []
    unreadable = []
    for r in tqdm(rows, desc="evaluate", unit="clip", disable=not progress):
        label, path = str(field_of(r, "label", "")), str(field_of(r, "path", ""))
        mapped = label_map.get(label, label)
        truth = mapped if mapped in classes else negative
        try:
            x = audio.load(root / path)
        except audio.AudioError as e:
            print(f"skipped: {e}", file=sys.stderr)
            unreadable.append({"path": path, "reason": str(e)})
            continue
        ambience = label in BACKGROUND_LABELS
        clips.append(
            run_clip(
                m,
                x,
                classes=classes,
                negative=negative,
                path=path,
                label=label,
                truth=truth,
                stride=stride,
                lead_in_s=lead_in_s,
                tail_s=tail_s,
                room_below_peak_db=None if ambience else room_below_peak_db,
                steady=ambience and steady_background,
                node_kw=node_kw,
            )
        )
    if not clips:
        raise EvalError(
            f"no readable clip among {len(rows)} (first reason: "
            f"{unreadable[0]['reason'] if unreadable else 'none listed'})"
        )

    truth = [c.truth for c in clips]
    node = metrics.summary(truth, [c.node for c in clips], classes, negative)
    clf = metrics.summary(truth, [c.classifier for c in clips], classes, negative)
    clf_any = metrics.summary(truth, [c.classifier_any_window for c in clips], classes, negative)
    _curves_into(node, clips, "node_scores", classes)
    _curves_into(clf, clips, "classifier_scores", classes)
    _curves_into(clf_any, clips, "classifier_any_window_scores", classes)
    # the ceiling of the node behind its gate: a perfect model is right on every target clip the
    # gate placed an analysis window on (and misses the others) and never fires on a negative
    ceiling = metrics.summary(
        truth,
        [c.truth if c.truth == negative or c.windows["gated"] else negative for c in clips],
        classes,
        negative,
    )
    tgt = [c for c in clips if c.truth != negative]
    node["diagnostics"] = {
        "target_clips_with_window": (sum(c.windows["gated"] > 0 for c in tgt) / len(tgt))
        if tgt
        else None,
        "target_clips_with_event": (sum(bool(c.events) for c in tgt) / len(tgt)) if tgt else None,
        "gated_windows": sum(c.windows["gated"] for c in clips),
        "events": sum(len(c.events) for c in clips),
    }

    neg = [c for c in clips if c.truth == negative]
    by_label = {}
    for lab in sorted({c.label for c in neg}):
        cs = [c for c in neg if c.label == lab]
        ev = sum(len(c.events) for c in cs)
        sec = sum(c.seconds for c in cs)
        by_label[lab] = {
            "clips": len(cs),
            "events": ev,
            "seconds": round(sec, 2),
            "per_hour": ev * 3600 / sec if sec else None,
        }
    neg_ev = sum(len(c.events) for c in neg)
    neg_sec = sum(c.seconds for c in neg)
    bg = [c for c in neg if c.label in BACKGROUND_LABELS]
    bg_sec = sum(c.seconds for c in bg)
    bg_ev = sum(len(c.events) for c in bg)

    res = {
        "schema_version": SCHEMA_VERSION,
        "created_by": "python -m training.evaluate",
        "n_clips": len(clips),
        "n_unreadable": len(unreadable),
        "skipped": len(unreadable),
        "warnings": warnings,
        "unreadable": unreadable,
        "audio_seconds": round(sum(c.seconds for c in clips), 2),
        "model_sha256": m.sha256,
        "model": {
            "path": str(m.path),
            "name": m.manifest.get("name"),
            "labels": m.labels,
            "negative_label": m.manifest.get("negative_label"),
            "thresholds": dict(zip(m.labels, m.thresholds)),
        },
        "thresholds": dict(zip(m.labels, th)),
        "feature_config_hash": m.manifest.get("feature_config_hash"),
        "classes": classes,
        "negative_label": negative,
        "settings": {
            "lead_in_s": lead_in_s,
            "tail_s": tail_s,
            "classifier_stride_hops": stride,
            "room_below_peak_db": room_below_peak_db,
            "steady_background": steady_background,
            "classifier": "window aligned on the clip's loudest block, its arg-max",
            "classifier_any_window": "most target-like continuous window, its arg-max",
            "gate_ceiling": "a perfect model behind the node's gate: right on every target "
            "clip with an analysis window, no event on negatives",
            "node": "gated C detector, manifest thresholds, highest-scoring event",
            "label_map": label_map,
            "node_overrides": {k: v for k, v in (node_kw or {}).items() if k != "thresholds"},
            "thresholds_overridden": sorted(thresholds or {}),
        },
        "node": node,
        "classifier": clf,
        "classifier_any_window": clf_any,
        "gate_ceiling": ceiling,
        "false_alarms_per_hour": neg_ev * 3600 / neg_sec if neg_sec else None,
        "false_alarms_per_hour_background": bg_ev * 3600 / bg_sec if bg_sec else None,
        "false_alarms": {
            "events": neg_ev,
            "seconds": round(neg_sec, 2),
            "clips": len(neg),
            "background_events": bg_ev,
            "background_seconds": round(bg_sec, 2),
            "by_label": by_label,
        },
    }
    if include_clips:
        res["clips"] = [c.as_json() for c in clips]
    return res


# ---- CLI --------------------------------------------------------------------------------------


def _label_map(items) -> dict:
    out = {}
    for it in items or []:
        src, sep, dst = it.partition("=")
        if not sep or not src or not dst:
            raise EvalError(f"--map {it!r}: expected DATASET_LABEL=MODEL_LABEL")
        out[src] = dst
    return out


def _thresholds(items) -> dict:
    out = {}
    for it in items or []:
        lab, sep, v = it.partition("=")
        if not sep or not lab:
            raise EvalError(f"--threshold {it!r}: expected LABEL=SCORE")
        if v.strip().lower() in ("none", "off", "null"):
            out[lab] = None
            continue
        try:
            out[lab] = float(v)
        except ValueError:
            raise EvalError(f"--threshold {it!r}: {v!r} is not a number") from None
    return out


def main(argv=None) -> int:
    from tools.node import params

    ap = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--csv",
        type=Path,
        required=True,
        help="metadata CSV with path,label (extra columns ignored)",
    )
    ap.add_argument(
        "--root", type=Path, help="folder the CSV paths are relative to (default: the CSV's folder)"
    )
    ap.add_argument(
        "--json-out",
        type=Path,
        dest="json_out",
        metavar="OUT",
        help="write the results here (report files next to it)",
    )
    ap.add_argument(
        "--json", type=Path, dest="json_old", metavar="OUT", help="deprecated name of --json-out"
    )
    ap.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip listed clips that cannot be read instead of refusing the run",
    )
    ap.add_argument(
        "--model",
        type=Path,
        default=params.MODEL_DIR,
        help="model folder or manifest.json (default: the shipped firmware/model)",
    )
    ap.add_argument(
        "--classes",
        nargs="+",
        metavar="LABEL",
        help="target classes to score (default: every model label but the negative)",
    )
    ap.add_argument(
        "--map",
        action="append",
        metavar="DATASET=MODEL",
        help="map a dataset label onto a model label (repeatable)",
    )
    ap.add_argument(
        "--threshold",
        action="append",
        metavar="LABEL=SCORE",
        help="override the manifest's threshold of a class (0..1, or 'none' = never "
        "report it; repeatable): what-if analysis without re-exporting",
    )
    ap.add_argument(
        "--fold",
        action="append",
        metavar="K",
        help="only rows whose `fold` column is K (repeatable)",
    )
    ap.add_argument("--limit", type=int, help="only the first N rows (smoke runs)")
    ap.add_argument(
        "--classifier-stride",
        type=int,
        default=DEFAULT_STRIDE,
        help=f"hops between classifier windows (default {DEFAULT_STRIDE} = 64 ms)",
    )
    ap.add_argument(
        "--lead-in",
        type=float,
        default=DEFAULT_LEAD_IN_S,
        metavar="S",
        help="seconds of room noise before each clip (default 1)",
    )
    ap.add_argument(
        "--tail",
        type=float,
        default=DEFAULT_TAIL_S,
        metavar="S",
        help="seconds of room noise after each clip (default 1)",
    )
    ap.add_argument(
        "--room-below-peak",
        type=float,
        metavar="DB",
        help="put the lead-in/tail noise at least DB below the clip's loudest block "
        "(tools.validate.gate_eval uses 20 for chunks cut from inside an event; default: "
        "the clip's own floor)",
    )
    ap.add_argument(
        "--steady-background",
        action="store_true",
        help="play background clips twice and score the second pass (steady state, "
        "as tools.validate.gate_eval measures duty)",
    )
    ap.add_argument("--no-report", action="store_true", help="JSON only, no Markdown/PNG report")
    ap.add_argument(
        "--no-clips", action="store_true", help="leave the per-clip list out of the JSON"
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        if args.json_old is not None:
            if args.json_out is not None:
                raise EvalError("give --json-out only (--json is its deprecated name)")
            print("warning: --json FILE is deprecated, use --json-out FILE", file=sys.stderr)
            args.json_out = args.json_old
        if args.json_out is None:
            raise EvalError("--json-out FILE is required (where the results are written)")
        rows = read_csv(args.csv)
        if args.fold:
            if "fold" not in rows[0]:
                raise EvalError(f"{args.csv}: --fold given but the CSV has no fold column")
            rows = [r for r in rows if str(r.get("fold", "")).strip() in args.fold]
            if not rows:
                raise EvalError(f"{args.csv}: no row in fold {', '.join(args.fold)}")
        if args.limit is not None:
            rows = rows[: max(args.limit, 0)]
        if args.lead_in < 0 or args.tail < 0:
            raise EvalError("--lead-in and --tail are seconds >= 0")
        root = args.root or args.csv.parent
        if not root.is_dir():
            raise EvalError(f"{root}: no such folder")
        _check_output(args.json_out)
        bad = unreadable_rows(rows, root)
        if bad and not args.skip_bad:
            raise EvalError(
                f"{bad[0]['reason']} ({len(bad)} of {len(rows)} listed clips "
                f"unreadable; fix or remove them, or pass --skip-bad)"
            )
        res = evaluate(
            args.model,
            rows,
            root,
            progress=not args.quiet,
            classes=args.classes,
            label_map=_label_map(args.map),
            stride=args.classifier_stride,
            lead_in_s=args.lead_in,
            tail_s=args.tail,
            room_below_peak_db=args.room_below_peak,
            steady_background=args.steady_background,
            thresholds=_thresholds(args.threshold),
            include_clips=True,
        )
    except EvalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report_src = res
    if args.no_clips:
        res = {k: v for k, v in res.items() if k != "clips"}
    try:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(res, indent=1) + "\n")
    except OSError as e:
        print(f"error: {args.json_out}: cannot write ({e.strerror})", file=sys.stderr)
        return 2
    written = [args.json_out]
    if not args.no_report:
        from training import report

        written += report.write(report_src, args.json_out)
    n, c = res["node"], res["classifier"]
    fa = res["false_alarms_per_hour"]
    skipped = f"{res['skipped']} unreadable skipped (--skip-bad)" if res["skipped"] else "0 skipped"
    print(f"{res['n_clips']} clips ({skipped}), model {res['model_sha256'][:12]}")
    fa_text = (
        f"false alarms {fa:.1f}/h of negative audio"
        if fa is not None
        else "false alarms n/a (no negative clip: nothing to count them on)"
    )
    print(f"node:       macro-F1 {_fmt(n['macro_f1'])}  accuracy {_fmt(n['accuracy'])}  {fa_text}")
    print(
        f"classifier: macro-F1 {_fmt(c['macro_f1'])}  accuracy {_fmt(c['accuracy'])}  "
        f"(window on each clip's peak)"
    )
    g = res["gate_ceiling"]
    print(
        f"ceiling:    macro-F1 {_fmt(g['macro_f1'])}  accuracy {_fmt(g['accuracy'])}  "
        f"(a perfect model behind this gate; target clips with an analysis window: "
        f"{_fmt(n['diagnostics']['target_clips_with_window'])})"
    )
    for p in written:
        print(f"wrote {p}")
    return 0


def _check_output(out: Path) -> None:
    """The results file can be written (refused before the evaluation, not after it)."""
    if out.is_dir():
        raise EvalError(f"{out}: is a folder; give a file name such as {out / 'eval.json'}")
    probe = out.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise EvalError(f"{out}: cannot write here ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EvalError(f"{out}: cannot write here ({probe} is not writable)")


def _fmt(v, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


if __name__ == "__main__":
    sys.exit(main())
