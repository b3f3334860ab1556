"""python -m tools.link [--port P | --sim]: print the node's HELLO (a connectivity check)."""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/link.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import cli  # noqa: E402
from tools.wire import protocol as pr  # noqa: E402


def main(argv=None) -> int:
    """`python -m tools.link [--port P | --sim]`: print the node's HELLO (a connectivity check)."""
    ap = argparse.ArgumentParser(prog="python -m tools.link", description=main.__doc__)
    cli.add_link_args(ap)
    args = ap.parse_args(argv)

    def body() -> int:
        with cli.link_from_args(args) as link:
            h = link.hello()
            print(
                f"{link.port_name}: protocol v{h.proto_version}, firmware {h.fw_version}, "
                f"board {h.board or '?'}, node {h.node_id.hex(':')}, "
                f"model {h.model_hash.hex()}, config {h.config_hash.hex()}, "
                f"{h.sample_rate_hz} Hz, reset {pr.RESET_REASONS.get(h.reset_reason, '?')}, "
                f"labels {','.join(h.labels)}"
            )
        return 0

    return cli.run_cli(body, "link")


if __name__ == "__main__":
    sys.exit(main())
