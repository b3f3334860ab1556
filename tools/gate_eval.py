"""python -m tools.gate_eval (or python tools/gate_eval.py): the command; the library is
tools.validate.gate_eval (its docstring is the command's help)."""

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python tools/gate_eval.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.errors import run_cli  # noqa: E402
from tools.validate import gate_eval  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.gate_eval",
        description=gate_eval.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--root", type=Path, required=True, help="folder the CSV paths are relative to")
    ap.add_argument(
        "--csv", type=Path, help="metadata CSV with path,label (default ROOT/all_metadata.csv)"
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    src = ap.add_mutually_exclusive_group()
    src.add_argument(
        "--model",
        type=Path,
        default=None,
        help="classify the windows with this model folder (the node as deployed: "
        "rejected onsets habituate the detector); default: the gate alone",
    )
    src.add_argument(
        "--fold-models",
        type=Path,
        default=None,
        metavar="DIR",
        help="held-out models: clips of fold k are classified by DIR/fold<k> "
        "(e.g. build/crossval/ds_cnn after `make crossval`); other folds are skipped",
    )
    ap.add_argument(
        "--mixed",
        action="store_true",
        help="also measure recall of impulsive events mixed into impulsive backgrounds "
        "(fire, dripping water) at 0/3/6/10 dB over their loudest pops, with the "
        "node habituating and without (needs --model or --fold-models)",
    )
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(
        lambda: gate_eval.run(
            args.root,
            csv_path=args.csv,
            json_out=args.json,
            model_dir=args.model,
            fold_models=args.fold_models,
            mixed=args.mixed,
        ),
        "gate_eval",
    )


if __name__ == "__main__":
    sys.exit(main())
