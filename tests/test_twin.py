"""The simulated node through a real serial device: tools/twin.py on a pty, driven with pyserial.

Most tests run the twin with --stub-scores (constant classifier: no model needed); the
model test runs when an exported model is present at firmware/model.  No timed asserts: every
wait has a generous timeout and only fails a test when nothing arrives at all.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from tools.node import app, audio, core
from tools.sim import twin
from tools.wire import protocol as pr

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "audio" / "gunshot_1.wav"
STUB = [230, 0, 0, 0, 0, 0, 0, 25]  # every window: "gunshot" at 0.9
STUB_THRESHOLDS = [0.6] * 7 + [None]
TIMEOUT = 60.0
MODEL_DIR = ROOT / "firmware" / "model"


class Link:
    """Minimal host side over pyserial (the tests do not depend on tools/link.py)."""

    def __init__(self, port: str):
        self.s = serial.Serial(port, 921600, timeout=0.05)
        self.dec = pr.FrameDecoder()
        self.enc = pr.Encoder()
        self.backlog: list = []

    def close(self):
        self.s.close()

    def send(self, msg, payload=None) -> int:
        seq = self.enc.seq
        self.s.write(self.enc.encode(msg, payload))
        return seq

    def _fill(self) -> None:
        data = self.s.read(self.s.in_waiting or 1)
        if data:
            self.backlog += [it for it in self.dec.feed(data) if isinstance(it, pr.Frame)]

    def wait(self, pred=lambda f: True, timeout: float = TIMEOUT):
        """First frame (msg) satisfying pred; earlier frames are discarded."""
        end = time.monotonic() + timeout
        while True:
            while self.backlog:
                f = self.backlog.pop(0)
                if pred(f.msg):
                    return f.msg
            if time.monotonic() > end:
                raise AssertionError("the twin sent no matching frame")
            self._fill()

    def wait_type(self, cls, timeout: float = TIMEOUT):
        return self.wait(lambda m: isinstance(m, cls), timeout)


@pytest.fixture
def stub_twin():
    with twin.start(stub_scores=STUB) as t:
        yield t


@pytest.fixture
def link(stub_twin):
    lk = Link(stub_twin.port)
    yield lk
    lk.close()


def test_help_and_bad_input():
    r = subprocess.run(
        [sys.executable, "-m", "tools.twin", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "pseudo-terminal" in r.stdout and "--realtime" in r.stdout
    for args in (
        ["nonexistent.wav", "--stub-scores", "1,2"],
        ["--model", "/nonexistent"],
        ["--stub-scores", "1,x"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "tools.twin", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(twin.TwinError, match="exited with status 2"):
        twin.start(model="/nonexistent", stderr=subprocess.DEVNULL)


def test_hello_on_start(link):
    hello = link.wait_type(pr.Hello)  # the boot HELLO waits in the pty
    assert hello.proto_version == pr.PROTO_VERSION and hello.reset_reason == 1
    assert hello.labels == twin.STUB_LABELS and hello.model_hash == bytes(8)
    assert hello.board == "twin" and hello.sample_rate_hz == 16000
    link.send(pr.HelloRequest())
    assert link.wait_type(pr.Hello) == hello


def test_unknown_type_and_bad_payload(link):
    seq = link.send(0x42, b"hello?")
    err = link.wait_type(pr.Error)
    assert err.code == pr.ERRC_UNKNOWN_TYPE and err.ref_seq == seq
    seq = link.send(pr.CMD, b"\x02")
    err = link.wait_type(pr.Error)
    assert err.code == pr.ERRC_BAD_PAYLOAD and err.ref_seq == seq
    link.s.write(b"some log text\n\x00\x07\xe7garbage\x00")  # text and a broken frame
    assert link.wait_type(pr.Error).code == pr.ERRC_BAD_FRAME
    link.send(pr.Cmd(pr.CMD_STATUS, 0))
    assert link.wait_type(pr.Status).mode == 0


def test_config_round_trip_persists(tmp_path):
    cfg = tmp_path / "nvs.json"
    key = pr.cfg_threshold(2)
    with twin.start(stub_scores=STUB, config=cfg) as t:
        lk = Link(t.port)
        lk.send(pr.ConfigGet(key))
        assert lk.wait_type(pr.Config) == pr.Config(key, 154)
        for k, v in ((key, 99), (pr.CFG_HOLDOFF_MS, 1200), (pr.CFG_BAUD, 460800)):
            lk.send(pr.ConfigSet(k, v))
            assert lk.wait_type(pr.Config) == pr.Config(k, v)
            lk.send(pr.ConfigGet(k))
            assert lk.wait_type(pr.Config) == pr.Config(k, v)
        lk.send(pr.ConfigSet(key, 300))
        assert lk.wait_type(pr.Error).code == pr.ERRC_BAD_VALUE
        seq = lk.send(pr.Cmd(pr.CMD_REBOOT, 0))
        assert lk.wait_type(pr.Ack) == pr.Ack(seq, pr.CMD)
        assert lk.wait_type(pr.Hello).reset_reason == twin.RESET_SW
        lk.send(pr.ConfigGet(key))
        assert lk.wait_type(pr.Config).value == 99
        lk.close()
    assert cfg.exists()
    with twin.start(stub_scores=STUB, config=cfg) as t:  # a new twin reads the "NVS" file
        lk = Link(t.port)
        lk.send(pr.ConfigGet(pr.CFG_HOLDOFF_MS))
        assert lk.wait_type(pr.Config).value == 1200
        lk.close()


def test_record_mode_audio_contiguous_and_faithful():
    """AUDIO frames: indices contiguous from 0, samples = the core's ADC conversion and
    decimation of the file (the twin's microphone path is the device's)."""
    codes = twin.load_codes(CLIP)
    want_n = 5 * 16000
    with twin.start(CLIP, stub_scores=STUB, loop=True) as t:
        lk = Link(t.port)
        lk.send(pr.ConfigSet(pr.CFG_AUDIO_STREAM, 1))
        assert lk.wait_type(pr.Config).value == 1
        seq = lk.send(pr.Cmd(pr.CMD_START_STREAM, 0))
        lk.wait(lambda m: isinstance(m, pr.Ack) and m.acked_seq == seq)
        frames = []
        while sum(len(f.samples) for f in frames) < want_n:
            frames.append(lk.wait_type(pr.Audio))
        lk.close()
    starts = [f.first_sample for f in frames]
    assert starts == list(np.cumsum([0] + [len(f.samples) for f in frames[:-1]]))
    assert all(len(f.samples) == 512 for f in frames)
    got = np.concatenate([np.asarray(f.samples, np.int16) for f in frames])
    # the stream starts at a microphone chunk boundary of the looped file, decimator reset
    looped = np.tile(codes, 2 + 2 * want_n // codes.size)
    matches = [
        k
        for k in range(0, codes.size, twin.CHUNK_CODES)
        if np.array_equal(
            core.decimate(core.adc_to_pcm(looped[k : k + 2 * got.size]), 2)[: got.size], got
        )
    ]
    assert len(matches) == 1


def inject_file(lk: Link, x: np.ndarray, frame: int = 512) -> tuple[list, float]:
    """START_STREAM 1, INJECT x with credits, STOP_STREAM; (EVENT msgs, wall seconds)."""
    t0 = time.monotonic()
    lk.send(pr.Cmd(pr.CMD_START_STREAM, 1))
    balance, pos, events, stop_seq = 0, 0, [], None
    end = time.monotonic() + TIMEOUT + x.size / 16000
    while True:
        assert time.monotonic() < end, "inject stalled"
        lk._fill()
        while lk.backlog:
            m = lk.backlog.pop(0).msg
            if isinstance(m, pr.Credit):
                balance += m.credits_samples
            elif isinstance(m, pr.Event):
                events.append(m)
            elif isinstance(m, pr.Error):
                raise AssertionError(f"node error: {m}")
            elif isinstance(m, pr.Ack) and m.acked_seq == stop_seq:
                return events, time.monotonic() - t0
        while balance > 0 and pos < x.size:
            n = min(frame, balance, x.size - pos)
            lk.send(pr.Inject(pos, x[pos : pos + n]))
            balance -= n
            pos += n
        if pos >= x.size and stop_seq is None:
            stop_seq = lk.send(pr.Cmd(pr.CMD_STOP_STREAM, 0))


def event_tuples(events):
    return [
        (e.onset_sample, e.class_index, e.kind, e.duration_samples, e.hits, e.score) for e in events
    ]


def node_tuples(node: core.Node):
    return [
        (
            e.onset_sample,
            e.class_index,
            pr.EVENT_ONSET if e.kind == "onset" else pr.EVENT_END,
            e.duration_samples,
            e.hits,
            e.score,
        )
        for e in node.events
    ]


def test_inject_events_equal_host_node(link):
    x = audio.load(CLIP)
    events, wall = inject_file(link, x)
    node = core.Node(lambda w, f: np.array(STUB), len(STUB), thresholds=STUB_THRESHOLDS)
    node.process(x)
    node.flush()
    assert node.events and event_tuples(events) == node_tuples(node)
    # a second stream restarts at sample 0 and gives the same events again
    events2, _ = inject_file(link, x, frame=300)
    assert event_tuples(events2) == event_tuples(events)
    link.send(pr.Cmd(pr.CMD_STATUS, 0))
    st = link.wait_type(pr.Status)
    assert st.credits == 0 and st.sample_index == x.size


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The shipped model, or (before one is exported) the tiny int8 test model of
    tests/test_evaluate.py, built with TensorFlow."""
    if (MODEL_DIR / "manifest.json").exists():
        return MODEL_DIR
    pytest.importorskip("tensorflow")
    from helpers.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model"))


def test_inject_with_model_equals_reference(model_dir):
    """The twin with the real TFLM interpreter gives the events of the host reference pipeline
    (tools.node.model.Node: the same C detector and interpreter, run directly on the audio)."""
    from tools.node import model

    m = model.load(model_dir)
    x = np.concatenate(
        [
            audio.load(ROOT / "tests" / "audio" / f)
            for f in ("gunshot_1.wav", "glass_breaking_1.wav", "siren_1.wav")
        ]
    )
    with twin.start(model=model_dir) as t:
        lk = Link(t.port)
        hello = lk.wait_type(pr.Hello)
        assert hello.model_hash == m.hash8 and hello.labels == m.labels
        events, _ = inject_file(lk, x)
        lk.close()
    node = m.node()
    node.process(x)
    node.flush()
    assert node.windows and event_tuples(events) == node_tuples(node)


def test_record_on_event_segments():
    """AUDIO_STREAM 2: AUDIO only around detections, each segment from 0.5 s before the onset,
    never overlapping, samples in order."""
    with twin.start(CLIP, stub_scores=STUB, loop=True) as t:
        lk = Link(t.port)
        lk.send(pr.ConfigSet(pr.CFG_AUDIO_STREAM, 2))
        assert lk.wait_type(pr.Config).value == 2
        seq = lk.send(pr.Cmd(pr.CMD_START_STREAM, 0))
        lk.wait(lambda m: isinstance(m, pr.Ack) and m.acked_seq == seq)
        audio_frames, onsets = [], []
        while len(onsets) < 3:
            m = lk.wait(lambda m: isinstance(m, (pr.Audio, pr.Event)))
            if isinstance(m, pr.Audio):
                audio_frames.append(m)
            elif m.kind == pr.EVENT_ONSET:
                onsets.append(m.onset_sample)
        lk.close()
    # segments = runs of contiguous frames
    segments = []
    for f in audio_frames:
        if segments and segments[-1][1] == f.first_sample:
            segments[-1][1] += len(f.samples)
        else:
            assert not segments or f.first_sample > segments[-1][1]  # no overlap/repeat
            segments.append([f.first_sample, f.first_sample + len(f.samples)])
    pre = app.LIMITS["event_preroll_samples"]
    for o in onsets[:2]:
        seg = [s for s in segments if s[0] <= o < s[1] or s[0] == max(0, o - pre)]
        assert seg and seg[0][0] <= max(0, o - pre) + 512 and seg[0][0] <= o


def test_uart_log_and_48khz_adc():
    """--uart-log: boot text before HELLO and log lines between frames (the host decoder keeps
    both); --adc-rate 48000: the x3 decimator path."""
    with twin.start(CLIP, stub_scores=STUB, loop=True, uart_log=True, adc_rate=48000) as t:
        s = serial.Serial(t.port, 921600, timeout=0.05)
        dec, enc = pr.FrameDecoder(), pr.Encoder()
        items = []
        end = time.monotonic() + TIMEOUT
        while not any(isinstance(i, pr.Frame) and isinstance(i.msg, pr.Hello) for i in items):
            assert time.monotonic() < end
            items += dec.feed(s.read(4096))
        first_hello = next(k for k, i in enumerate(items) if isinstance(i, pr.Frame))
        assert any(
            "POWERON_RESET" in i.text for i in items[:first_hello] if isinstance(i, pr.LogLine)
        )
        s.write(enc.encode(pr.ConfigSet(pr.CFG_AUDIO_STREAM, 1)))
        s.write(enc.encode(pr.Cmd(pr.CMD_START_STREAM, 0)))
        frames, logs = [], []
        while sum(len(f.samples) for f in frames) < 3 * 16000:
            assert time.monotonic() < end
            for it in dec.feed(s.read(65536)):
                if isinstance(it, pr.LogLine):
                    logs.append(it.text)
                elif isinstance(it.msg if isinstance(it, pr.Frame) else None, pr.Audio) and (
                    frames or it.msg.first_sample == 0
                ):
                    frames.append(it.msg)
        s.write(enc.encode(pr.Cmd(pr.CMD_REBOOT, 0)))
        after = []
        while not any(isinstance(i, pr.Frame) and isinstance(i.msg, pr.Hello) for i in after):
            assert time.monotonic() < end
            after += dec.feed(s.read(4096))
        s.close()
    assert dec.stats.garbage_bytes == 0
    assert any("alarm: class 0" in line for line in logs)  # stub: every window fires
    assert any(isinstance(i, pr.LogLine) and "SW_CPU_RESET" in i.text for i in after)
    starts = [f.first_sample for f in frames]
    assert starts == list(np.cumsum([0] + [len(f.samples) for f in frames[:-1]]))
