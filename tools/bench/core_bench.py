"""Benchmarks: figures, not timed tests.  `make bench` runs this and writes build/bench.json.

    python -m tools.bench [--data ../shared/data] [--out build/bench.json] [--only NAME ...]

Each benchmark returns a dict of figures; keys from earlier runs that a partial run (--only)
did not recompute are kept in the output file.  Benchmarks that need something missing (the
RISC-V toolchain, ../shared/data, librosa) report null with a reason under "_skipped".

Figures (core):
  frontend_rv32_instructions_per_audio_second  conditioning (ADC codes at 32 kHz -> int16 ->
      decimator) + DC blocker + gate + log-mel front end + detector, instructions per second of
      16 kHz audio on rv32imc (ESP32-C3 ISA), counted with minstret under QEMU -icount (exact)
  frontend_host_speedup_vs_librosa  librosa.feature.melspectrogram time / C front end time, same
      audio, same machine, best of 3
  gate_duty_cycle_background / gate_recall_impulsive  see tools/gate_eval.py: the node as
      deployed, its windows classified by the shipped model (whose confident rejections
      habituate the detector); *_gate_only: the same without a classifier (no habituation)

Figures (model, read from the committed model artefacts, see training/bench.py):
  model_flash_bytes, model_arena_bytes, model_macs, int8_macro_f1_drop, tflm_parity_mismatches,
  crossval_node_macro_f1 (each clip after 1 s of its own floor), crossval_node_macro_f1_room
  (the room >= 20 dB below each clip's peak, tools.gate_eval's protocol), crossval_scene_*,
  crossval_stream_*, crossval_background_fa_per_hour (the scene benchmark on the held-out folds;
  null with a reason under _skipped["crossval_scene"] when crossval.json has no scene section)
Figures (link and twin, through a real pty against the twin, see tools/bench_link.py):
  twin_realtime_factor, hil_onset_latency_ms, record_soak_lost_samples,
  link_garbage_recovered_frames
Figures (node application layer, see tools/app_bench.py):
  app_rv32_*: rv32imc instructions per audio second of the whole node app (detect / record /
  inject) under QEMU
Figures (the real ESP32-C3 build of `make firmware-c3`, see tools/bench/firmware_bench.py):
  firmware_c3_image_bytes, firmware_c3_dram_bytes, firmware_c3_iram_bytes,
  firmware_c3_flash_code_bytes (idf.py size); null with a reason when there is no build
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from tools.node import audio, core, params

ROOT = params.ROOT
DEFAULT_OUT = ROOT / "build" / "bench.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CLIPS = ROOT / "tests" / "audio"
BENCH_CLIPS = [
    "gunshot_2.wav",
    "siren_1.wav",
    "background_rain_1.wav",
    "baby_cry_1.wav",
    "glass_breaking_1.wav",
    "background_engine_1.wav",
]


class Skip(Exception):
    pass


def _bench_audio() -> np.ndarray:
    return np.concatenate([audio.load(CLIPS / c) for c in BENCH_CLIPS])


def bench_data_dir() -> Path:
    """build/bench/bench_data.h: the bench audio as 32 kHz 12-bit ADC codes, for the rv32
    benchmarks (rewritten only when it changes, so builds stay incremental)."""
    import soxr

    from tools.bench.cbuild import BUILD

    x16 = _bench_audio()
    x32 = soxr.resample(
        x16.astype(np.float64) / 32768, params.default().sample_rate_hz, 32000, quality="VHQ"
    )
    codes = np.clip(np.round(x32 * 2048) + 2048, 0, 4095).astype(np.uint16)
    d = BUILD / "bench"
    d.mkdir(parents=True, exist_ok=True)
    text = (
        f"#include <stdint.h>\nstatic const uint16_t bench_codes[{codes.size}] = "
        f"{{{','.join(map(str, codes.tolist()))}}};\n"
    )
    h = d / "bench_data.h"
    if not h.exists() or h.read_text() != text:
        h.write_text(text)
    return d


def run_rv32_bench(name: str) -> dict:
    """Build tools/bench/c/<name>.c for rv32imc with the bench audio, run it under QEMU and return
    its "key value" output lines as ints (Skip without the cross toolchain)."""
    from tools.bench.cbuild import BENCH_C, build, have_rv32, run

    if not have_rv32():
        raise Skip("riscv64-unknown-elf-gcc / qemu-system-riscv32 not installed (make setup)")
    d = bench_data_dir()
    exe = build(name, [BENCH_C / f"{name}.c"], target="rv32", include_dirs=[d])
    res = run(exe, target="rv32", timeout=900)
    if res.returncode != 0 or b"FAIL" in res.stdout:
        raise RuntimeError(f"rv32 {name} failed: {(res.stdout + res.stderr).decode()[-500:]}")
    return {k: int(v) for k, v in (line.split() for line in res.stdout.decode().splitlines())}


def frontend_rv32(_data) -> dict:
    f = run_rv32_bench("bench_core")
    seconds = f["samples_out"] / params.default().sample_rate_hz
    total = (f["instret_conditioning"] + f["instret_node"]) / seconds
    return {
        "frontend_rv32_instructions_per_audio_second": round(total),
        "frontend_rv32_breakdown": {
            "conditioning_per_second": round(f["instret_conditioning"] / seconds),
            "node_per_second": round(f["instret_node"] / seconds),
            "logmel_per_frame": f["instret_logmel_frame"],
            "audio_seconds": round(seconds, 2),
            "analysis_windows": f["windows"],
            "percent_of_esp32c3_160mhz": round(100 * total / 160e6, 2),
        },
    }


def frontend_host_speed(_data) -> dict:
    try:
        import librosa
    except ImportError:
        raise Skip("librosa not installed") from None
    p = params.default()
    x = np.tile(_bench_audio(), 3)  # ~66 s of real audio
    y = x.astype(np.float32) / 32768

    def best(fn, n=3):
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return min(ts)

    kw = dict(
        sr=p.sample_rate_hz,
        n_fft=p.frame_samples,
        hop_length=p.hop_samples,
        center=False,
        n_mels=p.n_mels,
        fmin=p.fmin_hz,
        fmax=p.fmax_hz,
        power=2.0,
    )
    librosa.feature.melspectrogram(y=y[:16000], **kw)  # warm-up (numba, caches)
    t_lib = best(lambda: librosa.power_to_db(librosa.feature.melspectrogram(y=y, **kw)))
    t_c = best(lambda: core.logmel(x))
    return {
        "frontend_host_speedup_vs_librosa": round(t_lib / t_c, 2),
        "frontend_host_realtime_factor": round(x.size / p.sample_rate_hz / t_c),
    }


def gate_figures(data) -> dict:
    from tools.validate import gate_eval

    data = Path(data)
    csv_path = data / "all_metadata.csv"
    if not csv_path.exists():
        raise Skip(f"{csv_path} not found (the gate figures need ../shared/data)")
    from tools.node import model as _model

    rows = gate_eval.read_csv(csv_path)
    g = gate_eval.evaluate(data, rows, progress=sys.stderr.isatty())
    r = gate_eval.evaluate(data, rows, progress=sys.stderr.isatty(), model=_model.load())
    return {
        "gate_duty_cycle_background": round(r["gate_duty_cycle_background"], 4),
        "gate_recall_impulsive": round(r["gate_recall_impulsive"], 4),
        "gate_recall_impulsive_own_floor": round(r["gate_recall_impulsive_own_floor"], 4),
        "gate_duty_cycle_background_gate_only": round(g["gate_duty_cycle_background"], 4),
        "gate_recall_impulsive_gate_only": round(g["gate_recall_impulsive"], 4),
        "gate_detail": {
            "per_label": r["per_label"],
            "background_seconds": r["background_seconds"],
            "impulsive_clips": r["impulsive_clips"],
            "model": f"{params.MODEL_DIR.relative_to(params.ROOT)} (shipped)",
            "duty_cycle_background_unpadded": round(r["gate_duty_cycle_background_unpadded"], 4),
            "duty_cycle_background_unpadded_gate_only": round(
                g["gate_duty_cycle_background_unpadded"], 4
            ),
            "per_source_duty": {k: v["duty"] for k, v in r["per_source"].items()},
            "per_source_duty_gate_only": {k: v["duty"] for k, v in g["per_source"].items()},
        },
    }


def model_figures(_data) -> dict:
    from training import bench as model_bench

    return model_bench.bench()


def link_figures(_data) -> dict:
    from tools.bench import link_bench as bench_link

    return bench_link.bench()


def app_figures(data) -> dict:
    from tools.bench import app_bench

    return app_bench.app_rv32(data)


def firmware_c3_figures(_data) -> dict:
    from tools.bench import firmware_bench

    try:
        return firmware_bench.figures()
    except (OSError, ValueError) as e:
        out = dict.fromkeys(firmware_bench.KEYS)  # null, with the reason
        out["firmware_c3_detail"] = None
        out["_skipped"] = {"firmware_c3": str(e)}
        return out


BENCHMARKS = {
    "frontend_rv32": frontend_rv32,
    "frontend_host": frontend_host_speed,
    "gate": gate_figures,
    "model": model_figures,
    "link": link_figures,
    "app_rv32": app_figures,
    "firmware_c3": firmware_c3_figures,
}


def run(data: str | Path = DEFAULT_DATA, out_path: Path = DEFAULT_OUT, only=None) -> int:
    """The command's work (python -m tools.bench): run the benchmarks (`only`: these names of
    BENCHMARKS), merge their figures into the JSON at `out_path` and print it.  `data`: the
    real corpus (../shared/data)."""
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    skipped = out.get("_skipped", {})
    for name in only or BENCHMARKS:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            figures = BENCHMARKS[name](Path(data))
            skipped.pop(name, None)
            for k, why in figures.pop("_skipped", {}).items():  # a part of a benchmark
                if why:
                    skipped[k] = why
                else:
                    skipped.pop(k, None)
        except Skip as e:
            figures = {}
            skipped[name] = str(e)
            print(f"bench: {name} skipped: {e}", file=sys.stderr)
        out.update(figures)
    out["_skipped"] = skipped
    out["_config_hash"] = params.default().config_hash
    out_path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(out, indent=2, sort_keys=True)
    out_path.write_text(text + "\n")
    print(text)
    return 0
