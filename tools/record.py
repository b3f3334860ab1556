"""python -m tools.record (or python tools/record.py): the command; the library is tools.hostio.record."""

import os
import sys

if __package__ in (None, ""):  # `python tools/record.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.hostio.record import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
