"""Fold cross-validation through the node pipeline: for every test fold k, train on the other
folds (one of them, the next fold cyclically, sets the thresholds; it is trained on too,
Recipe.train_on_val, or held back for early stopping without it), export an int8 model, and evaluate the held-out fold with training.evaluate (real C node + tflite-micro).
CNN and CRNN are trained on exactly the same folds and windows.

Folds come from the CSV's `fold` column.  In ../shared/data the folds are per corpus (1..5;
ESC-10 only has 1..3 and the ESC-50 subset only 4), so "fold k" means fold k of every corpus;
clips of one original recording never span folds (see ../shared/data/README.md).

    python -m training crossval --csv ../shared/data/all_metadata.csv --root ../shared/data \\
        --json-out firmware/model/crossval.json

The JSON holds per architecture and fold the node and classifier metrics (and `gate_ceiling`:
a perfect model behind the gate, training.evaluate), false alarms per
hour, size/arena/MACs, int8 drop and parity, and `summary`: mean and std over folds of every
metric (per-class metrics only over folds where the class has support).
The CLI writes the report (training.report.write_crossval: Markdown tables, pooled confusion
PNG) next to the JSON.

Scene benchmark (on unless scenes=None / --no-scenes): before the first model is trained, the
scene set of every test fold (training.scenes.build_fold with the recipe's seed) is built -- or
reused from WORK/scenes/fold<k> when its index matches the settings and the fold's clips -- so
that a fold without background or target clips fails at once (one line, exit 2).  Each fold's
held-out model is then scored on its fold's set through the node (training.scene_eval:
`folds[i]["scenes"]`, without the list of stream false alarms) and the folds pooled
(`summary["scenes"]`, scene_eval.summarise).  rescore_scenes() does only this for the fold
models already in a work dir (WORK/<arch>/fold<k>/), e.g. with other node settings.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

from tools.node import params
from training import data as _data
from training import scenes as _sc
from training.recipe import Recipe

WORK_DIR = params.ROOT / "build" / "crossval"
# the scene benchmark's settings (training.scenes' defaults); node_kw: tools.node.core.Node's
# keyword arguments for the scored node ({} = the model's own, as deployed)
SCENE_DEFAULTS = {
    "ebrs": list(_sc.DEFAULT_EBRS),
    "per_ebr": _sc.PER_EBR,
    "stream_minutes": _sc.STREAM_MINUTES,
    "node_kw": {},
}


def _scene_settings(scenes: dict) -> dict:
    st = {**SCENE_DEFAULTS, **scenes}
    st["ebrs"] = _sc.parse_ebrs(st["ebrs"])
    if st["per_ebr"] < 1:
        raise _sc.SceneError(f"--scene-per-ebr must be 1 or more, not {st['per_ebr']}")
    if st["stream_minutes"] < 0:
        raise _sc.SceneError(
            f"--scene-stream-minutes must be 0 or more, not {st['stream_minutes']}"
        )
    return st


def _cached_set(d: Path, fold: int, seed: int, classes, st: dict, fingerprint: str) -> bool:
    try:
        ix = json.loads((d / "index.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        ix.get("fold") == fold
        and ix.get("seed") == seed
        and ix.get("classes") == list(classes)
        and [float(e) for e in ix.get("ebrs_db", [])] == [float(e) for e in st["ebrs"]]
        and ix.get("per_ebr") == st["per_ebr"]
        and ix.get("settings", {}).get("stream_minutes") == st["stream_minutes"]
        and ix.get("clips_sha256") == fingerprint
    )


def build_scene_sets(
    rows,
    root,
    folds,
    seed: int,
    work,
    classes,
    scenes: dict | None = None,
    progress: bool = False,
    log=None,
) -> dict[int, Path]:
    """{fold: WORK/scenes/fold<k>}: every fold's scene set, built (or reused when its index
    matches) before anything is trained; raises training.scenes.SceneError (a DataError) naming
    what is missing."""
    log = log or (lambda m: print(m, file=sys.stderr))
    st = _scene_settings(scenes or {})
    for k in folds:  # what every fold lacks, before any audio is read
        _sc.check_fold(rows, k, classes)
    out = {}
    for k in folds:
        d = Path(work) / "scenes" / f"fold{k}"
        fp = _sc.clips_fingerprint([r for r in rows if r.fold == k])
        if _cached_set(d, k, seed, classes, st, fp):
            log(f"crossval scenes: fold {k}: reusing {d}")
        else:
            t0 = time.time()
            _sc.build_fold(
                rows,
                root,
                k,
                seed,
                out=d,
                classes=list(classes),
                ebrs=st["ebrs"],
                per_ebr=st["per_ebr"],
                stream_minutes=st["stream_minutes"],
                progress=progress,
            )
            log(f"crossval scenes: fold {k}: built {d} in {time.time() - t0:.0f} s")
        out[k] = d
    return out


def score_scenes(model_dir, scene_dir, node_kw: dict | None = None, progress: bool = False) -> dict:
    """training.scene_eval.evaluate_fold of one fold model on its fold's set, without the
    per-event list of stream false alarms (the counts stay)."""
    from training import scene_eval

    res = scene_eval.evaluate_fold(model_dir, scene_dir, progress=progress, node_kw=node_kw)
    res["raw"]["streams"].pop("events", None)
    return res


def _scenes_summary(per_fold: list[dict]) -> dict | None:
    from training import scene_eval

    got = [f["scenes"] for f in per_fold if f.get("scenes")]
    return scene_eval.summarise(got) if got else None


def val_fold_for(test_fold: int, folds: list[int]) -> int:
    i = folds.index(test_fold)
    return folds[(i + 1) % len(folds)]


def _mean_std(vals):
    v = [float(x) for x in vals if x is not None and not (isinstance(x, float) and np.isnan(x))]
    if not v:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4), "n": len(v)}


def _fold_record(
    ev: dict, fit: dict, test_fold: int, val_fold: int, ev_room: dict | None = None
) -> dict:
    man = fit["manifest"]
    rep = man["training"]

    def part(s):
        return {
            "macro_f1": s.get("macro_f1"),
            "accuracy": s.get("accuracy"),
            "per_class": {
                c: {k: s["per_class"][c].get(k) for k in ("precision", "recall", "f1", "support")}
                for c in s.get("per_class", {})
            },
            "confusion": s.get("confusion"),
        }

    rec = {
        "test_fold": test_fold,
        "val_fold": val_fold,
        "n_clips": ev.get("n_clips"),
        "node": part(ev["node"]),
        "classifier": part(ev["classifier"]),
        "false_alarms_per_hour": ev.get("false_alarms_per_hour"),
        "false_alarms_per_hour_background": ev.get("false_alarms_per_hour_background"),
        "model_bytes": man["model_bytes"],
        "arena_bytes": man["arena_bytes"],
        "macs": man["macs"],
        "int8_macro_f1_drop": rep["int8"]["macro_f1_drop"],
        "parity_mismatches": rep["parity"]["mismatches"],
        "thresholds": man["thresholds"],
        "epochs_run": rep["train"]["epochs_run"],
        "train_seconds": rep["train"]["train_seconds"],
        "model_sha256": man["model_sha256"],
    }
    if "gate_ceiling" in ev:
        rec["gate_ceiling"] = part(ev["gate_ceiling"])
    if ev_room is not None:
        rec["node_room"] = part(ev_room["node"])
        if "gate_ceiling" in ev_room:
            rec["gate_ceiling_room"] = part(ev_room["gate_ceiling"])
        rec["room_below_peak_db"] = ev_room.get("room_below_peak_db")
    return rec


def macro_f1_supported(part: dict) -> float | None:
    """Mean F1 over the target classes that have clips in this fold (training.evaluate's
    macro_f1 also averages classes without clips, whose F1 is 0 once anything is predicted
    as them)."""
    f = [
        v["f1"] for v in part["per_class"].values() if v.get("support") and v.get("f1") is not None
    ]
    return float(np.mean(f)) if f else None


def summarize(per_fold: list[dict], classes: list[str]) -> dict:
    s = {}
    systems = ("node", "classifier") + tuple(
        k
        for k in ("node_room", "gate_ceiling", "gate_ceiling_room")
        if all(k in f for f in per_fold)
    )
    for sysname in systems:
        for f in per_fold:
            f[sysname]["macro_f1_supported"] = macro_f1_supported(f[sysname])
        s[sysname] = {
            "macro_f1": _mean_std([f[sysname]["macro_f1"] for f in per_fold]),
            "macro_f1_supported": _mean_std([f[sysname]["macro_f1_supported"] for f in per_fold]),
            "accuracy": _mean_std([f[sysname]["accuracy"] for f in per_fold]),
            "per_class": {},
        }
        for c in classes:
            rows = [f[sysname]["per_class"].get(c, {}) for f in per_fold]
            rows = [r for r in rows if r.get("support")]
            s[sysname]["per_class"][c] = {
                k: _mean_std([r.get(k) for r in rows]) for k in ("precision", "recall", "f1")
            }
            s[sysname]["per_class"][c]["support"] = int(sum(r.get("support", 0) for r in rows))
    for k in (
        "false_alarms_per_hour",
        "false_alarms_per_hour_background",
        "model_bytes",
        "arena_bytes",
        "macs",
        "int8_macro_f1_drop",
        "parity_mismatches",
        "train_seconds",
    ):
        s[k] = _mean_std([f.get(k) for f in per_fold])
    try:
        from training import metrics

        for sysname in systems:
            p = metrics.pooled([f[sysname] for f in per_fold if f[sysname].get("confusion")])
            s[sysname]["pooled"] = {
                "macro_f1": p["macro_f1"],
                "accuracy": p["accuracy"],
                "per_class": {
                    c: {
                        k: p["per_class"][c].get(k)
                        for k in ("precision", "recall", "f1", "support")
                    }
                    for c in p["per_class"]
                },
                "confusion": p["confusion"],
            }
    except (ImportError, ValueError) as e:  # pooled figures are a bonus; mean/std are the result
        s["pooled_error"] = str(e)
    s["gunshot_recall_node"] = s["node"]["per_class"].get("gunshot", {}).get("recall")
    if "node_room" in s:
        s["gunshot_recall_node_room"] = s["node_room"]["per_class"].get("gunshot", {}).get("recall")
    return s


def run(
    rows,
    root,
    json_path,
    recipe: Recipe | None = None,
    *,
    cmap=None,
    archs=("ds_cnn", "crnn"),
    folds=None,
    work=None,
    cache_dir=None,
    strict: bool = False,
    progress: bool = True,
    log=None,
    classifier_stride: int = 8,
    room_below_peak_db: float | None = 20.0,
    scenes: dict | None = SCENE_DEFAULTS,
) -> dict:
    """Every arch x test fold with the recipe (its arch, val_fold and test_fold are set per
    fold; the export checks only report: a fold's model is evaluated whatever its figures).
    room_below_peak_db: also evaluate each test fold through the node with the room at least
    this far below each clip's peak (`node_room`, tools.validate.gate_eval's headline protocol: 1-s
    chunks cut from inside an event have the event as their own floor); None: skip.
    scenes: the scene benchmark's settings (SCENE_DEFAULTS' keys; None: no scene benchmark)."""
    from training import evaluate, features, pipeline

    recipe = recipe or Recipe()
    log = log or (lambda m: print(m, file=sys.stderr))
    cmap = cmap or _data.ClassMap.default()
    all_folds = sorted({r.fold for r in rows if r.fold is not None})
    if len(all_folds) < 2:
        raise _data.DataError("crossval needs a fold column with at least two folds")
    folds = list(folds) if folds else all_folds
    bad = [f for f in folds if f not in all_folds]
    if bad:
        raise _data.DataError(f"fold {bad[0]} is not in the CSV (folds: {all_folds})")
    work = Path(work) if work else WORK_DIR
    cache_dir = cache_dir if cache_dir is not None else features.CACHE_DIR
    json_path = Path(json_path)
    scene_dirs = {}
    if scenes is not None:  # every fold's set before the first model is trained
        scenes = _scene_settings(scenes)
        scene_dirs = build_scene_sets(
            rows, root, folds, recipe.seed, work, cmap.targets, scenes, progress=progress, log=log
        )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    per_fold = (
        "arch",
        "val_fold",
        "test_fold",
        "enforce_budget",
        "max_int8_drop",
        "max_parity_rate",
    )
    res = {
        "schema_version": 1,
        "created_by": "python -m training crossval",
        "design": (
            "test fold k = fold k of every corpus; "
            + (
                "training = every other fold, all epochs; thresholds on the next fold "
                "cyclically (trained on); "
                if recipe.train_on_val
                else "validation (early stopping, thresholds) = the next fold cyclically; "
                "training = the remaining folds; "
            )
            + "evaluation of the test fold through the node pipeline (training.evaluate)"
        ),
        "folds": folds,
        "classes": list(cmap.targets),
        **{k: v for k, v in dataclasses.asdict(recipe).items() if k not in per_fold},
        "classifier_stride_hops": classifier_stride,
        "room_below_peak_db": room_below_peak_db,
        "scenes": None
        if scenes is None
        else {**scenes, "seed": recipe.seed, "dir": str(Path(work) / "scenes")},
        "feature_config_hash": features.P.feature_hash,
        "core_config_hash": features.P.config_hash,
        "archs": {},
    }
    t0 = time.time()
    for arch in archs:
        per = []
        res["archs"][arch] = {"folds": per}
        for k in folds:
            v = val_fold_for(k, all_folds)
            out = work / arch / f"fold{k}"
            log(f"crossval {arch}: test fold {k}, val fold {v}")
            fold_recipe = dataclasses.replace(
                recipe,
                arch=arch,
                val_fold=v,
                test_fold=k,
                enforce_budget=False,
                max_int8_drop=1.0,
                max_parity_rate=1.0,
            )
            fit = pipeline.fit_and_export(
                rows,
                root,
                out,
                fold_recipe,
                cmap=cmap,
                name=f"crossval-{arch}-fold{k}",
                created_by="python -m training crossval",
                strict=strict,
                cache_dir=cache_dir,
                progress=progress,
                log=log,
            )
            test_rows = [r for r in rows if r.fold == k]
            evaluate_fold = functools.partial(
                evaluate.evaluate,
                out,
                test_rows,
                root,
                progress=progress,
                include_clips=False,
                stride=classifier_stride,
            )
            ev = evaluate_fold()
            (out / "eval.json").write_text(json.dumps(ev, indent=1, default=float))
            ev_room = None
            if room_below_peak_db is not None:
                ev_room = evaluate_fold(room_below_peak_db=room_below_peak_db)
                (out / "eval_room.json").write_text(json.dumps(ev_room, indent=1, default=float))
            per.append(_fold_record(ev, fit, k, v, ev_room))
            if scenes is not None:
                per[-1]["scenes"] = score_scenes(out, scene_dirs[k], scenes["node_kw"], progress)
            res["archs"][arch]["summary"] = summarize(per, list(cmap.targets))
            if scenes is not None:
                res["archs"][arch]["summary"]["scenes"] = _scenes_summary(per)
            res["seconds"] = round(time.time() - t0, 1)
            json_path.write_text(json.dumps(res, indent=1, default=float) + "\n")
            log(
                f"crossval {arch} fold {k}: node macro-F1 {per[-1]['node']['macro_f1']:.3f}, "
                f"classifier {per[-1]['classifier']['macro_f1']:.3f}"
            )
    return res


def rescore_scenes(
    rows,
    root,
    json_path,
    *,
    work=None,
    archs=("ds_cnn", "crnn"),
    folds=None,
    seed: int | None = None,
    cmap=None,
    scenes: dict | None = None,
    progress: bool = True,
    log=None,
) -> dict:
    """Score the fold models already in `work` (WORK/<arch>/fold<k>/manifest.json) on their
    folds' scene sets, without training, and write the scene sections into `json_path` (the
    crossval JSON when it exists: every other figure is kept; else a JSON of the scene sections
    only).  seed: the scene sets' when the JSON does not name one (its recipe seed: the sets the
    fold models were scored on first)."""
    log = log or (lambda m: print(m, file=sys.stderr))
    cmap = cmap or _data.ClassMap.default()
    work = Path(work) if work else WORK_DIR
    json_path = Path(json_path)
    res = None
    if json_path.exists():
        try:
            res = json.loads(json_path.read_text())
        except (OSError, ValueError) as e:
            raise _data.DataError(f"{json_path}: not readable JSON ({e})") from None
        if "archs" not in res:
            raise _data.DataError(f"{json_path}: not a crossval JSON (no 'archs' key)")
    seed = (res or {}).get("seed", seed if seed is not None else Recipe().seed)
    st = _scene_settings(scenes or {})
    models = {}
    for arch in archs:
        ks = sorted(
            int(p.name[4:])
            for p in (work / arch).glob("fold*")
            if p.name[4:].isdigit() and (p / "manifest.json").is_file()
        )
        if folds:
            miss = [k for k in folds if k not in ks]
            if miss:
                raise _data.DataError(
                    f"{work / arch / f'fold{miss[0]}'}: no fold model (manifest.json); "
                    "run python -m training crossval first"
                )
            ks = list(folds)
        if not ks:
            raise _data.DataError(
                f"{work / arch}: no fold models (fold<k>/manifest.json); "
                "run python -m training crossval first"
            )
        models[arch] = ks
        recs = {
            f.get("test_fold"): f
            for f in ((res or {}).get("archs", {}).get(arch) or {}).get("folds", [])
        }
        for k in ks:  # the JSON's figures and these models must belong together
            want = (recs.get(k) or {}).get("model_sha256")
            try:
                have = json.loads((work / arch / f"fold{k}" / "manifest.json").read_text()).get(
                    "model_sha256"
                )
            except (OSError, ValueError) as e:
                raise _data.DataError(
                    f"{work / arch / f'fold{k}'}: unreadable manifest.json ({e})"
                ) from None
            if want and have != want:
                raise _data.DataError(
                    f"{work / arch / f'fold{k}'}: another model than {json_path}'s "
                    f"{arch} fold {k} (sha256 {str(have)[:12]} vs {want[:12]}); "
                    "pass the work dir of that crossval run or another --json"
                )
    all_folds = sorted({k for ks in models.values() for k in ks})
    dirs = build_scene_sets(
        rows, root, all_folds, seed, work, cmap.targets, st, progress=progress, log=log
    )
    if res is None:
        res = {
            "schema_version": 1,
            "created_by": "python -m training crossval --scenes-only",
            "folds": all_folds,
            "classes": list(cmap.targets),
            "seed": seed,
            "archs": {},
        }
    res["scenes"] = {**st, "seed": seed, "dir": str(work / "scenes")}
    for arch, ks in models.items():
        a = res["archs"].setdefault(arch, {"folds": []})
        for k in ks:
            rec = next((f for f in a["folds"] if f.get("test_fold") == k), None)
            if rec is None:
                rec = {"test_fold": k}
                a["folds"].append(rec)
            rec["scenes"] = score_scenes(work / arch / f"fold{k}", dirs[k], st["node_kw"], progress)
            f = rec["scenes"]
            log(
                f"crossval scenes {arch} fold {k}: event F1 {f['event_f1']}, "
                f"false alarms/h {f['false_alarms_per_hour']}"
            )
        a.setdefault("summary", {})["scenes"] = _scenes_summary(a["folds"])
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1, default=float) + "\n")
    tmp.replace(json_path)
    return res


def summary_text(res: dict) -> str:
    lines = []
    for arch, a in res["archs"].items():
        s = a.get("summary", {})
        if "node" not in s:  # a scenes-only JSON
            lines += [f"{arch} scenes: " + _scene_line(s.get("scenes"))]
            continue
        f = lambda d: "-" if not d or d.get("mean") is None else f"{d['mean']:.3f} ± {d['std']:.3f}"
        lines.append(
            f"{arch}: node macro-F1 {f(s['node']['macro_f1'])} (classes with clips "
            f"{f(s['node'].get('macro_f1_supported'))}), classifier macro-F1 "
            f"{f(s['classifier']['macro_f1'])}, gunshot recall (node) {f(s.get('gunshot_recall_node'))}, "
            f"false alarms/h {f(s.get('false_alarms_per_hour'))}"
            + (
                f"; room {res.get('room_below_peak_db')} dB below the peak: node macro-F1 "
                f"{f(s['node_room']['macro_f1'])}, gunshot recall {f(s.get('gunshot_recall_node_room'))}"
                if "node_room" in s
                else ""
            )
            + (
                f"; a perfect model behind the gate would score {f(s['gate_ceiling']['macro_f1'])}"
                if "gate_ceiling" in s
                else ""
            )
            + (f"; scenes: {_scene_line(s['scenes'])}" if s.get("scenes") else "")
        )
    return "\n".join(lines)


def _scene_line(sm: dict | None) -> str:
    if not sm:
        return "not scored"
    f = lambda v, spec=".3f": "-" if v is None else format(v, spec)  # noqa: E731
    return (
        f"event F1 {f(sm['event_f1'])} (200 ms), {f(sm['collars']['500ms']['event_f1'])} (500 ms), "
        f"gate recall {f(sm['gate_recall'])}, false alarms/h on streams "
        f"{f(sm['streams']['false_alarms_per_hour'], '.1f')}"
    )
