"""python -m training <command> — the earwitness training pipeline.

Commands
  features   compute (and cache) the node-aligned training windows of a clip CSV
  train      features -> train -> int8 -> parity/budget checks -> thresholds -> export to --out
  ship       `train` with the shipped defaults on ../shared/data, written to firmware/model
  export     regenerate the C files of a model folder from its model.tflite + manifest.json
             (--check: exit 1 if the manifest or the C files do not match the .tflite)
  crossval   train/evaluate per held-out fold (CNN vs CRNN), mean +- std per metric, and the
             scene benchmark of each held-out fold; results to --json-out OUT
  scenes     scene benchmark of a test fold: build / inspect / eval (training.scenes)
  data       download the public corpora and convert them to the layout `ship` reads

The CSV needs columns path,label (paths relative to --root); fold, duration_s, source,
licence are optional, other columns are ignored.  Labels that are not model classes are
negatives ("other").  Exit status: 0 ok, 1 a check failed, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from tools.node import params
from training.recipe import ARCHS, FA_STREAMS, Recipe, RecipeError

DEFAULT_SHARED = params.ROOT.parent / "shared" / "data"
DEFAULT_MODEL_DIR = params.MODEL_DIR
R = Recipe  # its defaults are the options' defaults


def _common_data(ap, csv_required=True):
    """The data options of every subcommand but export (--seed and --no-augment are Recipe
    settings: their dest is the field's name)."""
    ap.add_argument(
        "--csv",
        type=Path,
        required=csv_required,
        help="clip CSV (path,label[,fold,...]); default for ship: ROOT/all_metadata.csv",
    )
    ap.add_argument(
        "--root", type=Path, required=csv_required, help="folder the CSV's paths are relative to"
    )
    ap.add_argument(
        "--classes",
        default=None,
        help="comma-separated target classes in output order (default: gunshot,"
        "glass_breaking,scream,siren,fireworks_explosion,baby_cry,dog_bark); "
        "'name=label1+label2' maps more dataset labels to a class",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=R.seed,
        help=f"seed of augmentation and training (default {R.seed})",
    )
    ap.add_argument(
        "--strict", action="store_true", help="stop at the first unreadable clip (default: skip it)"
    )
    ap.add_argument(
        "--no-augment",
        dest="augment_data",
        action="store_false",
        help="only the clips as recorded (no mixtures)",
    )
    ap.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute features (do not read/write build/training)",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bars")


def _recipe_opts(ap, one_model=True):
    """The Recipe's settings as options of train/ship (one_model) and crossval: each option's
    dest is the Recipe field's name, its default the Recipe's (_recipe maps them back)."""
    from training.quantize import budget_text

    onoff = lambda v: "on" if v else "off"  # noqa: E731
    if one_model:
        ap.add_argument("--arch", default=R.arch, choices=ARCHS, help=f"model (default {R.arch})")
        ap.add_argument(
            "--val-fold",
            type=int,
            default=R.val_fold,
            help=f"fold for thresholds (and early stopping with --no-train-on-val; "
            f"default {R.val_fold}; -1: none)",
        )
        ap.add_argument(
            "--test-fold", type=int, default=R.test_fold, help="fold left out entirely (optional)"
        )
    ap.add_argument(
        "--width",
        type=int,
        default=R.width,
        help=f"channels of the model's first convolution (default {R.width})",
    )
    ap.add_argument(
        "--epochs",
        type=int,
        default=R.epochs,
        help=f"maximum epochs (default {R.epochs}; early stopping on the val fold with "
        "--no-train-on-val)",
    )
    ap.add_argument(
        "--max-per-class",
        type=int,
        default=R.max_per_class,
        help="at most this many training windows per target class (seeded subset; 0 = all; "
        f"default {R.max_per_class})",
    )
    ap.add_argument(
        "--max-negatives",
        type=int,
        default=R.max_negatives,
        metavar="N",
        help="at most this many training windows of the negative class (background, other "
        f"sounds; seeded subset; 0 = all; default {R.max_negatives})",
    )
    ap.add_argument(
        "--aligned-negatives-first",
        action=argparse.BooleanOptionalAction,
        default=R.aligned_negatives_first,
        help="with --max-negatives: fill the negative class with the windows the node's gate "
        "placed before the fixed-stride (continuous) ones (--no-aligned-negatives-first: "
        f"a uniform subset; default {onoff(R.aligned_negatives_first)})",
    )
    ap.add_argument(
        "--train-on-val",
        action=argparse.BooleanOptionalAction,
        default=R.train_on_val,
        help="train on the validation fold as well (every fold but the test fold), all "
        "--epochs without early stopping; the thresholds are still chosen on the "
        "validation fold's clips, which the model has then heard (--no-train-on-val "
        f"holds the fold back for early stopping; default {onoff(R.train_on_val)})",
    )
    ap.add_argument(
        "--mixup",
        type=float,
        default=R.mixup,
        metavar="ALPHA",
        help=f"in-batch mixup of training windows, lam ~ Beta(ALPHA, ALPHA) (default {R.mixup}; 0 = off)",
    )
    ap.add_argument(
        "--freq-shift",
        type=int,
        default=R.freq_shift,
        metavar="BANDS",
        help="shift each training window by a random -BANDS..+BANDS mel bands "
        f"(default {R.freq_shift}; 0 = off)",
    )
    ap.add_argument(
        "--fa-per-hour",
        type=float,
        default=R.fa_per_hour,
        help=f"false alarms per hour allowed on the validation background streams, all "
        f"classes together (default {R.fa_per_hour:g})",
    )
    ap.add_argument(
        "--negatives-fa-per-hour",
        type=float,
        default=R.negatives_fa_per_hour,
        metavar="RATE",
        help=f"and at the same time on every non-target validation clip (speech, knocks, "
        f"engines, other events; default {R.negatives_fa_per_hour:g}; 0 = off): a budget of "
        f"a few events per class instead of none on minutes of ambience",
    )
    ap.add_argument(
        "--fa-streams",
        choices=FA_STREAMS,
        default=R.fa_streams,
        help=f"streams the false-alarm rate is measured on (default {R.fa_streams})",
    )
    if one_model:
        ap.add_argument(
            "--max-int8-drop",
            type=float,
            default=R.max_int8_drop,
            help=f"fail when int8 loses more window macro-F1 than this (default {R.max_int8_drop})",
        )
        ap.add_argument(
            "--max-parity-rate",
            type=float,
            default=R.max_parity_rate,
            help="fail when more than this fraction of the evaluation windows differ by more "
            "than 1 LSB (or in arg-max) between TFLite BUILTIN_REF and tflite-micro "
            f"(default {R.max_parity_rate}; the count is always reported)",
        )
        ap.add_argument(
            "--no-budget",
            dest="enforce_budget",
            action="store_false",
            help=f"export even when over the node's budget ({budget_text()})",
        )


# options whose value stands for None in the Recipe (0 = all windows, -1 = no fold)
_NONE_IF = {"max_per_class": 0, "max_negatives": 0, "val_fold": -1}


def _recipe(args):
    """The Recipe of parsed train/ship/crossval options (each option's dest is a field's
    name; fields without an option keep the Recipe's default).  Raises RecipeError."""
    kw = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe) if hasattr(args, f.name)
    }
    for k, none in _NONE_IF.items():
        if k in kw and kw[k] == none:
            kw[k] = None
    return Recipe(**kw)


def _parser():
    ap = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", metavar="command")
    p = sub.add_parser("features", help="compute and cache training windows")
    _common_data(p)
    p = sub.add_parser("train", help="train, quantise, check and export one model")
    _common_data(p)
    _recipe_opts(p)
    p.add_argument("--name", default=None, help="model name in the manifest")
    p.add_argument("--out", type=Path, required=True, help="output model folder")
    p = sub.add_parser(
        "ship", help="train the shipped default model on ../shared/data into firmware/model"
    )
    _common_data(p, csv_required=False)
    _recipe_opts(p)
    p.add_argument("--name", default=None, help="model name in the manifest")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_MODEL_DIR, help="output folder (default firmware/model)"
    )
    p = sub.add_parser("export", help="regenerate (or --check) the C files of a model folder")
    p.add_argument(
        "--model-dir",
        type=Path,
        default=DEFAULT_MODEL_DIR,
        help="model folder (default firmware/model)",
    )
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 on any difference")
    p.add_argument(
        "--no-arena", action="store_true", help="with --check: skip re-measuring the arena"
    )
    p = sub.add_parser(
        "crossval", help="fold cross-validation, CNN vs CRNN, through the node pipeline"
    )
    _common_data(p)
    _recipe_opts(p, one_model=False)
    p.add_argument(
        "--json-out",
        "--json",
        dest="json",
        type=Path,
        required=True,
        metavar="FILE",
        help="write the results here, and the report next to it (.md, confusion and scene "
        "timeline PNGs); --json is the older name",
    )
    p.add_argument("--archs", default="ds_cnn,crnn", help="architectures (default ds_cnn,crnn)")
    p.add_argument("--folds", default=None, help="test folds (default: every fold in the CSV)")
    p.add_argument(
        "--work",
        type=Path,
        default=None,
        help="keep the per-fold models here (default build/crossval)",
    )
    p._negative_number_matcher = __import__("re").compile(r"^-\d")  # `--scene-ebr -6,0,6`
    p.add_argument(
        "--room-below-peak",
        type=float,
        default=20.0,
        metavar="DB",
        help="also evaluate each test fold with the room at least DB below each clip's peak "
        "(`node_room`, tools.validate.gate_eval's protocol; default 20; a negative value skips it)",
    )
    from training import crossval as _cv

    d = _cv.SCENE_DEFAULTS
    g = p.add_argument_group(
        "scene benchmark (training.scenes / training.scene_eval, per test fold)"
    )
    g.add_argument(
        "--no-scenes",
        dest="scenes",
        action="store_false",
        help="skip the scene benchmark (default: build every test fold's scene set under "
        "WORK/scenes before training and score each fold's model on it)",
    )
    g.add_argument(
        "--scenes-only",
        action="store_true",
        help="train nothing: re-score the fold models already in --work (WORK/<arch>/fold<k>) "
        "on the scene sets and write the scene sections into --json (kept otherwise)",
    )
    g.add_argument(
        "--scene-ebr",
        default=",".join(f"{e:g}" for e in d["ebrs"]),
        metavar="DB,DB",
        help="event-to-background ratios, dB (default %(default)s)",
    )
    g.add_argument(
        "--scene-per-ebr",
        type=int,
        default=d["per_ebr"],
        metavar="N",
        help="events per class per EBR per fold (default %(default)s)",
    )
    g.add_argument(
        "--scene-stream-minutes",
        type=float,
        default=d["stream_minutes"],
        metavar="MIN",
        help="minutes of negative streams per fold (default %(default)s)",
    )
    g.add_argument(
        "--node-mode",
        choices=("gated", "continuous"),
        default=None,
        help="score the scenes with the node in this mode (default: the model's, as deployed)",
    )
    g.add_argument(
        "--continuous-stride",
        type=int,
        default=None,
        metavar="HOPS",
        help="with continuous mode: hops between analysis windows (default the core's)",
    )
    from training import corpus  # `data`: download + convert the public corpora

    corpus.add_parser(sub)
    from training import scenes

    scenes.add_parser(sub)  # scenes build / inspect / eval
    return ap


def _die(msg, code=2):
    print(f"error: {msg}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.cmd is None:
        ap.print_help()
        return 2
    if args.cmd == "data":
        from training import corpus

        return corpus.run(args)
    if args.cmd == "scenes":
        return args.func(args)
    from training import data, features
    from training.quantize import ExportError

    try:
        if args.cmd == "export":
            from training import export

            if args.check:
                problems = export.check(args.model_dir, measure_arena=not args.no_arena)
                for p in problems:
                    print(f"{args.model_dir}: {p}", file=sys.stderr)
                if not problems:
                    print(f"{args.model_dir}: manifest and generated C match model.tflite")
                return 1 if problems else 0
            for p in export.generate(args.model_dir):
                print(p)
            return 0
        recipe = _recipe(args) if args.cmd in ("train", "ship", "crossval") else None
        if args.cmd == "crossval":
            bad = [a for a in args.archs.split(",") if a not in ARCHS]
            if bad:
                return _die(
                    f"--archs: unknown architecture '{bad[0]}' (choose from {', '.join(ARCHS)})"
                )
        if args.cmd == "ship":
            args.root = args.root or DEFAULT_SHARED
            args.csv = args.csv or args.root / "all_metadata.csv"
        if not args.root.is_dir():
            return _die(
                f"{args.root}: no such folder (python -m training data --out {args.root} "
                "downloads and converts the public corpora)"
            )
        rows = data.read_csv(args.csv)
        cmap = data.ClassMap.parse(args.classes)
        cache = None if args.no_cache else features.CACHE_DIR
        if args.cmd == "features":
            ws = features.load_or_build(
                rows,
                args.root,
                cmap,
                args.seed,
                augment_data=args.augment_data,
                strict=args.strict,
                cache_dir=cache,
                progress=not args.quiet,
            )
            print(
                json.dumps(
                    {
                        "windows": len(ws),
                        "per_class": ws.counts(),
                        "per_kind": {
                            features.KIND_NAMES[k]: int((ws.kind == k).sum())
                            for k in range(len(features.KIND_NAMES))
                        },
                    },
                    indent=1,
                )
            )
            return 0
        if args.cmd in ("train", "ship"):
            from training import pipeline

            cmd = "python -m training " + " ".join(
                shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
            )
            res = pipeline.fit_and_export(
                rows,
                args.root,
                args.out,
                recipe,
                cmap=cmap,
                name=args.name or ("earwitness-default" if args.cmd == "ship" else None),
                created_by=cmd if args.cmd == "train" else "python -m training ship",
                strict=args.strict,
                cache_dir=cache,
                progress=not args.quiet,
            )
            m = res["manifest"]
            print(
                json.dumps(
                    {
                        k: m[k]
                        for k in (
                            "name",
                            "model_sha256",
                            "model_bytes",
                            "arena_bytes",
                            "macs",
                            "ops",
                            "thresholds",
                        )
                    },
                    indent=1,
                )
            )
            return 0
        if args.cmd == "crossval":
            from training import crossval

            node_kw = {
                k: v
                for k, v in (
                    ("mode", args.node_mode),
                    ("continuous_stride", args.continuous_stride),
                )
                if v is not None
            }
            sc_set = {
                "ebrs": args.scene_ebr,
                "per_ebr": args.scene_per_ebr,
                "stream_minutes": args.scene_stream_minutes,
                "node_kw": node_kw,
            }
            if args.scenes_only:
                res = crossval.rescore_scenes(
                    rows,
                    args.root,
                    args.json,
                    work=args.work,
                    archs=args.archs.split(","),
                    folds=None if args.folds is None else [int(f) for f in args.folds.split(",")],
                    seed=args.seed,
                    cmap=cmap,
                    scenes=sc_set,
                    progress=not args.quiet,
                )
                print(crossval.summary_text(res))
                from training import report

                for path in report.write_crossval(res, Path(args.json).with_suffix(".md")):
                    print(f"wrote {path}")
                return 0
            res = crossval.run(
                rows,
                args.root,
                args.json,
                recipe,
                cmap=cmap,
                archs=args.archs.split(","),
                folds=None if args.folds is None else [int(f) for f in args.folds.split(",")],
                work=args.work,
                cache_dir=cache,
                strict=args.strict,
                progress=not args.quiet,
                room_below_peak_db=args.room_below_peak if args.room_below_peak >= 0 else None,
                scenes=sc_set if args.scenes else None,
            )
            print(crossval.summary_text(res))
            from training import report

            for path in report.write_crossval(res, Path(args.json).with_suffix(".md")):
                print(f"wrote {path}")
            return 0
    except RecipeError as e:  # the option of the bad setting (its dest is the field)
        return _die(f"--{e.setting.replace('_', '-')} {e.problem}")
    except data.DataError as e:
        return _die(str(e), 2)
    except ExportError as e:
        return _die(str(e), 1)
    except KeyboardInterrupt:
        return _die("interrupted", 1)
    return 2


if __name__ == "__main__":
    sys.exit(main())
