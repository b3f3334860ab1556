"""Golden vectors of the core's integer algorithms, produced by the NumPy reference.

    python -m tools.golden            # check tests/golden against the reference (exit 1 if stale)
    python -m tools.golden --update   # rewrite tests/golden after a deliberate change

Each case is an int16 input stream and the exact outputs of every stage.  The C tests (host
and rv32imc under QEMU), the Python binding and the reference all compare against these files.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from tools.node import params as _params
from tools.node import reference as R

GOLDEN = _params.ROOT / "tests" / "golden"
AUDIO = _params.ROOT / "tests" / "audio"
REAL_CLIP = "gunshot_2.wav"  # a shipped, licensed clip (tests/audio/ATTRIBUTION.md)
STAGES = {  # name -> (dtype, function of the input)
    "dc": ("<i2", R.dc_block),
    "decim2": ("<i2", lambda x: R.decimate(x, 2)),
    "decim3": ("<i2", lambda x: R.decimate(x, 3)),
    "logmel": ("<u2", R.logmel),
    "features": ("<i1", lambda x: R.quantize(R.logmel(x))),
    "gate": (
        "<i8",
        lambda x: (lambda g: np.stack([g[f] for f in R.GATE_FIELDS], axis=1))(R.gate_stream(x)),
    ),
}


def synthetic() -> np.ndarray:
    """2 s exercising every corner: silence, noise, clicks, full-scale square, sweep, bursts."""
    sr = _params.default().sample_rate_hz
    rng = np.random.default_rng(20261123)
    t = np.arange(sr // 4) / sr
    clicks = np.zeros(sr // 4)
    clicks[::997] = 30000
    sq = np.where(np.sin(2 * np.pi * 1000 * t) >= 0, 32767, -32768)
    sweep = 20000 * np.sin(2 * np.pi * (100 * t + (7800 / (2 * t[-1])) * t * t))
    parts = [
        np.zeros(sr // 4),
        rng.normal(0, 100, sr // 4),
        clicks + rng.normal(0, 30, sr // 4),
        sq,
        sweep,
        rng.normal(0, 30, sr // 4),
        rng.normal(0, 8000, sr // 8),
        rng.normal(0, 30, sr // 8),
        np.full(sr // 4, -32768.0),
    ]
    return np.clip(np.round(np.concatenate(parts)), -32768, 32767).astype(np.int16)


def sustained() -> np.ndarray:
    """3 s for the LOUD rule: noise swelling slowly by 30 dB (not re-checked: no tonality, no
    impulsive start), quiet, then noise stepping up by 40 dB at once (an impulsive start)."""
    sr = _params.default().sample_rate_hz
    rng = np.random.default_rng(20261124)
    n = 3 * sr
    t = np.arange(n) / sr
    swell = np.clip((t - 0.4) / 1.0, 0, 1) * (t < 1.9)  # 0 -> 1 over 1 s, held 0.5 s
    gain = 10 ** (30 / 20 * swell)
    gain = np.where(t >= 2.4, 10 ** (40 / 20), gain)
    return np.clip(np.round(rng.normal(0, 20, n) * gain), -32768, 32767).astype(np.int16)


def real() -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(AUDIO / REAL_CLIP, dtype="int16")
    assert sr == _params.default().sample_rate_hz
    return x[: 2 * sr]


def adc_codes() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate(
        [np.array([0, 1, 2047, 2048, 2049, 4094, 4095, 4096, 65535]), rng.integers(0, 4096, 503)]
    ).astype(np.uint16)


def compute() -> dict:
    cases = {"synthetic": synthetic(), "real": real(), "sustained": sustained()}
    out = {"cases": {}, "adc": {}}
    for name, x in cases.items():
        out["cases"][name] = {"input": x, **{s: np.asarray(f(x)) for s, (_, f) in STAGES.items()}}
    codes = adc_codes()
    out["adc"] = {"codes": codes, "pcm": R.adc_to_pcm(codes)}
    return out


def _files(data: dict) -> dict[str, bytes]:
    files = {}
    for name, arrs in data["cases"].items():
        files[f"{name}.input.i16"] = arrs["input"].astype("<i2").tobytes()
        for s, (dt, _) in STAGES.items():
            files[f"{name}.{s}.{dt[1:]}"] = arrs[s].astype(dt).tobytes()
    files["adc.codes.u2"] = data["adc"]["codes"].astype("<u2").tobytes()
    files["adc.pcm.i2"] = data["adc"]["pcm"].astype("<i2").tobytes()
    return files


def index(data: dict) -> dict:
    p = _params.default()
    return {
        "generated_by": "python -m tools.golden --update",
        "config_hash": p.config_hash,
        "gate_fields": list(R.GATE_FIELDS),
        "n_mels": p.n_mels,
        "cases": {
            n: {s: list(a.shape) for s, a in arrs.items()} for n, arrs in data["cases"].items()
        },
    }


def load(name: str, stage: str) -> np.ndarray:
    """Read one golden array (shape from index.json)."""
    idx = json.loads((GOLDEN / "index.json").read_text())
    dt = "<i2" if stage == "input" else STAGES[stage][0]
    a = np.frombuffer(
        (GOLDEN / f"{name}.{stage}.{dt[1:] if stage != 'input' else 'i16'}").read_bytes(), dt
    )
    return a.reshape(idx["cases"][name][stage])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.golden",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--update", action="store_true", help="rewrite tests/golden")
    args = ap.parse_args(argv)
    data = compute()
    files = _files(data)
    files["index.json"] = (json.dumps(index(data), indent=1, sort_keys=True) + "\n").encode()
    if args.update:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for n, b in files.items():
            (GOLDEN / n).write_bytes(b)
        print(f"wrote {len(files)} files to {GOLDEN.relative_to(_params.ROOT)}")
        return 0
    stale = [
        n for n, b in files.items() if not (GOLDEN / n).exists() or (GOLDEN / n).read_bytes() != b
    ]
    for n in stale:
        print(f"stale: tests/golden/{n}", file=sys.stderr)
    if stale:
        print(
            "the reference no longer produces the golden vectors; if the change is deliberate run "
            "`python -m tools.golden --update`",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
