"""python -m tools.bench: the command; the library is tools/bench/core_bench.py (its docstring is
the command's help)."""

import argparse
import sys
from pathlib import Path

from tools.bench import core_bench
from tools.bench.core_bench import BENCHMARKS, DEFAULT_DATA, DEFAULT_OUT
from tools.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=core_bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--data", default=str(DEFAULT_DATA), help="real corpus (default ../shared/data)"
    )
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="JSON output (default build/bench.json)"
    )
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: core_bench.run(args.data, args.out, args.only), "bench")


if __name__ == "__main__":
    sys.exit(main())
