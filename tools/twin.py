"""python -m tools.twin (or python tools/twin.py): the command; the library is tools.sim.twin."""

import os
import sys

if __package__ in (None, ""):  # `python tools/twin.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.sim.twin import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
