"""tools.record end to end through pyserial: the twin (soak, node-side event segments) and the
scripted fake node behind the fault proxy (gaps filled and flagged, resets, a pulled cable,
Ctrl-C, a full disk, host-side event windows, metadata.csv)."""

import csv
import errno
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.fakenode import FakeNode

from tools import record as record_cmd
from tools.bench import link_bench as bench_link
from tools.hostio import record
from tools.sim.faultproxy import FaultProxy
from tools.wire import link as lk
from tools.wire import protocol as pr

# generous for loaded CI machines: a stalled 2-core runner must not look like a silent node
FAST = lk.Timeouts(hello_s=2.0, reply_s=4.0, idle_s=10.0)


def source(seconds, seed=0):
    return np.random.default_rng(seed).integers(-8000, 8000, int(seconds * 16000)).astype(np.int16)


def sidecars(out: Path):
    return sorted(
        (json.loads(p.read_text()) for p in out.glob("*.json")), key=lambda m: m["first_sample"]
    )


def check_against_source(out: Path, x: np.ndarray, allow_gaps=True):
    """Every file: its samples equal the source at its first_sample, except flagged gaps,
    which are silence of exactly their length."""
    total = 0
    for m in sidecars(out):
        y, sr = sf.read(str(out / m["file"]), dtype="int16")
        assert sr == 16000 and y.size == m["samples"] and m["closed"]
        a = m["first_sample"]
        want = x[a : a + y.size].copy()
        for g in m["gaps"]:
            assert allow_gaps and g["filled"] == "silence"
            o, n = g["offset_samples"], g["samples"]
            assert np.all(y[o : o + n] == 0)
            want[o : o + n] = 0
        assert np.array_equal(y, want), m["file"]
        total += y.size
    return total


def run_record(port, out, seconds=None, opts=None, **kw):
    o = opts or record.RecordOptions(out, roll_minutes=0.1)
    with lk.NodeLink(port, timeouts=FAST) as link:
        return record.record(link, o, seconds, **kw)


def test_rolling_files_events_and_metadata(tmp_path):
    x = source(14)
    evs = [
        pr.Event(16000 * 2, 4000, 0, 210, pr.EVENT_ONSET, 1),
        pr.Event(16000 * 2, 8000, 0, 230, pr.EVENT_END, 3),
        pr.Event(16000 * 9, 4000, 3, 200, pr.EVENT_ONSET, 1),
    ]
    with FakeNode(x, record=True, events=evs) as node:
        summary, reason, code = run_record(node.port, tmp_path, 14)
    assert code == 0 and summary["samples_received"] == x.size and not summary["gaps"]
    metas = sidecars(tmp_path)
    assert [m["first_sample"] for m in metas] == [0, 96000, 192000]  # 6-s files, exact
    assert [m["close_reason"] for m in metas][:2] == ["roll", "roll"]
    assert check_against_source(tmp_path, x, allow_gaps=False) == x.size
    m0 = metas[0]
    assert m0["node_id"] == "24:a1:b2:c3:d4:e5" and m0["firmware_version"] == "0.2.0"
    assert m0["model_hash"] == bytes(range(8)).hex() and m0["sample_rate_hz"] == 16000
    assert m0["start_time_utc"].endswith("Z")
    assert [(e["label"], e["kind"], e["onset_sample"]) for e in m0["events"]] == [
        ("gunshot", "onset", 32000),
        ("gunshot", "end", 32000),
    ]
    assert summary["events"] == 2  # detections (onsets), as tools.monitor counts them
    assert metas[1]["events"][0]["label"] == "siren"
    assert metas[1]["events"][0]["offset_s"] == pytest.approx(3.0)
    rows = list(csv.DictReader(open(tmp_path / "metadata.csv")))
    assert list(rows[0].keys()) == record.META_COLUMNS
    assert [r["path"] for r in rows] == [m["file"] for m in metas]
    assert [float(r["duration_s"]) for r in rows] == [6.0, 6.0, 2.0]


def test_faults_make_flagged_gaps_never_stitched(tmp_path):
    x = source(30, seed=1)
    with (
        FakeNode(x, record=True, autostart=False) as node,
        FaultProxy(
            node.port,
            seed=4,
            garbage=0.02,
            crc=0.02,
            truncate=0.02,
            drop=0.02,
            drop_bytes=0.01,
            log=0.02,
            spare_types=(pr.HELLO, pr.ACK, pr.CONFIG),
        ) as px,
    ):
        summary, reason, code = run_record(
            px.port, tmp_path, 30, record.RecordOptions(tmp_path, roll_minutes=0.25)
        )
        c = px.counts
    lost_frames = c["crc"] + c["truncate"] + c["drop"] + c["drop_bytes"]
    assert code == 0 and lost_frames > 5
    assert summary["samples_filled"] == 512 * lost_frames
    assert summary["samples_received"] + summary["samples_filled"] == x.size
    assert check_against_source(tmp_path, x) == x.size
    gaps = [g for m in sidecars(tmp_path) for g in m["gaps"]]
    assert sum(g["samples"] for g in gaps) == 512 * lost_frames
    assert all("sequence gap" in g["reason"] for g in gaps)
    link_stats = sidecars(tmp_path)[-1]["link"]
    assert link_stats["decode_errors"]["crc"] >= c["crc"] and link_stats["log_lines"] == c["log"]


def test_node_reset_starts_a_new_file(tmp_path):
    x = source(12, seed=2)
    with (
        FakeNode(x, record=True, autostart=False) as node,
        FaultProxy(node.port, reset_every=200, spare_types=(pr.HELLO, pr.ACK, pr.CONFIG)) as px,
    ):
        summary, reason, code = run_record(
            px.port, tmp_path, 12, record.RecordOptions(tmp_path, roll_minutes=10)
        )
        resets = px.counts["reset"]
    metas = sidecars(tmp_path)
    assert resets == 1 and len(metas) == 2
    assert "node reset" in metas[0]["close_reason"]
    assert check_against_source(tmp_path, x, allow_gaps=False) == x.size


def test_pulled_cable_closes_the_file(tmp_path, capsys):
    x = source(60, seed=3)
    with FakeNode(x, record=True, pace=20.0) as node:
        import threading

        threading.Timer(1.0, node.vanish).start()
        rc = record_cmd.main(
            ["--port", node.port, "--out", str(tmp_path), "--quiet", "--timeout", "hello_s=1"]
        )
    err = capsys.readouterr().err
    assert rc == 1 and "vanished" in err and "Traceback" not in err
    metas = sidecars(tmp_path)
    assert len(metas) == 1 and metas[0]["closed"] and "vanished" in metas[0]["close_reason"]
    assert 0 < metas[0]["samples"] < x.size
    check_against_source(tmp_path, x, allow_gaps=False)


def test_ctrl_c_closes_cleanly(tmp_path):
    x = source(20, seed=4)

    def interrupt(rec):
        if rec.samples_received >= 5 * 16000:
            raise KeyboardInterrupt

    with FakeNode(x, record=True) as node:
        summary, reason, code = run_record(node.port, tmp_path, None, progress=interrupt)
    assert code == 0 and "Ctrl-C" in reason
    m = sidecars(tmp_path)
    assert m[-1]["closed"] and m[-1]["close_reason"] == "interrupted (Ctrl-C)"
    assert check_against_source(tmp_path, x, allow_gaps=False) == summary["samples_received"]


def test_disk_full_stops_and_keeps_what_was_written(tmp_path, monkeypatch, capsys):
    x = source(20, seed=5)
    real_write = record.AudioFile.write
    calls = {"n": 0}

    def write(self, data):
        calls["n"] += 1
        if calls["n"] > 100:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(record.AudioFile, "write", write)
    with FakeNode(x, record=True) as node:
        rc = record_cmd.main(
            ["--port", node.port, "--out", str(tmp_path), "--quiet", "--duration", "20"]
        )
    err = capsys.readouterr().err
    assert rc == 1 and "disk full" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    m = sidecars(tmp_path)
    assert len(m) == 1 and m[0]["close_reason"] == "disk full" and m[0]["samples"] == 100 * 512
    assert check_against_source(tmp_path, x, allow_gaps=False) == 100 * 512


def test_on_event_host_windows(tmp_path):
    x = source(20, seed=6)
    evs = [
        pr.Event(16000 * 5, 4000, 0, 220, pr.EVENT_ONSET, 1),
        pr.Event(16000 * 6, 4000, 0, 240, pr.EVENT_ONSET, 1),  # merged into the first
        pr.Event(16000 * 14, 4000, 6, 200, pr.EVENT_ONSET, 1),
    ]
    opts = record.RecordOptions(tmp_path, on_event=True, pre_roll_s=1.0, post_roll_s=2.0)
    with FakeNode(x, record=True, events=evs) as node:
        node.config[pr.CFG_AUDIO_STREAM] = 1
        summary, reason, code = run_record(node.port, tmp_path, 20, opts, node_events=False)
    metas = sidecars(tmp_path)
    assert [(m["first_sample"], m["samples"]) for m in metas] == [
        (4 * 16000, 4 * 16000),
        (13 * 16000, 3 * 16000),
    ]
    check_against_source(tmp_path, x, allow_gaps=False)
    rows = list(csv.DictReader(open(tmp_path / "metadata.csv")))
    assert [r["label"] for r in rows] == ["gunshot", "dog_bark"]
    assert rows[0]["source_label"] == "detected gunshot (score 0.94)"


def test_on_event_node_segments_with_the_twin(tmp_path):
    from tools.sim import twin

    with twin.start("tests/audio/scenes/street.wav", stub_scores=bench_link.STUB_SCORES) as t:
        opts = record.RecordOptions(tmp_path, on_event=True)
        with lk.NodeLink(t.port, timeouts=FAST) as link:
            summary, reason, code = record.record(link, opts, 24)
    metas = sidecars(tmp_path)
    assert opts.node_segments and len(metas) >= 2
    for m in metas:
        assert m["mode"] == "on-event (node segments)" and not m["gaps"]
        onsets = [e for e in m["events"] if e["kind"] == "onset"]
        assert onsets and all(
            m["first_sample"] <= e["onset_sample"] < m["first_sample"] + m["samples"]
            for e in onsets
        )
    rows = list(csv.DictReader(open(tmp_path / "metadata.csv")))
    assert all(r["label"] == "gunshot" for r in rows)


def test_soak_10_minutes_zero_lost():
    s = bench_link.record_soak(600, roll_minutes=4)
    assert s["exit_code"] == 0 and s["files"] == 3 and s["index_breaks"] == 0
    assert s["lost_samples"] == 0 and s["duplicated_samples"] == 0
    assert s["samples"] == 600 * 16000


@pytest.mark.slow
def test_soak_one_hour_zero_lost():
    s = bench_link.record_soak(3600)
    assert s["exit_code"] == 0 and s["files"] == 6 and s["index_breaks"] == 0
    assert s["lost_samples"] == 0 and s["duplicated_samples"] == 0
    assert s["samples"] == 3600 * 16000


def test_bad_arguments(tmp_path, capsys):
    assert record_cmd.main(["--port", "/dev/earwitness-none", "--out", str(tmp_path)]) == 2
    assert record_cmd.main(["--port", "x", "--out", str(tmp_path), "--roll-minutes", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_twin_through_fault_proxy(tmp_path):
    """The real twin behind the fault proxy: every damaged frame becomes a flagged silent gap,
    every other sample equals what the node's ADC path makes of the source."""
    from tools.node import core
    from tools.sim import twin

    src = Path("tests/audio/gunshot_2.wav")
    codes = twin.load_codes(src)
    P = codes.size // 2
    period = core.decimate(core.adc_to_pcm(np.concatenate([codes] * 3)), 2)[P : 2 * P]
    with (
        twin.start(str(src), loop=True, stub_scores=bench_link.STUB_SCORES) as t,
        FaultProxy(
            t.port,
            seed=9,
            garbage=0.01,
            crc=0.01,
            truncate=0.01,
            drop=0.01,
            spare_types=(pr.HELLO, pr.ACK, pr.CONFIG),
        ) as px,
    ):
        with lk.NodeLink(px.port, timeouts=FAST) as link:
            summary, reason, code = record.record(
                link, record.RecordOptions(tmp_path, roll_minutes=0.5), 60
            )
        c = dict(px.counts)
    assert code == 0 and c["crc"] + c["truncate"] + c["drop"] > 0
    metas = sidecars(tmp_path)
    y = np.concatenate([sf.read(str(tmp_path / m["file"]), dtype="int16")[0] for m in metas])
    flagged = np.zeros(y.size, bool)
    base = 0
    for m in metas:
        for g in m["gaps"]:
            assert "sequence gap" in g["reason"] and g["filled"] == "silence"
            flagged[base + g["offset_samples"] : base + g["offset_samples"] + g["samples"]] = True
        base += m["samples"]
    assert y.size == summary["samples_received"] + summary["samples_filled"] >= 60 * 16000
    assert flagged.sum() == summary["samples_filled"] > 0
    assert np.all(y[flagged] == 0)
    p = next(i for i in range(bench_link.WARMUP, y.size) if not flagged[i : i + 40].any())
    k = bench_link._phase(y[p - bench_link.WARMUP :], period)  # a window clear of gaps
    assert k is not None
    idx = (k - (p - bench_link.WARMUP) + np.arange(y.size)) % P
    good = ~flagged
    good[: bench_link.WARMUP] = False
    assert np.array_equal(y[good], period[idx][good])


def test_sim_recording_starts_at_the_first_sample_of_the_audio(tmp_path, capsys):
    """`record --sim-audio FILE` (the command line, a real twin with the shipped model): every
    run's WAV begins with the file's first sample as the node's 16 kHz path makes it, however
    long the handshake took (the twin's microphone restarts its audio at START_STREAM)."""
    from tools.node import core
    from tools.sim import twin

    src = "tests/audio/siren_1.wav"
    want = core.decimate(core.adc_to_pcm(twin.load_codes(Path(src))), 2)
    for i in range(3):
        out = tmp_path / f"r{i}"
        rc = record_cmd.main(["--sim-audio", src, "--out", str(out), "--duration", "1", "-q"])
        assert rc == 0, capsys.readouterr().err
        (wav,) = out.glob("*.wav")
        y, sr = sf.read(str(wav), dtype="int16")
        assert sr == 16000 and y.size >= 16000
        assert np.array_equal(y, want[: y.size]), f"run {i}: not the start of {src}"


def test_cli_counts_detections_like_the_monitor(tmp_path, capsys):
    """`--json` summary and the human line: one detection per EVENT onset, not per frame."""
    x = source(6)
    evs = [
        pr.Event(16000, 4000, 0, 210, pr.EVENT_ONSET, 1),
        pr.Event(16000, 8000, 0, 230, pr.EVENT_END, 3),
        pr.Event(16000 * 3, 4000, 3, 200, pr.EVENT_ONSET, 1),
        pr.Event(16000 * 3, 6000, 3, 200, pr.EVENT_END, 2),
    ]
    with FakeNode(x, record=True, events=evs) as node:
        rc = record_cmd.main(
            ["--port", node.port, "--out", str(tmp_path / "j"), "--duration", "6", "--json"]
        )
    out = capsys.readouterr().out
    assert rc == 0 and json.loads(out)["events"] == 2
    with FakeNode(x, record=True, events=evs) as node:
        rc = record_cmd.main(["--port", node.port, "--out", str(tmp_path / "h"), "--duration", "6"])
    assert rc == 0 and ", events 2;" in capsys.readouterr().err
