"""python -m tools.gate_eval (or python tools/gate_eval.py): the command; the library is tools.validate.gate_eval."""

import os
import sys

if __package__ in (None, ""):  # `python tools/gate_eval.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.validate.gate_eval import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
