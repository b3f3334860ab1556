"""python -m tools.monitor (or python tools/monitor.py): the command; the library is tools.hostio.monitor."""

import os
import sys

if __package__ in (None, ""):  # `python tools/monitor.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.hostio.monitor import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
