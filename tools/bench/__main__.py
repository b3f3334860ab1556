"""python -m tools.bench: see tools/bench/core_bench.py."""

import sys

from tools.bench.core_bench import main

if __name__ == "__main__":
    sys.exit(main())
