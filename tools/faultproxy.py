"""python -m tools.faultproxy (or python tools/faultproxy.py): the command; the library is tools.sim.faultproxy."""

import os
import sys

if __package__ in (None, ""):  # `python tools/faultproxy.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.sim.faultproxy import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
