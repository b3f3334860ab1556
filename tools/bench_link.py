"""python -m tools.bench_link (or python tools/bench_link.py): the command; the library is tools.bench.link_bench."""

import os
import sys

if __package__ in (None, ""):  # `python tools/bench_link.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.bench.link_bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
