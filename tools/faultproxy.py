"""python -m tools.faultproxy (or python tools/faultproxy.py): the command; the library is
tools.sim.faultproxy (its docstring is the command's help)."""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/faultproxy.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.cli import add_sim_args  # noqa: E402
from tools.errors import run_cli  # noqa: E402
from tools.sim import faultproxy  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.faultproxy",
        description=faultproxy.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--port", help="the node's serial port (a board or a twin's pty)")
    add_sim_args(
        ap, "start a simulated node behind the proxy (silent microphone unless --sim-audio)"
    )
    ap.add_argument("--seed", type=int, default=0)
    for k in faultproxy.FAULTS:
        ap.add_argument(
            "--" + k.replace("_", "-"),
            type=float,
            default=0.0,
            help=f"probability per frame of '{k}'",
        )
    ap.add_argument("--reset-every", type=int, default=0, metavar="FRAMES")
    ap.add_argument("--seq-offset", type=int, default=0)
    ap.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(
        lambda: faultproxy.serve(
            args.port,
            args.sim,
            seed=args.seed,
            reset_every=args.reset_every,
            seq_offset=args.seq_offset,
            duration=args.duration,
            faults={k: getattr(args, k) for k in faultproxy.FAULTS},
        ),
        "faultproxy",
    )


if __name__ == "__main__":
    sys.exit(main())
