"""python -m tools.link [--port P | --sim]: print the node's HELLO (a connectivity check)."""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/link.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import cli  # noqa: E402
from tools.errors import run_cli  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.link", description=main.__doc__)
    cli.add_link_args(ap)
    return ap


def main(argv=None) -> int:
    """`python -m tools.link [--port P | --sim]`: print the node's HELLO (a connectivity check)."""
    args = build_parser().parse_args(argv)
    return run_cli(lambda: cli.hello_check(args), "link")


if __name__ == "__main__":
    sys.exit(main())
