"""Benchmark of the node application layer (`make bench`, key app_rv32 of tools/bench.py).
Takes the bench data folder (unused) and returns a dict of figures.

  app_rv32_instructions_per_audio_second   ew_app on rv32imc (ESP32-C3 ISA), minstret under QEMU
      -icount (exact): microphone path in detect mode, record mode (AUDIO frames) and the INJECT
      path (frame decoding), classifier stubbed; with the conditioning + detector baseline, so
      the application layer's own cost is the difference
(twin_realtime_factor, INJECT through the twin's pty, is measured by tools/bench_link.py.)
"""

from __future__ import annotations

from tools.bench.core_bench import run_rv32_bench
from tools.node import params


def app_rv32(_data=None) -> dict:
    f = run_rv32_bench("bench_app")
    sec = f["samples"] / params.default().sample_rate_hz
    per = {k: round(f[f"instret_{k}"] / sec) for k in ("baseline", "detect", "record", "inject")}
    return {
        "app_rv32_instructions_per_audio_second": per["detect"],
        "app_rv32_breakdown": {
            "baseline_conditioning_and_detector": per["baseline"],
            "detect_mode": per["detect"],
            "record_mode": per["record"],
            "inject_mode": per["inject"],
            "app_overhead_detect": per["detect"] - per["baseline"],
            "app_overhead_record": per["record"] - per["baseline"],
            "record_link_bytes_per_second": round(f["tx_bytes_record"] / sec),
            "audio_seconds": round(sec, 2),
            "classifier_calls": f["windows"],
            "percent_of_esp32c3_160mhz_record": round(100 * per["record"] / 160e6, 2),
        },
    }
