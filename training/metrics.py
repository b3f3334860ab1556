"""Clip-level classification metrics with a negative class, in plain NumPy (no scikit-learn).

The node answers one of the model's target classes or "no target event" (the negative).  All
evaluation (the node pipeline, the pure classifier, the MFCC baselines) reduces to two label
lists per clip, truth and prediction, over `classes + [negative]`, and is scored here:

    from training import metrics
    s = metrics.summary(y_true, y_pred, classes=["gunshot", "siren"], negative="other")
    s["macro_f1"], s["accuracy"], s["per_class"]["gunshot"]["recall"], s["confusion"]
    metrics.pooled([s_fold1, s_fold2, ...])   # cross-validation: confusions added, recomputed
    metrics.mean_std([f1_fold1, ...])         # {"mean", "std", "n"} over the non-null values

Conventions (documented because the thin classes make them matter):
  - `accuracy` counts every clip, negatives included (a correct "no event" is correct).
  - `per_class` lists the target classes only: precision = TP / predicted, recall = TP / support,
    f1 = 2PR / (P + R).  A ratio with a zero denominator is reported as `null` (JSON), never 0.
  - `macro_f1` is the mean F1 over the target classes that occur in the truth or in the
    predictions (`macro_f1_classes` lists them).  A class absent from both (e.g. dog_bark in a
    fold that has no dog clip) says nothing about the model and is left out; a class with no
    support but with predictions has F1 = 0 (every prediction is a false alarm).
  - `macro_f1_supported` averages only the classes with support (clips) in the set: false
    predictions of an absent class then count only through the recall of the clips' true class.
  - `negative` holds the same figures for the negative class (its recall is the fraction of
    non-target clips the system correctly left alone).
  - `confusion.matrix[i][j]` = clips of truth labels[i] predicted as labels[j]; labels =
    classes + [negative]; the matrix sums to the number of clips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts, rows = truth, columns = prediction, in `labels` order.  Unknown labels: ValueError."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} truths but {len(y_pred)} predictions")
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), np.int64)
    for t, p in zip(y_true, y_pred):
        if t not in index or p not in index:
            raise ValueError(f"label {t if t not in index else p!r} not in {list(labels)}")
        m[index[t], index[p]] += 1
    return m


def class_figures(m: np.ndarray, i: int) -> dict:
    """precision, recall, f1, support, tp, fp, fn of row/column i of a confusion matrix."""
    tp = int(m[i, i])
    support = int(m[i, :].sum())
    predicted = int(m[:, i].sum())
    p = _ratio(tp, predicted)
    r = _ratio(tp, support)
    if p is None and r is None:
        f1 = None
    elif not p or not r:  # one of them 0 or undefined: no true positive
        f1 = 0.0
    else:
        f1 = 2 * p * r / (p + r)
    return {
        "precision": p,
        "recall": r,
        "f1": f1,
        "support": support,
        "tp": tp,
        "fp": predicted - tp,
        "fn": support - tp,
    }


def summary(
    y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str], negative: str
) -> dict:
    """Everything the JSON reports for one system (see the module docstring)."""
    classes = list(classes)
    if negative in classes:
        raise ValueError(f"the negative label {negative!r} is also a target class")
    return from_confusion(confusion(y_true, y_pred, classes + [negative]), classes, negative)


def pooled(summaries: Iterable[dict]) -> dict:
    """One summary from several (e.g. the folds of a cross-validation): confusion matrices are
    added and every figure recomputed, so thin classes count each clip once, not each fold."""
    summaries = list(summaries)
    if not summaries:
        raise ValueError("nothing to pool")
    labels = summaries[0]["confusion"]["labels"]
    if any(s["confusion"]["labels"] != labels for s in summaries):
        raise ValueError("summaries over different labels")
    m = np.sum([np.array(s["confusion"]["matrix"], np.int64) for s in summaries], axis=0)
    return from_confusion(m, labels[:-1], labels[-1])


def from_confusion(m: np.ndarray, classes: Sequence[str], negative: str) -> dict:
    """summary() of a confusion matrix over classes + [negative]."""
    classes = list(classes)
    labels = classes + [negative]
    m = np.asarray(m, np.int64)
    if m.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix {m.shape} for {len(labels)} labels")
    per_class = {c: class_figures(m, i) for i, c in enumerate(classes)}
    scored = [c for c in classes if per_class[c]["f1"] is not None]
    supported = [c for c in classes if per_class[c]["support"] > 0]
    n = int(m.sum())
    return {
        "macro_f1": float(np.mean([per_class[c]["f1"] for c in scored])) if scored else None,
        "macro_f1_classes": scored,
        "macro_f1_supported": (
            float(np.mean([per_class[c]["f1"] for c in supported])) if supported else None
        ),
        "accuracy": _ratio(np.trace(m), n),
        "n_clips": n,
        "per_class": per_class,
        "negative": dict(class_figures(m, len(classes)), label=negative),
        "confusion": {"labels": labels, "matrix": m.tolist()},
    }


def mean_std(values: Iterable[float | None]) -> dict:
    """{"mean", "std", "n"} over the non-null values (population std; cross-validation folds)."""
    v = np.array([x for x in values if x is not None], float)
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


def binary_curves(y: Sequence[bool], score: Sequence[float]) -> dict:
    """Precision/recall and ROC points of one class against the rest, over every threshold
    (distinct scores, high to low), plus average precision (step-wise, as scikit-learn's
    `average_precision_score`) and ROC AUC (trapezoid).  None where a side has no clip."""
    y = np.asarray(y, bool)
    s = np.asarray(score, float)
    pos, neg = int(y.sum()), int((~y).sum())
    if y.size == 0 or pos == 0:
        return {
            "average_precision": None,
            "roc_auc": None,
            "thresholds": [],
            "precision": [],
            "recall": [],
            "fpr": [],
            "tpr": [],
        }
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last].astype(float)
    fp = (last + 1 - tp).astype(float)
    precision = tp / (tp + fp)
    recall = tp / pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    fpr = fp / neg if neg else np.full_like(fp, np.nan)
    tpr = recall
    auc = float(np.trapezoid(np.r_[0.0, tpr], np.r_[0.0, fpr])) if neg else None
    return {
        "average_precision": ap,
        "roc_auc": auc,
        "thresholds": s[last].tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
    }
