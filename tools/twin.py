"""python -m tools.twin (or python tools/twin.py): the command; the library is tools.sim.twin."""

import argparse
import os
import sys

if __package__ in (None, ""):  # `python tools/twin.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.errors import run_cli  # noqa: E402
from tools.node import params  # noqa: E402
from tools.sim.twin import ADC_RATE_HZ, run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.twin",
        description="Simulated earwitness node on a pseudo-terminal: the firmware's application "
        "code (portable C core) with a file or silence as its microphone and the "
        "exported model run by the tflite-micro interpreter.  Prints "
        "'earwitness twin on /dev/pts/N' and serves the node protocol there until "
        "killed (Ctrl-C).",
        epilog="Examples:\n"
        "  python -m tools.twin                           # silent room, shipped model\n"
        "  python -m tools.twin tests/audio --loop        # the shipped clips, forever\n"
        "  python -m tools.twin scene.wav --realtime      # paced like a real microphone\n"
        "Then: python tools/monitor.py --port /dev/pts/N  (or any --port tool; --sim "
        "starts a twin itself).\n"
        "Without --realtime the microphone runs as fast as the host reads its output.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "audio",
        nargs="*",
        metavar="AUDIO",
        help="WAV/FLAC files or folders used as the microphone, in order (default: silence)",
    )
    ap.add_argument(
        "--model",
        default=str(params.MODEL_DIR),
        help="exported model folder or manifest.json (default: "
        f"{params.MODEL_DIR.relative_to(params.ROOT)})",
    )
    ap.add_argument(
        "--realtime", action="store_true", help="pace the microphone and the clock to real time"
    )
    ap.add_argument("--loop", action="store_true", help="repeat the audio files forever")
    ap.add_argument("--silence", action="store_true", help="silent microphone (ignore AUDIO)")
    ap.add_argument(
        "--config",
        metavar="FILE",
        help="JSON file standing in for NVS (persisted CONFIG survives restarts)",
    )
    ap.add_argument("--board", default="twin", help="board name in HELLO (default: twin)")
    ap.add_argument("--node-id", default="02:00:00:00:00:01", help="6-byte node id (MAC) in HELLO")
    ap.add_argument(
        "--stub-scores",
        metavar="Q8,Q8,...",
        help="testing: no model; every window gets these constant Q0.8 scores "
        "(one per class; labels from the standard class list, last = negative)",
    )
    ap.add_argument(
        "--adc-rate",
        type=int,
        choices=(32000, 48000),
        default=ADC_RATE_HZ,
        help="simulated ADC sample rate (decimation x2 or x3; default 32000)",
    )
    ap.add_argument(
        "--uart-log",
        action="store_true",
        help="also print text on the link like the firmware: boot messages before "
        "HELLO, diagnostics and alarms as ESP-IDF-style log lines",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="log alarms etc. on stderr")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(
        lambda: run(
            args.audio,
            args.model,
            realtime=args.realtime,
            loop=args.loop,
            silence=args.silence,
            config=args.config,
            board=args.board,
            node_id=args.node_id,
            stub_scores=args.stub_scores,
            adc_rate=args.adc_rate,
            uart_log=args.uart_log,
            verbose=args.verbose,
        ),
        "twin",
    )


if __name__ == "__main__":
    sys.exit(main())
