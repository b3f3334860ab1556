"""python -m tools.make_scenes (or python tools/make_scenes.py): the command; the library is
tools.validate.scenes (its docstring is the command's help)."""

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python tools/make_scenes.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.errors import run_cli  # noqa: E402
from tools.validate import scenes  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.make_scenes",
        description=scenes.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, default=scenes.OUT)
    ap.add_argument("--check", action="store_true", help="compare with the files in --out")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: scenes.run(args.out, check=args.check), "make_scenes")


if __name__ == "__main__":
    sys.exit(main())
