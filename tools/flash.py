"""python -m tools.flash (or python tools/flash.py): the command; the library is tools.esp.flash."""

import os
import sys

if __package__ in (None, ""):  # `python tools/flash.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.esp.flash import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
