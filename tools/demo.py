"""`make demo-core`: stream the shipped reference recordings through the node's C core and print
what the gate and the front end saw (per clip: windows, audio covered by them, onsets).

    python -m tools.demo [--root tests/audio] [--csv tests/audio/manifest.csv]

Each clip is preceded by 1 s of its own background (tools.node.audio.with_lead_in), as a node that
has been listening to the room hears it.  The simulated node validated end to end against the
shipped model is the main job, `make demo` (`python -m tools.demo_hil`).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from tools.errors import BadInput, run_cli
from tools.node import audio, core, params
from tools.node.coverage import window_coverage

P = params.default()
DB = params.DB_PER_LOG2 / 256  # dB per log2-Q8 LSB


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--root",
        type=Path,
        default=params.ROOT / "tests" / "audio",
        help="folder of clips (default: the shipped tests/audio)",
    )
    ap.add_argument("--csv", type=Path, help="CSV with path,label (default ROOT/manifest.csv)")
    args = ap.parse_args(argv)
    return run_cli(lambda: run(args), "demo")


def run(args) -> int:
    """Print the gate and front end on every clip of args.csv under args.root."""
    csv_path = args.csv or args.root / "manifest.csv"
    if not csv_path.exists():
        raise BadInput(f"{csv_path}: no such file")
    rows = list(csv.DictReader(open(csv_path, newline="")))
    print(
        f"earwitness core {P.config_hash[:16]}  {P.sample_rate_hz} Hz, frame {P.frame_samples}, "
        f"hop {P.hop_samples}, {P.n_mels} mels, window {P.window_samples / P.sample_rate_hz:.2f} s"
    )
    print(
        f"{'clip':34} {'label':20} {'dur':>5} {'level dBFS':>12} {'floor':>6} {'duty':>5}  windows (s: kind)"
    )
    total_s = total_w = 0.0
    for r in rows:
        try:
            x = audio.load(args.root / r["path"])
        except audio.AudioError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        stream, pre = audio.with_lead_in(x)
        node = core.Node(trace=True, keep_features=True)
        node.process(stream)
        node.flush()
        tr = node.trace[pre // core.HOP : (pre + x.size) // core.HOP]
        lv = tr["level_q8"] * DB - 30 * params.DB_PER_LOG2
        nf = tr["nf_q8"] * DB - 30 * params.DB_PER_LOG2
        covered = window_coverage(node.windows, pre, x.size)
        wins = ", ".join(
            f"{(w.trigger_sample - pre) / P.sample_rate_hz:.2f}: {w.kind}" for w in node.windows
        )
        print(
            f"{r['path'][:34]:34} {r['label'][:20]:20} {x.size / P.sample_rate_hz:5.1f} "
            f"{lv.min():5.0f}..{lv.max():<5.0f} {np.median(nf):6.0f} {covered.mean():5.2f}  {wins or '-'}"
        )
        total_s += x.size
        total_w += covered.sum()
    feats = core.features(np.concatenate([audio.load(args.root / r["path"]) for r in rows]))
    print(
        f"\nfront end: {feats.shape[0]} frames x {feats.shape[1]} bands, int8 range "
        f"{feats.min()}..{feats.max()} (input scale {P.quant.scale} dB/LSB, zero point {P.quant.zero_point})"
    )
    print(f"analysis windows cover {100 * total_w / total_s:.0f} % of the audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
