"""python -m training <command> — the earwitness training pipeline.

Commands
  features   compute (and cache) the node-aligned training windows of a clip CSV
  train      features -> train -> int8 -> parity/budget checks -> thresholds -> export to --out
  ship       `train` with the shipped defaults on ../shared/data, written to firmware/model
  export     regenerate the C files of a model folder from its model.tflite + manifest.json
             (--check: exit 1 if the manifest or the C files do not match the .tflite)
  crossval   train/evaluate per held-out fold (CNN vs CRNN), mean +- std per metric, --json OUT

The CSV needs columns path,label (paths relative to --root); fold, duration_s, source,
licence are optional, other columns are ignored.  Labels that are not model classes are
negatives ("other").  Exit status: 0 ok, 1 a check failed, 2 bad input (one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from tools.node import params

DEFAULT_SHARED = params.ROOT.parent / "shared" / "data"
DEFAULT_MODEL_DIR = params.ROOT / "firmware" / "model"
SHIP_VAL_FOLD = 2


def _common_data(ap, csv_required=True):
    ap.add_argument("--csv", type=Path, required=csv_required,
                    help="clip CSV (path,label[,fold,...]); default for ship: ROOT/all_metadata.csv")
    ap.add_argument("--root", type=Path, required=csv_required, help="folder the CSV's paths are relative to")
    ap.add_argument("--classes", default=None,
                    help="comma-separated target classes in output order (default: gunshot,"
                         "glass_breaking,scream,siren,fireworks_explosion,baby_cry,dog_bark); "
                         "'name=label1+label2' maps more dataset labels to a class")
    ap.add_argument("--seed", type=int, default=0, help="seed of augmentation and training (default 0)")
    from training.train import MAX_NEGATIVES, MAX_PER_CLASS
    ap.add_argument("--max-per-class", type=int, default=MAX_PER_CLASS,
                    help="at most this many training windows per target class (seeded subset; 0 = all; "
                         f"default {MAX_PER_CLASS})")
    ap.add_argument("--max-negatives", type=int, default=MAX_NEGATIVES, metavar="N",
                    help="at most this many training windows of the negative class (background, other "
                         f"sounds; seeded subset; 0 = all; default {MAX_NEGATIVES}; 4000, the targets' cap, "
                         "before session 10)")
    ap.add_argument("--aligned-negatives-first", action=argparse.BooleanOptionalAction, default=True,
                    help="with --max-negatives: fill the negative class with the windows the node's gate "
                         "placed before the fixed-stride (continuous) ones (default: on; "
                         "--no-aligned-negatives-first: a uniform subset, the recipe before session 8)")
    ap.add_argument("--strict", action="store_true", help="stop at the first unreadable clip (default: skip it)")
    ap.add_argument("--no-augment", action="store_true", help="only the clips as recorded (no mixtures)")
    ap.add_argument("--no-cache", action="store_true", help="recompute features (do not read/write build/training)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")


def _train_opts(ap):
    ap.add_argument("--arch", default="ds_cnn", choices=("ds_cnn", "crnn"), help="model (default ds_cnn)")
    ap.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 15; early stopping on the val fold with --no-train-on-val)")
    ap.add_argument("--val-fold", type=int, default=SHIP_VAL_FOLD,
                    help=f"fold for thresholds (and early stopping with --no-train-on-val; default {SHIP_VAL_FOLD}; -1: none)")
    ap.add_argument("--test-fold", type=int, default=None, help="fold left out entirely (optional)")
    _threshold_opts(ap)
    _train_on_val_opt(ap)
    ap.add_argument("--fa-streams", choices=("background", "negatives"), default="background",
                    help="streams the false-alarm rate is measured on (default background)")
    ap.add_argument("--max-int8-drop", type=float, default=0.05,
                    help="fail when int8 loses more window macro-F1 than this (default 0.05)")
    ap.add_argument("--max-parity-rate", type=float, default=0.005,
                    help="fail when more than this fraction of the evaluation windows differ by more "
                         "than 1 LSB (or in arg-max) between TFLite BUILTIN_REF and tflite-micro "
                         "(default 0.005; the count is always reported)")
    _augment_opts(ap)
    ap.add_argument("--no-budget", action="store_true", help="export even when over 64 KB / 48 KB arena / 3 M MACs")
    ap.add_argument("--name", default=None, help="model name in the manifest")


def _threshold_opts(ap):
    from training.train import FA_PER_HOUR, NEGATIVES_FA_PER_HOUR
    ap.add_argument("--fa-per-hour", type=float, default=FA_PER_HOUR,
                    help=f"false alarms per hour allowed on the validation background streams, all "
                         f"classes together (default {FA_PER_HOUR:g})")
    ap.add_argument("--negatives-fa-per-hour", type=float, default=NEGATIVES_FA_PER_HOUR, metavar="RATE",
                    help=f"and at the same time on every non-target validation clip (speech, knocks, "
                         f"engines, other events; default {NEGATIVES_FA_PER_HOUR:g}; 0 = off): a budget of "
                         f"a few events per class instead of none on minutes of ambience")


def _train_on_val_opt(ap):
    from training.train import TRAIN_ON_VAL
    ap.add_argument("--train-on-val", action=argparse.BooleanOptionalAction, default=TRAIN_ON_VAL,
                    help="train on the validation fold as well (every fold but the test fold), all "
                         "--epochs without early stopping; the thresholds are still chosen on the "
                         "validation fold's clips, which the model has then heard (default: "
                         f"{'on' if TRAIN_ON_VAL else 'off'}; --no-train-on-val holds the fold back for "
                         "early stopping, the recipe before session 9)")
    from training.train import HOLD_VAL_NEGATIVES
    ap.add_argument("--hold-val-negatives", action=argparse.BooleanOptionalAction, default=HOLD_VAL_NEGATIVES,
                    help="with --train-on-val: train only on the validation fold's target windows, "
                         "so that the thresholds are set on negatives the model has not heard "
                         f"(default: {'on' if HOLD_VAL_NEGATIVES else 'off'})")


def _augment_opts(ap):
    from training.train import DEFAULTS
    ap.add_argument("--mixup", type=float, default=None, metavar="ALPHA",
                    help="in-batch mixup of training windows, lam ~ Beta(ALPHA, ALPHA) "
                         f"(default {DEFAULTS['mixup']}; 0 = off)")
    ap.add_argument("--freq-shift", type=int, default=None, metavar="BANDS",
                    help="shift each training window by a random -BANDS..+BANDS mel bands "
                         f"(default {DEFAULTS['freq_shift']}; 0 = off)")
    ap.add_argument("--spec-masks", type=int, default=None, metavar="N",
                    help="SpecAugment: N time masks (<= 8 frames) and N frequency masks (<= 5 bands) "
                         f"per training window (default {DEFAULTS['spec_masks']}; 0 = off)")
    ap.add_argument("--time-stretch", type=float, default=None, metavar="FRACTION",
                    help="stretch or squeeze each training window in time by a random factor "
                         "1-FRACTION..1+FRACTION about the onset frame (speed perturbation; "
                         f"default {DEFAULTS['time_stretch']}; 0 = off)")
    ap.add_argument("--eq-db", type=float, default=None, metavar="DB",
                    help="random smooth equalisation of each training window: a tilt and a mid "
                         "bump/dip across the mel bands, each up to +-DB dB (another microphone's "
                         f"colour; default {DEFAULTS['eq_db']}; 0 = off)")
    ap.add_argument("--aux-negatives", type=float, default=None, metavar="WEIGHT",
                    help="train an auxiliary head next to the model's own that tells the kinds of "
                         "negative sound apart (each negative clip's label:source_label, e.g. "
                         "other:Rooster), with this loss weight; the head is dropped before export, "
                         f"the shipped network is unchanged (default {DEFAULTS['aux_negatives']}; 0 = off)")


def _augment_of(args) -> dict:
    """The augmentation overrides given on the command line (train.augment_settings)."""
    from training.train import AUGMENT_KEYS
    return {k: getattr(args, k) for k in AUGMENT_KEYS if getattr(args, k) is not None}


def _parser():
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", metavar="command")
    p = sub.add_parser("features", help="compute and cache training windows")
    _common_data(p)
    p = sub.add_parser("train", help="train, quantise, check and export one model")
    _common_data(p)
    _train_opts(p)
    p.add_argument("--out", type=Path, required=True, help="output model folder")
    p = sub.add_parser("ship", help="train the shipped default model on ../shared/data into firmware/model")
    _common_data(p, csv_required=False)
    _train_opts(p)
    p.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="output folder (default firmware/model)")
    p = sub.add_parser("export", help="regenerate (or --check) the C files of a model folder")
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="model folder (default firmware/model)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 on any difference")
    p.add_argument("--no-arena", action="store_true", help="with --check: skip re-measuring the arena")
    p = sub.add_parser("crossval", help="fold cross-validation, CNN vs CRNN, through the node pipeline")
    _common_data(p)
    p.add_argument("--json", type=Path, required=True,
                   help="write the results here, and the report next to it (.md, pooled confusion .png)")
    p.add_argument("--archs", default="ds_cnn,crnn", help="architectures (default ds_cnn,crnn)")
    p.add_argument("--folds", default=None, help="test folds (default: every fold in the CSV)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs per model (default 15)")
    _threshold_opts(p)
    _train_on_val_opt(p)
    _augment_opts(p)
    p.add_argument("--work", type=Path, default=None, help="keep the per-fold models here (default build/crossval)")
    p.add_argument("--room-below-peak", type=float, default=20.0, metavar="DB",
                   help="also evaluate each test fold with the room at least DB below each clip's peak "
                        "(`node_room`, tools.gate_eval's protocol; default 20; a negative value skips it)")
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
        for opt in ("fa_per_hour", "negatives_fa_per_hour"):
            if getattr(args, opt, 0) < 0:
                return _die(f"--{opt.replace('_', '-')} must be 0 or more false alarms per hour, "
                            f"not {getattr(args, opt)}")
        from training.train import AUGMENT_KEYS
        for opt in AUGMENT_KEYS:             # mixup, masks, shifts, weights: 0 is off, below is nonsense
            if (getattr(args, opt, None) or 0) < 0:
                return _die(f"--{opt.replace('_', '-')} must be 0 (off) or more, not {getattr(args, opt)}")
        if args.cmd == "ship":
            args.root = args.root or DEFAULT_SHARED
            args.csv = args.csv or args.root / "all_metadata.csv"
        if not args.root.is_dir():
            return _die(f"{args.root}: no such folder")
        rows = data.read_csv(args.csv)
        cmap = data.ClassMap.parse(args.classes)
        cache = None if args.no_cache else features.CACHE_DIR
        if args.cmd == "features":
            ws = features.load_or_build(rows, args.root, cmap, args.seed, augment_data=not args.no_augment,
                                        strict=args.strict, cache_dir=cache, progress=not args.quiet)
            print(json.dumps({"windows": len(ws), "per_class": ws.counts(),
                              "per_kind": {features.KIND_NAMES[k]: int((ws.kind == k).sum())
                                           for k in range(len(features.KIND_NAMES))}}, indent=1))
            return 0
        if args.cmd in ("train", "ship"):
            from training import train
            cmd = "python -m training " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
            res = train.fit_and_export(
                rows, args.root, args.out, cmap=cmap, arch=args.arch, seed=args.seed,
                val_fold=None if args.val_fold == -1 else args.val_fold, test_fold=args.test_fold,
                epochs=args.epochs, fa_per_hour=args.fa_per_hour, fa_streams=args.fa_streams,
                negatives_fa_per_hour=args.negatives_fa_per_hour,
                name=args.name or ("earwitness-default" if args.cmd == "ship" else None),
                created_by=cmd if args.cmd == "train" else "python -m training ship",
                enforce_budget=not args.no_budget, max_int8_drop=args.max_int8_drop,
                max_parity_rate=args.max_parity_rate, max_per_class=args.max_per_class or None,
                max_negatives=args.max_negatives or None, strict=args.strict,
                cap_prefer_aligned=args.aligned_negatives_first, train_on_val=args.train_on_val,
                hold_val_negatives=args.hold_val_negatives,
                augment=_augment_of(args), cache_dir=cache, augment_data=not args.no_augment, progress=not args.quiet)
            m = res["manifest"]
            print(json.dumps({k: m[k] for k in ("name", "model_sha256", "model_bytes", "arena_bytes", "macs",
                                                "ops", "thresholds")}, indent=1))
            return 0
        if args.cmd == "crossval":
            from training import crossval
            res = crossval.run(rows, args.root, args.json, cmap=cmap, archs=args.archs.split(","),
                               folds=None if args.folds is None else [int(f) for f in args.folds.split(",")],
                               seed=args.seed, epochs=args.epochs, fa_per_hour=args.fa_per_hour,
                               negatives_fa_per_hour=args.negatives_fa_per_hour,
                               work=args.work, cache_dir=cache, strict=args.strict,
                               augment_data=not args.no_augment, progress=not args.quiet,
                               max_per_class=args.max_per_class or None,
                               max_negatives=args.max_negatives or None, augment=_augment_of(args),
                               cap_prefer_aligned=args.aligned_negatives_first,
                               train_on_val=args.train_on_val,
                               hold_val_negatives=args.hold_val_negatives,
                               room_below_peak_db=args.room_below_peak if args.room_below_peak >= 0 else None)
            print(crossval.summary_text(res))
            from training import report
            for path in report.write_crossval(res, Path(args.json).with_suffix(".md")):
                print(f"wrote {path}")
            return 0
    except data.DataError as e:
        return _die(str(e), 2)
    except ExportError as e:
        return _die(str(e), 1)
    except KeyboardInterrupt:
        return _die("interrupted", 1)
    return 2


if __name__ == "__main__":
    sys.exit(main())
