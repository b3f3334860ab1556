"""python -m tools.bench_link (or python tools/bench_link.py): the command; the library is
tools.bench.link_bench (its docstring is the command's help)."""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/bench_link.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.bench import link_bench  # noqa: E402
from tools.errors import run_cli  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.bench_link",
        description=link_bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--soak-seconds", type=float, default=3600.0)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: link_bench.run(args.soak_seconds), "bench_link")


if __name__ == "__main__":
    sys.exit(main())
