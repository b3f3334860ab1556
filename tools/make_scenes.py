"""python -m tools.make_scenes (or python tools/make_scenes.py): the command; the library is tools.validate.scenes."""

import os
import sys

if __package__ in (None, ""):  # `python tools/make_scenes.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.validate.scenes import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
