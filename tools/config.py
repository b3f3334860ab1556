"""python -m tools.config — read and change a node's settings (CONFIG keys) by name.

    python -m tools.config --port /dev/ttyUSB0                     # every setting, with units
    python -m tools.config --port /dev/ttyUSB0 gate-peak-margin-db threshold.gunshot
    python -m tools.config --port /dev/ttyUSB0 gate-peak-margin-db=4 threshold.gunshot=0.8
    python -m tools.config --sim early-preroll-frames=0 --json    # against a simulated node
    python -m tools.config --port /dev/ttyUSB0 --factory-reset

Values are given and printed in the unit of the name (dB, dBFS, ms, a 0..1 score; `off`
disables a class threshold); the node answers every change with the value now in effect
(margins are held as 256·log2 of a power, so 9 dB comes back as 8.9961).  The node persists
every change (NVS) until `--factory-reset`.  Key numbers and ranges: docs/protocol.md.

Every name and value is checked before anything is sent: a value outside its setting's range
is refused here with the range in the setting's unit (exit 2, nothing sent).  If the node
still refuses one (a rule across settings, e.g. early-preroll-frames must be above the
detector's preroll), the settings this invocation already changed are set back to their
previous values, the error line says which setting and why, and stdout shows what the node
holds now.

Exit status: 0 ok; 2 bad input (unknown name, malformed or out-of-range value, a value the
node refused, no such port); 1 the node did not answer or a roll-back failed.
"""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/config.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import cli  # noqa: E402
from tools.errors import run_cli  # noqa: E402
from tools.hostio import config as settings  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_link_args(ap)
    ap.add_argument(
        "settings",
        nargs="*",
        metavar="NAME[=VALUE]",
        help="settings to read (NAME) or change (NAME=VALUE); none: read them all",
    )
    ap.add_argument(
        "--factory-reset",
        action="store_true",
        help="restore the firmware's and model's defaults first",
    )
    ap.add_argument("--json", action="store_true", help="one JSON object per setting")
    ap.add_argument("--list", action="store_true", help="list the setting names and exit")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        return settings.print_list()
    return run_cli(
        lambda: settings.command(args, args.settings, args.factory_reset, json_lines=args.json),
        "config",
    )


if __name__ == "__main__":
    sys.exit(main())
