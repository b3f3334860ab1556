"""python tools/flash.py (or python -m tools.flash): the command; the library is tools.esp.flash
(its docstring is the command's help)."""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/flash.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.errors import run_cli  # noqa: E402
from tools.esp import flash  # noqa: E402
from tools.esp.flash import (  # noqa: E402
    DEFAULT_BAUD,
    DEFAULT_MODEL_DIR,
    ENV_CHIPS,
    FALLBACK_BAUD,
    NODE_BAUD,
    ROOT,
    SUBCOMMANDS,
    SUPPORTED_CHIPS,
    Timeouts,
)


def _add_timeouts(ap: argparse.ArgumentParser, flash: bool) -> None:
    d = Timeouts()
    g = ap.add_argument_group("timeouts and retries (Timeouts)")
    if flash:
        g.add_argument(
            "--connect-attempts",
            type=int,
            default=d.connect_attempts,
            help=f"esptool sync attempts (default {d.connect_attempts})",
        )
        g.add_argument(
            "--boot-timeout",
            type=float,
            default=d.boot_s,
            metavar="S",
            help=f"wait for the HELLO sent at boot (default {d.boot_s})",
        )
        g.add_argument(
            "--build-timeout",
            type=float,
            default=d.build_s,
            metavar="S",
            help=f"pio run (default {d.build_s:.0f})",
        )
    g.add_argument(
        "--open-timeout",
        type=float,
        default=d.open_s,
        metavar="S",
        help=f"opening the port at the node baud (default {d.open_s})",
    )
    g.add_argument(
        "--hello-timeout",
        type=float,
        default=d.hello_s,
        metavar="S",
        help=f"wait per HELLO request (default {d.hello_s})",
    )
    g.add_argument(
        "--hello-tries",
        type=int,
        default=d.hello_tries,
        help=f"HELLO requests before giving up (default {d.hello_tries})",
    )


def _add_ports(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--port",
        action="append",
        metavar="PATH",
        help="serial port of a node (repeatable); default: the one board found by USB VID:PID",
    )
    ap.add_argument(
        "--all", action="store_true", help="every board found by USB VID:PID (in parallel)"
    )


def _add_expect(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--node-baud",
        type=int,
        default=NODE_BAUD,
        help=f"baud of the earwitness firmware (default {NODE_BAUD})",
    )
    ap.add_argument(
        "--model-dir",
        default=str(DEFAULT_MODEL_DIR),
        metavar="DIR",
        help="model whose manifest.json model_sha256 the node must report "
        f"(default {DEFAULT_MODEL_DIR.relative_to(ROOT)})",
    )
    ap.add_argument(
        "--expect-model-hash",
        metavar="HEX",
        help="expected HELLO model hash (16+ hex digits; overrides --model-dir)",
    )
    ap.add_argument(
        "--expect-config-hash",
        metavar="HEX",
        help="expected HELLO config hash (default: tools.node.params config_hash)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python tools/flash.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=flash.__doc__,
        epilog="Subcommands: flash (default), list, verify, image; "
        "`python tools/flash.py SUBCOMMAND --help` for each.\n"
        "Dry run without a board: python -m tools.romsim --chip esp32  (prints a pty)",
    )
    sub = ap.add_subparsers(dest="cmd", metavar="{flash,list,verify,image}")

    doc = flash.__doc__
    steps = doc[doc.index("Flashing one node") : doc.index("Exit status")]
    fl = sub.add_parser(
        "flash",
        help="build or take an image, flash node(s), check HELLO (the default subcommand)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Flash one node (or several: --port A --port B, --all) and "
        "check its HELLO.\n\n" + steps.rstrip(),
    )
    src = fl.add_mutually_exclusive_group()
    src.add_argument(
        "--env",
        choices=sorted(ENV_CHIPS),
        help="build with `pio run -e ENV` and flash .pio/build/ENV",
    )
    src.add_argument(
        "--firmware",
        metavar="PATH",
        help="merged image (.bin, written at 0x0) or a PlatformIO build dir",
    )
    fl.add_argument("--pio", metavar="PATH", help="PlatformIO executable (default: pio on PATH)")
    fl.add_argument(
        "--project-dir",
        default=str(ROOT),
        metavar="DIR",
        help="PlatformIO project for --env (default: this checkout)",
    )
    _add_ports(fl)
    fl.add_argument(
        "--chip",
        default="auto",
        choices=("auto",) + SUPPORTED_CHIPS,
        help="expected chip (default: the image's); a different board is refused",
    )
    fl.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, help=f"flashing baud (default {DEFAULT_BAUD})"
    )
    fl.add_argument(
        "--fallback-baud",
        type=int,
        default=FALLBACK_BAUD,
        help=f"retry at this baud when --baud fails (default {FALLBACK_BAUD})",
    )
    fl.add_argument(
        "--no-stub",
        action="store_true",
        help="talk to the ROM loader only (slower, no compression)",
    )
    fl.add_argument(
        "--before",
        default="auto",
        choices=("auto", "default-reset", "usb-reset", "no-reset"),
        help="how to enter the loader (auto: default-reset; no-reset on a pty)",
    )
    fl.add_argument(
        "--after",
        default="auto",
        choices=("auto", "hard-reset", "watchdog-reset", "run", "no-reset"),
        help="how to start the firmware (auto: hard-reset; run = ROM 'run user code' on a pty)",
    )
    fl.add_argument(
        "--no-verify-hello",
        action="store_true",
        help="do not wait for HELLO / check hashes after flashing",
    )
    _add_expect(fl)
    fl.add_argument("--json", action="store_true", help="print the results as JSON")
    fl.add_argument("-v", "--verbose", action="store_true", help="show esptool's output")
    _add_timeouts(fl, True)

    ls = sub.add_parser("list", help="serial ports of ESP32 boards (by USB VID:PID)")
    ls.add_argument("--json", action="store_true")

    ve = sub.add_parser(
        "verify",
        help="HELLO + hash check of running node(s), no flashing",
        description="Ask running node(s) for HELLO and compare the model and "
        "config hashes with the expected ones (exit 1 on mismatch).",
    )
    _add_ports(ve)
    _add_expect(ve)
    ve.add_argument("--json", action="store_true")
    _add_timeouts(ve, False)

    im = sub.add_parser(
        "image",
        help="merge a build dir (or --env build) into one image",
        description="Merge bootloader.bin, partitions.bin and firmware.bin "
        "at their offsets into one image to write at 0x0 "
        "(0xFF-filled gaps).",
    )
    src = im.add_mutually_exclusive_group(required=True)
    src.add_argument("--env", choices=sorted(ENV_CHIPS))
    src.add_argument("--firmware", metavar="PATH", help="PlatformIO build dir or merged image")
    im.add_argument("--pio", metavar="PATH")
    im.add_argument("--project-dir", default=str(ROOT), metavar="DIR")
    im.add_argument("--chip", default="auto", choices=("auto",) + SUPPORTED_CHIPS)
    im.add_argument("-o", "--output", required=True, metavar="OUT.bin")
    im.add_argument("--build-timeout", type=float, default=Timeouts().build_s, metavar="S")
    return ap


def _timeouts(args) -> dict:
    """timeouts_of()'s arguments as given (flash: also connect attempts, boot and build)."""
    t = dict(open_s=args.open_timeout, hello_s=args.hello_timeout, hello_tries=args.hello_tries)
    if hasattr(args, "connect_attempts"):
        t.update(
            connect_attempts=args.connect_attempts,
            boot_s=args.boot_timeout,
            build_s=args.build_timeout,
        )
    return t


def _body(args):
    """The one library call of the subcommand."""
    if args.cmd == "flash":
        return lambda: flash.cmd_flash(
            args.port,
            args.all,
            _timeouts(args),
            env=args.env,
            firmware=args.firmware,
            pio=args.pio,
            project_dir=args.project_dir,
            chip=args.chip,
            baud=args.baud,
            fallback_baud=args.fallback_baud,
            stub=not args.no_stub,
            before=args.before,
            after=args.after,
            verify_hello=not args.no_verify_hello,
            model_dir=args.model_dir,
            expect_model_hash=args.expect_model_hash,
            expect_config_hash=args.expect_config_hash,
            node_baud=args.node_baud,
            as_json=args.json,
            verbose=args.verbose,
        )
    if args.cmd == "verify":
        return lambda: flash.cmd_verify(
            args.port,
            args.all,
            _timeouts(args),
            model_dir=args.model_dir,
            expect_model_hash=args.expect_model_hash,
            expect_config_hash=args.expect_config_hash,
            node_baud=args.node_baud,
            as_json=args.json,
        )
    if args.cmd == "list":
        return lambda: flash.cmd_list(args.json)
    return lambda: flash.cmd_image(
        args.output,
        env=args.env,
        firmware=args.firmware,
        pio=args.pio,
        project_dir=args.project_dir,
        chip=args.chip,
        build_s=args.build_timeout,
    )


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "flash")  # flash is the default subcommand
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return run_cli(_body(args), "flash")


if __name__ == "__main__":
    sys.exit(main())
