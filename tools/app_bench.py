"""Benchmarks of the node application and the twin (figures for `make bench`; the lead wires
them into tools/bench.py).  Each function takes the bench's argparse namespace (unused) and
returns a dict of figures, like the functions in tools/bench.py.

  app_rv32_instructions_per_audio_second   ew_app on rv32imc (ESP32-C3 ISA), minstret under QEMU
      -icount (exact): microphone path in detect mode, record mode (AUDIO frames) and the INJECT
      path (frame decoding), classifier stubbed; with the conditioning + detector baseline, so
      the application layer's own cost is the difference
  twin_realtime_factor   audio seconds per wall second of INJECT through the twin's pty (HIL
      path: pyserial host, credits, the real C app, the TFLM interpreter when a model is given)
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tools import audio, params
from tools.bench import run_rv32_bench

ROOT = params.ROOT
CLIPS = ROOT / "tests" / "audio"


def app_rv32(_args=None) -> dict:
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


def inject_through_pty(port: str, x: np.ndarray, timeout: float = 600.0) -> dict:
    """START_STREAM 1, INJECT all of x honouring credits, STOP_STREAM; wall time and events."""
    import serial

    from tools import protocol as pr
    s = serial.Serial(port, 921600, timeout=0)
    try:
        dec, enc = pr.FrameDecoder(), pr.Encoder()
        s.write(enc.encode(pr.HelloRequest()))
        end = time.monotonic() + timeout
        while not any(isinstance(getattr(i, "msg", None), pr.Hello) for i in dec.feed(s.read(4096))):
            if time.monotonic() > end:
                raise RuntimeError("the twin does not answer HELLO")
            time.sleep(0.01)
        t0 = time.monotonic()
        s.write(enc.encode(pr.Cmd(pr.CMD_START_STREAM, 1)))
        balance, pos, stop_seq, events = 0, 0, None, []
        while True:
            if time.monotonic() > end:
                raise RuntimeError("INJECT stalled")
            data = s.read(65536)
            for it in dec.feed(data):
                m = getattr(it, "msg", None)
                if isinstance(m, pr.Credit):
                    balance += m.credits_samples
                elif isinstance(m, pr.Event):
                    events.append(m)
                elif isinstance(m, pr.Ack) and m.acked_seq == stop_seq:
                    return {"wall_s": time.monotonic() - t0, "events": events}
            sent = False
            while balance > 0 and pos < x.size:
                n = min(512, balance, x.size - pos)
                s.write(enc.encode(pr.Inject(pos, x[pos:pos + n])))
                balance, pos, sent = balance - n, pos + n, True
            if pos >= x.size and stop_seq is None:
                stop_seq = enc.seq
                s.write(enc.encode(pr.Cmd(pr.CMD_STOP_STREAM, 0)))
            if not data and not sent:
                time.sleep(0.0002)
    finally:
        s.close()


def twin_realtime(_args=None, model=None, repeat: int = 4) -> dict:
    """twin_realtime_factor with the shipped model (firmware/model) when there is one, else
    with the stub classifier (then only the link + C app are measured)."""
    from tools import twin
    model_dir = Path(model) if model else ROOT / "firmware" / "model"
    use_model = (model_dir / "manifest.json").exists()
    x = np.concatenate([audio.load(p) for p in sorted(CLIPS.glob("*.wav"))] * repeat)
    kw = {"model": model_dir} if use_model else {"stub_scores": [0] * 7 + [255]}
    with twin.start(**kw) as t:
        r = inject_through_pty(t.port, x)
    return {"twin_realtime_factor": round(x.size / 16000 / r["wall_s"], 1),
            "twin_realtime_detail": {"audio_seconds": round(x.size / 16000, 1),
                                     "wall_seconds": round(r["wall_s"], 2),
                                     "classifier": "tflite-micro " + str(model_dir) if use_model
                                     else "stub (no model exported)",
                                     "events": len(r["events"])}}
