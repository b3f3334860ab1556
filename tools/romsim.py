"""python -m tools.romsim (or python tools/romsim.py): the command; the library is tools.sim.romsim."""

import os
import sys

if __package__ in (None, ""):  # `python tools/romsim.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.sim.romsim import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
