"""python -m tools.romsim (or python tools/romsim.py): serve a simulated ESP32 ROM loader +
earwitness HELLO on a pty until Ctrl-C.  The library is tools.sim.romsim."""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/romsim.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.errors import run_cli  # noqa: E402
from tools.sim import romsim  # noqa: E402
from tools.sim.romsim import CHIPS, FLASH_SIZE_IDS, NODE_BAUD  # noqa: E402
from tools.wire import esp_image  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.romsim",
        description=romsim.__doc__.split("\n\n")[0],
        epilog="Dry run: python -m tools.romsim --chip esp32 & "
        "python tools/flash.py --port /dev/pts/N --firmware IMG",
    )
    ap.add_argument("--chip", choices=sorted(CHIPS), default="esp32")
    ap.add_argument(
        "--boot",
        choices=("rom", "app"),
        default="rom",
        help="start in the ROM loader (download mode, default) or running the firmware",
    )
    ap.add_argument("--flash-file", metavar="PATH", help="load/save the flash contents here")
    ap.add_argument("--flash-size", choices=sorted(FLASH_SIZE_IDS), default="4MB")
    ap.add_argument("--mac", default="24:0a:c4:12:34:56")
    ap.add_argument("--node-baud", type=int, default=NODE_BAUD, help="baud of the firmware")
    ap.add_argument(
        "--chip-revision",
        metavar="MAJOR.MINOR",
        help="the chip revision in the simulated eFuses (ESP32-C3 only; default "
        f"{esp_image.revision_str(CHIPS['esp32c3'].default_revision)}); an image "
        "that needs another one is refused, as on a chip",
    )
    ap.add_argument(
        "--model-hash",
        metavar="HEX",
        help="HELLO model hash instead of the one in the flashed image (failure injection)",
    )
    ap.add_argument(
        "--config-hash",
        metavar="HEX",
        help="HELLO config hash instead of the one in the flashed image (failure injection)",
    )
    ap.add_argument("--silent-app", action="store_true", help="firmware sends nothing")
    ap.add_argument("--corrupt-md5", action="store_true", help="SPI_FLASH_MD5 answers wrong")
    ap.add_argument("--max-baud", type=int, help="CHANGE_BAUDRATE above this is lost")
    ap.add_argument(
        "--app-port",
        metavar="PATH",
        help="the firmware is this pty's node (e.g. "
        "a twin's): forward the serial line to it while the firmware runs",
    )
    ap.add_argument(
        "--twin",
        nargs="?",
        const="",
        default=None,
        metavar="'TWIN ARGS'",
        help="start `python -m tools.twin TWIN ARGS` as the firmware (one quoted "
        "string, e.g. --twin '--stub-scores 0,0,0,0,0,0,0,255')",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="print every loader command")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(
        lambda: romsim.serve(
            args.chip,
            boot=args.boot,
            flash_file=args.flash_file,
            flash_size=args.flash_size,
            mac=args.mac,
            node_baud=args.node_baud,
            chip_revision=args.chip_revision,
            model_hash=args.model_hash,
            config_hash=args.config_hash,
            silent_app=args.silent_app,
            corrupt_md5=args.corrupt_md5,
            max_baud=args.max_baud,
            app_port=args.app_port,
            twin=args.twin,
            verbose=args.verbose,
        ),
        "romsim",
    )


if __name__ == "__main__":
    sys.exit(main())
