"""python -m tools.monitor (or python tools/monitor.py): the command; the library is
tools.hostio.monitor (its docstring is the command's help)."""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/monitor.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import cli  # noqa: E402
from tools.errors import run_cli  # noqa: E402
from tools.hostio import monitor  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.monitor",
        description=monitor.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_link_args(ap)
    ap.add_argument("--json", action="store_true", help="JSON lines on stdout")
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds (> 0)",
    )
    ap.add_argument(
        "--count",
        type=int,
        default=None,
        metavar="N",
        help="stop after N detections (EVENT onsets)",
    )
    ap.add_argument(
        "--status-every",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="ask for STATUS this often when the node sends none (default 1)",
    )
    ap.add_argument(
        "--status-period-ms", type=int, default=None, help="set the node's STATUS_PERIOD_MS first"
    )
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(
        lambda: monitor.run(
            args,
            duration=args.duration,
            count=args.count,
            json_lines=args.json,
            status_every=args.status_every,
            status_period_ms=args.status_period_ms,
        ),
        "monitor",
    )


if __name__ == "__main__":
    sys.exit(main())
