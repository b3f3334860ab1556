"""`make demo`: the simulated node (tools.twin) with the shipped model, validated end to end.

    python -m tools.demo_hil [--out build/hil] [extra tools/hil.py options]

Starts the twin on a pty with firmware/model, streams every shipped recording under
tests/audio (the single clips and the two mixed scenes of tests/audio/scenes, built by
tools/make_scenes.py) into it with INJECT, and prints the scores against the ground truth
(tests/audio/scenes/truth.csv) and against the host reference pipeline.  Exactly:

    python tools/hil.py --sim --root tests/audio --scenes tests/audio/scenes/truth.csv \\
        --json-out build/hil/hil.json --max-reference-mismatches 0

The exit code is tools/hil.py's: 1 if the node and the reference pipeline disagree on any event
(a node defect) or an extra threshold option given here is missed, 2 bad input, 130 interrupted
(the partial results are written, marked complete: false).
Report: build/hil/hil.md (+ .html, timeline plots in build/hil/hil_plots/).
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import hil as hil_cmd
from tools.node import params

ROOT = params.ROOT


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = "build/hil"
    if "--out" in argv:
        i = argv.index("--out")
        if i + 1 >= len(argv):
            print("demo_hil: error: --out needs a folder", file=sys.stderr)
            return 2
        out = argv[i + 1]
        del argv[i : i + 2]
    return hil_cmd.main(
        [
            "--sim",
            "--root",
            str(ROOT / "tests" / "audio"),
            "--scenes",
            str(ROOT / "tests" / "audio" / "scenes" / "truth.csv"),
            "--json-out",
            os.path.join(out, "hil.json"),
            "--max-reference-mismatches",
            "0",
        ]
        + argv
    )


if __name__ == "__main__":
    sys.exit(main())
