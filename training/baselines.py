"""Baselines for the report: statistics of a clip's MFCCs (mean and standard deviation per
coefficient) with logistic regression and with an SVM, the classic clip classifiers of
environmental sound; scored on the same clips and with the same metrics as the model.

    python -m training.baselines --csv ../shared/data/all_metadata.csv --root ../shared/data \\
        --test-fold 5 --json-out build/eval/baselines_fold5.json
    python -m training.baselines --csv ... --root ... --json-out build/eval/baselines_cv.json  # every fold

Library (what `python -m training crossval` calls once per fold; keep the signature stable):

    from training import baselines
    res = baselines.run(train_rows, test_rows, root, classes, negative="other")
    # rows: CSV dicts (path, label[, fold]) or training.data.Row objects; label_map={alias: class}
    res["logreg"]["macro_f1"], res["svm"]["per_class"]["gunshot"]["recall"], ...

`run` returns {"features", "n_train", "n_test", "unreadable", "logreg": S, "svm": S} where each S
is training.metrics.summary() over the test clips (macro_f1 over `classes`, accuracy,
per_class {label: precision, recall, f1, support, ...}, negative, confusion {labels, matrix}):
the same keys as the `node`/`classifier` blocks of training.evaluate.

Features (one vector per clip, whatever its length): 20 MFCCs (librosa; 16 kHz, 1024-point
FFT, 256-sample hop, 64 Slaney mel bands 50 Hz - 8 kHz, log power) and their deltas (9-frame
window), mean and standard deviation over the clip's frames: 80 values.  The clip is loaded
exactly as the evaluation loads it (tools.node.audio.load: mono, 16 kHz).  Classifiers: scikit-learn
pipelines StandardScaler -> LogisticRegression (lbfgs, C = 1) and StandardScaler -> SVC (RBF,
C = 10, gamma "scale"), both with balanced class weights and random_state = 0; they are trained
on the target classes plus one negative class (every other label), like the model.
Features are cached in memory per clip path, so a folds loop extracts each clip once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training import data, metrics
from training.evaluate import field_of

DEFAULT_CLASSES = list(data.DEFAULT_TARGETS)
DEFAULT_NEGATIVE = data.NEGATIVE
N_MFCC = 20
SEED = 0
FEATURES = (
    "mean+std of 20 MFCCs and their deltas (librosa, n_fft 1024, hop 256, 64 mels "
    "50-8000 Hz), 80 values per clip"
)
_cache: dict[str, np.ndarray] = {}


def mfcc_stats(x: np.ndarray, sr: int = 16000) -> np.ndarray:
    """80 clip-level values from int16 (or float) mono audio at `sr`."""
    import librosa

    y = np.asarray(x, np.float32)
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        y = y / 32768.0
    if y.size < 1024:  # at least one full FFT frame
        y = np.pad(y, (0, 1024 - y.size))
    m = librosa.feature.mfcc(
        y=y, sr=sr, n_mfcc=N_MFCC, n_fft=1024, hop_length=256, n_mels=64, fmin=50.0, fmax=sr / 2
    )
    d = librosa.feature.delta(m, width=9, mode="nearest")
    return np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1)]).astype(np.float64)


def clip_features(rows, root, progress: bool = False) -> tuple[np.ndarray, list[int], list[dict]]:
    """(features of the readable rows, their indices into rows, unreadable [{path, reason}])."""
    from tqdm import tqdm

    from tools.node import audio

    root = Path(root)
    feats, keep, bad = [], [], []
    for i, r in enumerate(tqdm(rows, desc="mfcc", unit="clip", disable=not progress)):
        path = str(field_of(r, "path", ""))
        key = str((root / path).resolve())
        if key not in _cache:
            try:
                x = audio.load(root / path)
            except audio.AudioError as e:
                print(f"skipped: {e}", file=sys.stderr)
                bad.append({"path": path, "reason": str(e)})
                continue
            _cache[key] = mfcc_stats(x, audio.SR)
        feats.append(_cache[key])
        keep.append(i)
    return (np.array(feats) if feats else np.zeros((0, 4 * N_MFCC))), keep, bad


def pipelines() -> dict:
    """name -> unfitted scikit-learn pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return {
        "logreg": make_pipeline(
            StandardScaler(),
            LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced", random_state=SEED),
        ),
        "svm": make_pipeline(
            StandardScaler(),
            SVC(kernel="rbf", C=10.0, gamma="scale", class_weight="balanced", random_state=SEED),
        ),
    }


def _targets(rows, keep, classes, negative, label_map) -> list[str]:
    out = []
    for i in keep:
        lab = str(field_of(rows[i], "label", ""))
        lab = label_map.get(lab, lab)
        out.append(lab if lab in classes else negative)
    return out


def run(
    train_rows,
    test_rows,
    root,
    classes=None,
    *,
    negative: str = DEFAULT_NEGATIVE,
    label_map: dict | None = None,
    progress: bool = False,
) -> dict:
    """Train both baselines on train_rows, score them on test_rows (see the module docstring).
    Raises ValueError when a side has no readable clip or training sees a single class."""
    classes = list(classes or DEFAULT_CLASSES)
    label_map = label_map or {}
    Xtr, ktr, bad_tr = clip_features(train_rows, root, progress)
    Xte, kte, bad_te = clip_features(test_rows, root, progress)
    if not ktr or not kte:
        raise ValueError(f"no readable {'training' if not ktr else 'test'} clip")
    ytr = _targets(train_rows, ktr, classes, negative, label_map)
    yte = _targets(test_rows, kte, classes, negative, label_map)
    if len(set(ytr)) < 2:
        raise ValueError(f"the training clips hold a single class ({ytr[0]})")
    res = {
        "features": FEATURES,
        "n_train": len(ktr),
        "n_test": len(kte),
        "unreadable": bad_tr + bad_te,
        "classes": classes,
        "negative_label": negative,
    }
    for name, pipe in pipelines().items():
        pipe.fit(Xtr, ytr)
        res[name] = metrics.summary(yte, list(pipe.predict(Xte)), classes, negative)
    return res


def crossval(rows, root, classes=None, folds=None, **kw) -> dict:
    """run() once per fold (test = that fold, train = the others): {"folds": {K: run()},
    "mean_std": per metric over the folds, "pooled": metrics.pooled() of the fold confusions}."""

    def fold(r) -> str:
        return str(field_of(r, "fold", "")).strip()

    all_folds = sorted({fold(r) for r in rows})
    folds = [str(f) for f in (folds or all_folds)]
    per_fold = {}
    for k in folds:
        test = [r for r in rows if fold(r) == k]
        train = [r for r in rows if fold(r) != k]
        if not test:
            raise ValueError(f"no row in fold {k} (folds: {', '.join(all_folds)})")
        per_fold[k] = run(train, test, root, classes, **kw)
    first = next(iter(per_fold.values()))
    summary = {}
    for name in pipelines():
        s = {
            "macro_f1": metrics.mean_std(f[name]["macro_f1"] for f in per_fold.values()),
            "accuracy": metrics.mean_std(f[name]["accuracy"] for f in per_fold.values()),
            "per_class": {},
        }
        for c in first["classes"]:
            s["per_class"][c] = {
                m: metrics.mean_std(f[name]["per_class"][c][m] for f in per_fold.values())
                for m in ("precision", "recall", "f1")
            }
        summary[name] = s
    pooled = {name: metrics.pooled(f[name] for f in per_fold.values()) for name in pipelines()}
    return {"folds": per_fold, "mean_std": summary, "pooled": pooled}


def main(argv=None) -> int:
    from training.evaluate import EvalError, read_csv

    ap = argparse.ArgumentParser(
        prog="python -m training.baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--csv", type=Path, required=True, help="metadata CSV with path,label,fold")
    ap.add_argument(
        "--root", type=Path, help="folder the CSV paths are relative to (default: the CSV's folder)"
    )
    ap.add_argument(
        "--test-fold",
        action="append",
        metavar="K",
        help="test on fold K, train on the others (repeatable; default: every fold)",
    )
    ap.add_argument(
        "--json-out",
        "--json",
        dest="json",
        type=Path,
        required=True,
        metavar="FILE",
        help="write the results here (--json is the older name)",
    )
    ap.add_argument(
        "--classes",
        nargs="+",
        metavar="LABEL",
        default=DEFAULT_CLASSES,
        help="target classes (default: the shipped model's seven); the rest is negative",
    )
    ap.add_argument("--negative", default=DEFAULT_NEGATIVE, help="name of the negative class")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        rows = read_csv(args.csv)
        if "fold" not in rows[0]:
            raise EvalError(f"{args.csv}: no fold column")
        if args.negative in args.classes:
            raise EvalError(f"--negative {args.negative} is also in --classes")
        root = args.root or args.csv.parent
        if not root.is_dir():
            raise EvalError(f"{root}: no such folder")
        res = crossval(
            rows,
            root,
            args.classes,
            args.test_fold,
            negative=args.negative,
            progress=not args.quiet,
        )
    except (EvalError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res["csv"] = str(args.csv)
    try:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    except OSError as e:
        print(f"error: {args.json}: cannot write ({e.strerror})", file=sys.stderr)
        return 2
    for k, f in res["folds"].items():
        print(
            f"fold {k}: train {f['n_train']}, test {f['n_test']}:  "
            + "  ".join(
                f"{n} macro-F1 {_f(f[n]['macro_f1'])} acc {_f(f[n]['accuracy'])}"
                for n in pipelines()
            )
        )
    for n, s in res["mean_std"].items():
        print(
            f"{n}: macro-F1 {_f(s['macro_f1']['mean'])} ± {_f(s['macro_f1']['std'])}, "
            f"accuracy {_f(s['accuracy']['mean'])} ± {_f(s['accuracy']['std'])}"
        )
    print(f"wrote {args.json}")
    return 0


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    sys.exit(main())
