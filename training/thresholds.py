"""Per-class thresholds chosen through the node for the false-alarm budget.

    scored = node_scores(blob, validation_clips, n_classes)
    th = choose_thresholds(scored, cmap, recipe.fa_per_hour, recipe.fa_streams,
                           negatives_fa_per_hour=recipe.negatives_fa_per_hour,
                           negatives_max_threshold=recipe.negatives_max_threshold)

Budgets (Recipe): false alarms per hour allowed on the validation fold's background
(ambience) streams, and on all of its non-target clips (hard negatives too); both hold at
once (the second never above negatives_max_threshold: a few hard negatives that score ~1.0
would otherwise switch a class off).
"""

from __future__ import annotations

import sys

import numpy as np

from training import data, features
from training.recipe import Recipe


def node_scores(blob: bytes, clips, n_classes: int, progress: bool = False) -> list[dict]:
    """Every clip (lead-in + clip, as the evaluation plays it) through the real node (gate,
    windows) with the int8 model in tflite-micro; per clip the windows' Q0.8 scores."""
    from tools.node import core
    from training import quantize

    it = quantize.tflm_interpreter(blob)
    shape = (1, features.FRAMES, features.N_MELS, 1)

    def classify(_w, f):
        it.set_input(np.ascontiguousarray(f, np.int8).reshape(shape), 0)
        it.invoke()
        return np.asarray(it.get_output(0)).reshape(-1).astype(np.int32) + 128

    out = []
    seq = clips
    if progress:
        from tqdm import tqdm

        seq = tqdm(clips, desc="node", unit="clip", file=sys.stderr, leave=False)
    for c in seq:
        stream, pre = features.eval_stream(c.pcm)
        recs = []
        node = core.Node(
            lambda w, f, recs=recs: recs.append(classify(w, f)) or recs[-1],
            n_classes,
            thresholds=[None] * n_classes,
        )
        node.process(stream)
        node.flush()
        out.append(
            {
                "label": c.label,
                "seconds": stream.size / features.P.sample_rate_hz,
                "starts": [w.start_sample for w in node.windows],
                "scores": np.array(recs, np.int32).reshape(-1, n_classes),
            }
        )
    return out


def _events(starts, hits, holdoff_samples):
    """Number of events from per-window hits, merging hits within the node's holdoff."""
    n, last = 0, None
    for s, h in zip(starts, hits):
        if not h:
            continue
        if last is None or s > last + features.P.window_samples + holdoff_samples:
            n += 1
        last = s
    return n


def choose_thresholds(
    scored,
    cmap,
    fa_per_hour: float = Recipe.fa_per_hour,
    streams: str = "background",
    min_threshold: float = 0.5,
    negatives_fa_per_hour: float | None = None,
    negatives_max_threshold: float = Recipe.negatives_max_threshold,
) -> dict:
    """Per target class, the lowest Q0.8 threshold >= min_threshold whose false alarms (events
    after holdoff merging) on the validation negative streams stay within fa_per_hour /
    n_targets per hour (so all classes together stay within fa_per_hour).  streams:
    'background' (stationary ambience clips) or 'negatives' (every non-target clip).
    negatives_fa_per_hour (None or 0: off): a second budget, held at the same time, on every
    non-target clip (speech, knocks, engines, other events as well as ambience), again split
    evenly over the classes.  A budget of a few events per class sets the threshold at a
    quantile of the negatives' scores; a budget below one event (minutes of ambience at 1/h)
    sets it just above the single highest-scoring negative window.  The second budget never
    raises a threshold above negatives_max_threshold (hard negatives that the model scores
    ~1.0 would switch the class off); the first one may."""
    hold = int(features.P.detector["holdoff_ms"] * features.P.sample_rate_hz / 1000)
    neg_all = [s for s in scored if not cmap.is_target(s["label"])]
    if streams == "background":
        neg = [s for s in scored if s["label"] in data.BACKGROUND_LABELS]
    else:
        neg = neg_all
    negatives_fa_per_hour = negatives_fa_per_hour or None  # 0: off
    rules = [(neg, fa_per_hour, 256)]  # (streams, rate, Q0.8 threshold that always holds)
    if negatives_fa_per_hour is not None:
        rules.append((neg_all, negatives_fa_per_hour, int(round(negatives_max_threshold * 256))))
    hours = [sum(s["seconds"] for s in ss) / 3600.0 for ss, _, _ in rules]
    budgets = [f * h / max(1, len(cmap.targets)) for (_, f, _), h in zip(rules, hours)]

    def count(ss, ci, t):
        return sum(
            _events(s["starts"], s["scores"][:, ci] >= t, hold) if len(s["starts"]) else 0
            for s in ss
        )

    out, report = {}, {}
    lo = int(round(min_threshold * 256))
    for ci, lab in enumerate(cmap.targets):
        chosen = None
        for t in range(lo, 256):
            if all(t >= cap or count(ss, ci, t) <= b for (ss, _, cap), b in zip(rules, budgets)):
                chosen = t
                break
        met = chosen is not None
        if chosen is None:
            chosen = 255
        fa = [count(ss, ci, chosen) for ss, _, _ in rules]
        pos = [s for s in scored if cmap.index(s["label"]) == ci]
        rec = (
            np.mean(
                [bool(len(s["starts"])) and bool(np.any(s["scores"][:, ci] >= chosen)) for s in pos]
            )
            if pos
            else None
        )
        out[lab] = round(chosen / 256, 6)
        report[lab] = {
            "threshold_q8": chosen,
            "false_alarms": int(fa[0]),
            "false_alarms_per_hour": round(fa[0] / hours[0], 3) if hours[0] else None,
            "fa_target_met": met,
            "val_clip_recall": None if rec is None else round(float(rec), 4),
            "val_clips": len(pos),
        }
        if negatives_fa_per_hour is not None:
            report[lab]["negatives_false_alarms"] = int(fa[1])
            report[lab]["negatives_false_alarms_per_hour"] = (
                round(fa[1] / hours[1], 3) if hours[1] else None
            )
            report[lab]["negatives_capped"] = bool(
                fa[1] > budgets[1]
            )  # the cap, not the budget, set it
    out[cmap.negative] = None
    res = {
        "thresholds": out,
        "per_class": report,
        "negative_hours": round(hours[0], 4),
        "fa_per_hour_target": fa_per_hour,
        "streams": streams,
    }
    if negatives_fa_per_hour is not None:
        res.update(
            negatives_hours=round(hours[1], 4),
            negatives_fa_per_hour_target=negatives_fa_per_hour,
            negatives_max_threshold=negatives_max_threshold,
        )
    return res
