"""Benchmark figures of the serial link and the host tools, measured end to end through a pty
against the simulated node (tools.twin).  No ../shared data needed.

    python -m tools.bench_link [--soak-seconds 3600] [--json]

bench() -> dict with
  twin_realtime_factor          HIL (tools/hil.py) over the shipped scenes through the twin's
                                pty: audio seconds per wall second (INJECT as fast as credits
                                allow; includes the node's detector and model)
  hil_onset_latency_ms          median ground truth onset -> EVENT onset frame, audio time, same
                                run (events detected by the node only)
  record_soak_lost_samples      `record_soak_seconds` of audio recorded from the twin as fast
                                as it goes (record mode, AUDIO frames): samples missing,
                                filled or not matching the source (after the stream's first
                                64 samples, the decimator's start)
  record_soak_duplicated_samples  samples received twice
  link_garbage_recovered_frames 1000 AUDIO frames, each preceded by random garbage injected by
                                tools.faultproxy: how many arrive intact and in order (of 1000)
plus the settings used (model or stub classifier, soak length, wall times).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.node import params

ROOT = params.ROOT
SCENES = ROOT / "tests" / "audio" / "scenes"
SOAK_SOURCE = ROOT / "tests" / "audio" / "gunshot_2.wav"
#: stub classifier used when no exported model is present (gunshot-ish scores on every window)
STUB_SCORES = [200, 0, 0, 0, 0, 0, 0, 55]
WARMUP = 64


def _have_model() -> bool:
    return (params.MODEL_DIR / "manifest.json").exists()


def _twin_opts(use_model: bool | None) -> tuple[dict, str]:
    if use_model is None:
        use_model = _have_model()
    if use_model:
        return {}, str(params.MODEL_DIR.relative_to(params.ROOT))
    return {"stub_scores": STUB_SCORES}, "stub " + ",".join(map(str, STUB_SCORES))


def stub_reference():
    from tools.node import core
    from tools.sim import twin
    from tools.validate import hil

    cls = twin.stub_classifier(STUB_SCORES)
    thr = [0.6] * (len(STUB_SCORES) - 1) + [None]
    return hil.Reference(
        twin.STUB_LABELS[: len(STUB_SCORES)],
        len(STUB_SCORES) - 1,
        bytes(8),
        lambda: core.Node(cls, len(STUB_SCORES), thresholds=thr, trace=True),
    )


# --------------------------------------------------------------------------------------------


def hil_twin(
    root: Path = SCENES, scenes: Path | None = SCENES / "scenes.csv", use_model: bool | None = None
) -> dict:
    """HIL over `root` through the twin: the metrics dict of tools.hil plus 'classifier'."""
    from tools import cli
    from tools.validate import hil

    opts, what = _twin_opts(use_model)
    if opts:
        ref = stub_reference()
    else:
        from tools.node import model

        ref = hil.Reference.from_model(model.load())
    clips = hil.find_audio(root)
    for c in clips:
        hil.load_clip(c)
    truth = hil.load_scenes(scenes, clips, root)
    with cli.open_node(sim=True, **opts) as lk:
        metrics, details = hil.run(lk, clips, truth, ref)
    return {**metrics, "classifier": what, "details": details}


def _phase(y: np.ndarray, period: np.ndarray) -> int | None:
    """k such that y[WARMUP + i] == period[(k + WARMUP + i) % P] (exact match of a window)."""
    from numpy.lib.stride_tricks import sliding_window_view

    P = period.size
    w = y[WARMUP : WARMUP + 32]
    ext = np.concatenate([period, period[:32]])
    hits = np.nonzero((sliding_window_view(ext, 32)[:P] == w).all(1))[0]
    return None if not hits.size else int((hits[0] - WARMUP) % P)


def record_soak(
    seconds: float = 3600.0,
    source: Path = SOAK_SOURCE,
    roll_minutes: float = 10.0,
    out: Path | None = None,
) -> dict:
    """Record `seconds` of the twin's looped microphone as fast as possible and compare every
    sample with the source (what the node's ADC path makes of it)."""
    import glob

    import soundfile as sf

    from tools import cli
    from tools.hostio import record
    from tools.node import core
    from tools.sim import twin

    codes = twin.load_codes(Path(source))
    if codes.size % 2:
        codes = codes[:-1]
    P = codes.size // 2
    period = core.decimate(core.adc_to_pcm(np.concatenate([codes] * 3)), 2)[P : 2 * P]
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="ew-soak-")
        out = Path(tmp.name)
    try:
        t0 = time.monotonic()
        with cli.open_node(sim=str(source), loop=True, stub_scores=STUB_SCORES) as lk:
            summary, reason, code = record.record(
                lk, record.RecordOptions(out, roll_minutes=roll_minutes, flush_s=5.0), seconds
            )
        wall = time.monotonic() - t0
        metas = sorted(
            (json.loads(Path(p).read_text()) for p in glob.glob(str(out / "*.json"))),
            key=lambda m: m["first_sample"],
        )
        ys, expected_next, index_breaks = [], None, 0
        for m in metas:
            if expected_next is not None and m["first_sample"] != expected_next:
                index_breaks += 1
            y, _ = sf.read(str(out / m["file"]), dtype="int16")
            ys.append(y)
            expected_next = m["first_sample"] + y.size
        y = np.concatenate(ys) if ys else np.zeros(0, np.int16)
        want = int(round(seconds * params.default().sample_rate_hz))
        k = _phase(y, period) if y.size > WARMUP + 32 else None
        if k is None:
            mismatched = max(0, y.size - WARMUP)
        else:
            idx = (k + np.arange(WARMUP, y.size)) % P
            mismatched = int(np.count_nonzero(y[WARMUP:] != period[idx]))
        lost = summary["samples_filled"] + max(0, want - y.size) + mismatched
        return {
            "seconds": seconds,
            "wall_s": round(wall, 2),
            "speed_x_realtime": round(seconds / wall, 1) if wall else None,
            "samples": int(y.size),
            "lost_samples": int(lost),
            "duplicated_samples": int(summary["duplicate_samples_dropped"]),
            "mismatched_samples": mismatched,
            "filled_samples": summary["samples_filled"],
            "index_breaks": index_breaks,
            "files": len(metas),
            "stopped": reason,
            "exit_code": code,
        }
    finally:
        if tmp is not None:
            tmp.cleanup()


def garbage_recovery(n_frames: int = 1000, seed: int = 7) -> dict:
    """n AUDIO frames from the twin, each preceded by garbage from the fault proxy."""
    from tools.sim import twin
    from tools.sim.faultproxy import FaultProxy
    from tools.wire import link
    from tools.wire import protocol as pr

    with twin.start(str(SOAK_SOURCE), loop=True, stub_scores=STUB_SCORES) as tw:
        with FaultProxy(tw.port, seed=seed, garbage=1.0, start_after=0) as px:
            with link.NodeLink(px.port) as lk:
                lk.hello()
                lk.config_set(pr.CFG_AUDIO_STREAM, 1)
                lk.command(pr.CMD_START_STREAM, 0, drop_before=True)
                got, intact, nxt = 0, 0, None
                garbage0 = px.counts["garbage"]
                for it in lk.items(timeout=60):
                    if isinstance(it, pr.Frame) and isinstance(it.msg, pr.Audio):
                        a = it.msg
                        got += 1
                        if nxt is None or a.first_sample == nxt:
                            intact += 1
                        nxt = a.first_sample + len(a.samples)
                        if got >= n_frames:
                            break
                st = lk.stats
                injected = px.counts["garbage"] - garbage0
                lk.send(pr.ConfigSet(pr.CFG_AUDIO_STREAM, 0))
    return {
        "frames": n_frames,
        "recovered": intact,
        "garbage_injected": injected,
        "decode_errors": st.err_cobs + st.err_short + st.err_magic + st.err_crc + st.err_oversize,
        "seq_gaps": st.seq_gaps,
    }


def bench(soak_seconds: float = 3600.0) -> dict:
    """The `make bench` keys of the link and host tools (see the module docstring)."""
    out: dict = {}
    t = time.monotonic()
    h = hil_twin()
    out["twin_realtime_factor"] = h["realtime_factor"]
    out["hil_onset_latency_ms"] = h["onset_latency_ms"]
    out["hil_reference_mismatches"] = h["reference_mismatches"]
    out["hil_classifier"] = h["classifier"]
    out["hil_wall_s"] = round(time.monotonic() - t, 2)
    s = record_soak(soak_seconds)
    out["record_soak_lost_samples"] = s["lost_samples"]
    out["record_soak_duplicated_samples"] = s["duplicated_samples"]
    out["record_soak_seconds"] = s["seconds"]
    out["record_soak_wall_s"] = s["wall_s"]
    g = garbage_recovery(1000)
    out["link_garbage_recovered_frames"] = g["recovered"]
    out["link_garbage_frames"] = g["frames"]
    return out


def run(soak_seconds: float = 3600.0) -> int:
    """The command's work (python -m tools.bench_link): print the figures as JSON."""
    try:
        print(json.dumps(bench(soak_seconds), indent=1))
    except Exception as e:  # a bench that cannot run: one line, exit 1
        print(f"bench_link: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0
