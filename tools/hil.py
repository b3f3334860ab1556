"""python tools/hil.py (or python -m tools.hil): the command; the library is tools.validate.hil
(its docstring is the command's help)."""

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python tools/hil.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import cli  # noqa: E402
from tools.errors import EXIT_INTERRUPTED, run_cli  # noqa: E402
from tools.validate import hil  # noqa: E402
from tools.validate.hil import Thresholds  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python tools/hil.py",
        description=hil.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_link_args(
        ap,
        sim_help="start a simulated node (tools.twin) with --model; the audio "
        "comes from --root by INJECT",
        sim_audio=False,
    )
    ap.add_argument("--root", type=Path, required=True, help="folder of audio files (recursive)")
    ap.add_argument(
        "--scenes",
        type=Path,
        default=None,
        help="ground truth: CSV (scene,onset_s,offset_s,label) or DCASE .txt",
    )
    ap.add_argument(
        "--no-truth",
        action="store_true",
        help="no ground truth: score every file as containing no target event "
        "(every node event is a false alarm)",
    )
    ap.add_argument(
        "--json-out",
        type=Path,
        default=None,
        dest="json_out",
        metavar="OUT",
        help="write the scores (JSON) here; details, report and plots go next to it",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        dest="json_old",
        metavar="OUT",
        help="deprecated name of --json-out",
    )
    ap.add_argument("--collar", type=float, default=0.2, help="onset collar, s (default 0.2; > 0)")
    ap.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the host reference pipeline (no model needed)",
    )
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable audio files instead of refusing the run",
    )
    for name in Thresholds.__dataclass_fields__:
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=int if name == "max_reference_mismatches" else float,
            default=None,
        )
    ap.add_argument("--print-json", action="store_true", help="print the scores as JSON")
    ap.add_argument("-q", "--quiet", action="store_true")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    th = Thresholds(**{n: getattr(args, n) for n in Thresholds.__dataclass_fields__})
    with hil.sigterm_as_interrupt() as term:  # SIGTERM: stop as on Ctrl-C, exit 143
        rc = run_cli(
            lambda: hil.command(
                args,
                args.root,
                args.json_out,
                th,
                scenes=args.scenes,
                no_truth=args.no_truth,
                json_old=args.json_old,
                collar=args.collar,
                no_reference=args.no_reference,
                no_plots=args.no_plots,
                skip_bad=args.skip_bad,
                print_json=args.print_json,
                quiet=args.quiet,
            ),
            "hil",
        )
    return hil.EXIT_TERMINATED if term.got and rc == EXIT_INTERRUPTED else rc


if __name__ == "__main__":
    sys.exit(main())
