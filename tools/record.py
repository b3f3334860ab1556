"""python -m tools.record (or python tools/record.py): the command; the library is
tools.hostio.record (its docstring is the command's help)."""

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python tools/record.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import cli  # noqa: E402
from tools.errors import run_cli  # noqa: E402
from tools.hostio import record  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.record",
        description=record.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_link_args(ap)
    ap.add_argument("--out", type=Path, required=True, help="folder for the files")
    ap.add_argument(
        "--roll-minutes",
        type=float,
        default=10.0,
        help="start a new file every N minutes of audio (default 10)",
    )
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this much audio, > 0 (node segments: stream time; "
        "default: until Ctrl-C; a simulated node's microphone goes on with "
        "silence, in real time, after its audio)",
    )
    ap.add_argument("--on-event", action="store_true", help="keep only windows around detections")
    ap.add_argument(
        "--host-buffer",
        action="store_true",
        help="--on-event with the host's pre-roll buffer even if the node could do it",
    )
    ap.add_argument(
        "--pre-roll",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="host buffer: audio kept before an event onset (default 3)",
    )
    ap.add_argument(
        "--post-roll",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="host buffer: audio kept after an event onset (default 2)",
    )
    ap.add_argument(
        "--no-restart",
        action="store_true",
        help="do not start a new stream (keep the node's sample indices)",
    )
    ap.add_argument(
        "--label",
        default=None,
        help="label for metadata.csv (default: "
        "'unlabelled', or the detected class with --on-event)",
    )
    ap.add_argument("--fold", type=int, default=None)
    ap.add_argument("--licence", default="unspecified (own field recording)")
    ap.add_argument("--flac", action="store_true", help="write FLAC instead of WAV")
    ap.add_argument(
        "--flush-s", type=float, default=1.0, help="header/sidecar update interval (default 1 s)"
    )
    ap.add_argument(
        "--json", action="store_true", help="print the summary as one JSON line on stdout"
    )
    ap.add_argument("-q", "--quiet", action="store_true")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    opts = record.RecordOptions(
        args.out,
        args.roll_minutes,
        args.on_event,
        args.pre_roll,
        args.post_roll,
        args.flush_s,
        args.label,
        args.fold,
        args.licence,
        "FLAC" if args.flac else "WAV",
    )
    return run_cli(
        lambda: record.run(
            args,
            opts,
            args.duration,
            restart_stream=not args.no_restart,
            node_events=not args.host_buffer,
            json_summary=args.json,
            quiet=args.quiet,
        ),
        "record",
    )


if __name__ == "__main__":
    sys.exit(main())
