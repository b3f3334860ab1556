"""The export pipeline: features -> train -> int8 -> checks -> thresholds -> export.

    res = fit_and_export(rows, root, out_dir, Recipe(seed=1), name="my-model")

Every setting of the run is the Recipe (training.recipe); the checks (int8 quantisation,
budget, parity, int8 drop) are training.quantize's, the thresholds training.thresholds'.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from training import features
from training.recipe import Recipe


def fit_and_export(
    rows,
    root,
    out_dir,
    recipe: Recipe | None = None,
    *,
    cmap=None,
    name: str | None = None,
    created_by: str = "python -m training train",
    strict: bool = False,
    cache_dir=features.CACHE_DIR,
    cfg=None,
    progress: bool = True,
    log=None,
) -> dict:
    """Features -> train -> int8 -> parity/budget checks -> thresholds -> export to out_dir.
    Returns {"manifest", "model", "report"} (the report is also stored under the manifest's
    "training", the recipe under its "training.recipe").  Raises quantize.ExportError when a
    check fails (nothing is written then).

    Training windows: every fold but the test fold and (unless recipe.train_on_val) the
    validation fold, capped per class (cap_per_class).  With train_on_val the model trains on
    the validation fold too, for all epochs (no early stopping: nothing unseen is left to
    watch); the thresholds are still chosen on the validation fold's clips through the node,
    which the model has then heard (`crossval` measures the whole procedure on held-out folds)."""
    from training import augment as _augment
    from training import data as _data
    from training import export, quantize, thresholds, train

    r = recipe or Recipe()
    log = log or (lambda m: print(m, file=sys.stderr))
    cmap = cmap or _data.ClassMap.default()
    cfg = cfg or _augment.AugmentConfig()
    keep_dir = Path(cache_dir or features.CACHE_DIR)
    t0 = time.time()
    ws = features.load_or_build(
        rows,
        root,
        cmap,
        r.seed,
        cfg,
        r.augment_data,
        strict=strict,
        cache_dir=cache_dir,
        progress=progress,
        log=log,
    )
    folds = ws.folds()
    trained_on_val = bool(r.train_on_val and r.val_fold is not None)
    excl = {f for f in ((None if trained_on_val else r.val_fold), r.test_fold) if f is not None}
    tr = ws.subset(~np.isin(folds, list(excl))) if excl else ws
    va_mask = (folds == r.val_fold) if r.val_fold is not None else np.zeros(len(ws), bool)
    va = ws.subset(va_mask & (ws.kind == features.KIND_PLAIN))
    if r.max_per_class or r.max_negatives:
        tr = train.cap_per_class(
            tr, r.max_per_class, r.seed, r.aligned_negatives_first, r.max_negatives
        )
    if len(tr) == 0:
        raise quantize.ExportError("no training windows (check --csv/--root and the folds)")
    if trained_on_val:
        log(
            f"validation fold {r.val_fold} is trained on too (--train-on-val): no early stopping; "
            f"it still sets the thresholds"
        )
    model, info = train.train(tr, va if len(va) and not trained_on_val else None, r, log=log)
    keep = keep_dir / f"last-{r.arch}.weights.h5"
    keep.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(keep)  # a failed check below does not lose the training
    blob = quantize.convert(model, r.arch, tr.X, seed=r.seed, width=r.width)
    qi = quantize.inspect(blob)
    quantize.check_quant(qi)
    arena = quantize.arena_bytes(blob)
    budget = quantize.check_budget(len(blob), arena, qi["macs"], enforce=r.enforce_budget)
    # float vs int8 and TFLite-reference vs TFLM on the evaluation (validation) windows
    ev = va if len(va) else tr.subset(np.arange(len(tr)) < 300)
    pf = train.predict_float(model, ev.X)
    par, q_tflm = quantize.check_parity(blob, ev.X, r.max_parity_rate, keep_dir)
    drop = quantize.check_int8_drop(ev.y, pf, q_tflm, cmap, r.max_int8_drop)
    # thresholds from the validation clips through the node pipeline
    th = {"thresholds": {lab: features.P.detector["default_threshold"] for lab in cmap.targets}}
    if r.val_fold is not None:
        vrows = [row for row in rows if row.fold == r.val_fold]
        vclips, _ = _data.load_clips(vrows, root, strict=strict, log=log)
        scored = thresholds.node_scores(blob, vclips, cmap.n_classes, progress=progress)
        th = thresholds.choose_thresholds(
            scored,
            cmap,
            r.fa_per_hour,
            r.fa_streams,
            negatives_fa_per_hour=r.negatives_fa_per_hour,
            negatives_max_threshold=r.negatives_max_threshold,
        )
    th_out = dict(th["thresholds"])
    th_out[cmap.negative] = None
    report = {
        "recipe": asdict(r),
        "data": {
            "n_rows": len(rows),
            "class_map": cmap.to_json(),
            "val_fold": r.val_fold,
            "test_fold": r.test_fold,
            "trained_on_val": trained_on_val,
            "windows": {"train": len(tr), "val": len(va)},
            "feature_version": features.FEATURE_VERSION,
            "max_per_class": r.max_per_class,
            "max_negatives": r.max_negatives,
            "aligned_negatives_first": r.aligned_negatives_first,
            "augment": cfg.to_json() if r.augment_data else None,
        },
        "train": {k: v for k, v in info.items() if k != "history"},
        "history": {k: [round(x, 5) for x in v] for k, v in info["history"].items()},
        "int8": drop,
        "parity": par,
        "budget": budget,
        "thresholds": th,
        "seconds": round(time.time() - t0, 1),
    }
    manifest = export.build_manifest(
        blob,
        cmap.labels,
        cmap.negative,
        th_out,
        name or f"earwitness-{r.arch}",
        created_by,
        report,
        arena=arena,
    )
    export.write(out_dir, blob, manifest)
    log(
        f"exported {out_dir}: {len(blob)} bytes, arena {arena}, {qi['macs']} MACs, ops {qi['ops']}, "
        f"int8 drop {drop['macro_f1_drop']}, parity mismatches {par['mismatches']}"
    )
    return {"manifest": manifest, "model": model, "report": report}
