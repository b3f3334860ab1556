"""python -m tools.hil (or python tools/hil.py): the command; the library is tools.validate.hil."""

import os
import sys

if __package__ in (None, ""):  # `python tools/hil.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.validate.hil import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
