"""python -m tools.link (or python tools/link.py): the command; the library is tools.wire.link."""
import os
import sys

if __package__ in (None, ""):            # `python tools/link.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.wire.link import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
