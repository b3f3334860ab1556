"""The node application (ew_app*.c): the C test with a fake port on the host and on rv32imc
under QEMU, and the Python binding (tools/node/app.py) against the detector run directly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_rv32

from tools.bench import core_bench as bench
from tools.bench.cbuild import BENCH_C, C_TESTS, build, run
from tools.node import app, audio, core
from tools.wire import protocol as pr

CLIP = "tests/audio/gunshot_1.wav"
LABELS = ["gunshot", "other"]
THRESHOLDS = [0.5, None]


@pytest.mark.parametrize("target", ["host", pytest.param("rv32", marks=requires_rv32)])
def test_c_app(target):
    exe = build("test_app", [C_TESTS / "test_app.c"], target=target)
    res = run(exe, target=target, timeout=600)
    out = res.stdout.decode(errors="replace")
    assert res.returncode == 0 and out.strip().splitlines()[-1].startswith("OK"), out[-3000:]
    assert "FAIL" not in out


def test_c_app_sanitizers():
    """The same test under AddressSanitizer + UBSan (random frames included): the app reads
    untrusted bytes."""
    try:
        exe = build(
            "test_app_asan",
            [C_TESTS / "test_app.c"],
            extra_flags=[
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer",
            ],
        )
    except RuntimeError as e:
        pytest.skip(f"no sanitizer runtime: {str(e)[-200:]}")
    res = run(exe, timeout=600)
    out = (res.stdout + res.stderr).decode(errors="replace")
    assert res.returncode == 0 and "FAIL" not in out, out[-3000:]


def loud_classifier(features_threshold: int = 22):
    """Class 0 for windows with any loud feature, else the negative class (like test_app.c)."""

    def classify(window, f):
        return np.array([230 if (f > features_threshold).any() else 10, 0])

    return classify


class Host:
    """The host side in-process: an App whose output goes to a FrameDecoder."""

    def __init__(self, **kw):
        self.dec = pr.FrameDecoder()
        self.enc = pr.Encoder()
        self.items: list = []
        self.saved: bytes | None = kw.pop("saved", None)
        self.reboots = 0
        kw.setdefault("classify", loud_classifier())
        self.app = app.App(
            labels=LABELS,
            thresholds=THRESHOLDS,
            write=self._write,
            config_load=lambda: self.saved,
            config_save=self._save,
            reboot=self._reboot,
            model_hash=bytes(range(8)),
            **kw,
        )

    def _write(self, b):
        self.items += self.dec.feed(b)

    def _save(self, blob):
        self.saved = blob

    def _reboot(self):
        self.reboots += 1

    def send(self, msg, payload=None):
        self.app.rx(self.enc.encode(msg, payload))
        self.app.poll()

    def msgs(self, cls=None):
        out = [it.msg for it in self.items if isinstance(it, pr.Frame)]
        return [m for m in out if cls is None or isinstance(m, cls)]

    def take(self, cls=None):
        m = self.msgs(cls)
        self.items.clear()
        return m


def test_hello_and_config_round_trip():
    h = Host()
    hello = h.take(pr.Hello)
    assert len(hello) == 1 and hello[0].labels == LABELS and hello[0].model_hash == bytes(range(8))
    assert hello[0].config_hash == app.config_hash8()
    h.send(pr.HelloRequest())
    h.send(pr.Cmd(pr.CMD_HELLO, 0))
    assert len(h.take(pr.Hello)) == 2
    h.send(pr.ConfigGet(pr.cfg_threshold(0)))
    assert h.take(pr.Config) == [pr.Config(pr.cfg_threshold(0), 128)]
    for key, value, applied in [
        (pr.cfg_threshold(0), 77, 77),
        (pr.CFG_HOLDOFF_MS, 800, 800),
        (pr.CFG_GATE_STRONG_MARGIN_Q8, 20 * 256, 5121),
        (pr.CFG_GAIN_DB_Q8, -6 * 256, -6 * 256),
        (pr.CFG_GATE_PEAK_MARGIN_Q8, 4 * 256, 1024),
        (pr.CFG_GATE_TONAL_MARGIN_Q8, 10 * 256, 2559),
        (pr.CFG_EARLY_PREROLL_FRAMES, 30, 30),
        (pr.CFG_EARLY_CONTINUE_MARGIN_Q8, 9 * 256, 2303),
        (pr.CFG_HABITUATE_ONSETS, 3, 3),
        (pr.CFG_HABITUATE_MARGIN_Q8, 6 * 256, 1535),
        (pr.CFG_HABITUATE_RECHECKS, 0, 0),
        (pr.CFG_HABITUATE_RECHECK_MS, 8000, 8000),
        (pr.CFG_HABITUATE_MAX_SCORE_Q8, 64, 64),
        (pr.CFG_AUDIO_STREAM, 2, 2),
        (pr.CFG_MODE, 1, 1),
    ]:
        h.send(pr.ConfigSet(key, value))
        assert h.take() == [pr.Config(key, applied)]
        h.send(pr.ConfigGet(key))
        assert h.take() == [pr.Config(key, applied)]
    assert app.parse_config_blob(h.saved)[pr.cfg_threshold(0)] == 77
    # a reboot keeps the persisted values
    h.send(pr.Cmd(pr.CMD_REBOOT, 0))
    assert h.reboots == 1 and h.app.rebooting
    assert [type(m) for m in h.take()] == [pr.Ack]
    h.app.reinit(3)
    assert h.take(pr.Hello)[0].reset_reason == 3
    assert h.app.config_get(pr.cfg_threshold(0)) == 77 and h.app.config_get(pr.CFG_MODE) == 1
    assert h.app.config_get(pr.CFG_EARLY_PREROLL_FRAMES) == 30
    assert h.app.config_get(pr.CFG_GATE_PEAK_MARGIN_Q8) == 1024
    h.send(pr.Cmd(pr.CMD_FACTORY_RESET, 0))
    assert h.app.config_get(pr.cfg_threshold(0)) == 128


@pytest.mark.parametrize(
    "msg, code",
    [
        ((0x42, b"?"), pr.ERRC_UNKNOWN_TYPE),
        ((pr.STATUS, bytes(35)), pr.ERRC_UNKNOWN_TYPE),
        ((pr.CMD, b"\x01"), pr.ERRC_BAD_PAYLOAD),
        ((pr.CONFIG_SET, b"\x01\x00"), pr.ERRC_BAD_PAYLOAD),
        ((pr.ConfigSet(0x0999, 1), None), pr.ERRC_BAD_CONFIG_KEY),
        ((pr.ConfigSet(pr.cfg_threshold(2), 1), None), pr.ERRC_BAD_CONFIG_KEY),
        ((pr.ConfigSet(pr.CFG_BAUD, 1200), None), pr.ERRC_BAD_VALUE),
        ((pr.ConfigSet(pr.CFG_AUDIO_STREAM, 3), None), pr.ERRC_BAD_VALUE),
        ((pr.ConfigSet(pr.CFG_EARLY_PREROLL_FRAMES, 6), None), pr.ERRC_BAD_VALUE),  # <= pre-roll
        (
            (pr.ConfigSet(pr.CFG_EARLY_PREROLL_FRAMES, 64), None),
            pr.ERRC_BAD_VALUE,
        ),  # a whole window
        ((pr.ConfigSet(pr.CFG_GATE_PEAK_MARGIN_Q8, -1), None), pr.ERRC_BAD_VALUE),
        ((pr.Cmd(77, 0), None), pr.ERRC_BAD_VALUE),
        ((pr.Inject(0, [1, 2, 3]), None), pr.ERRC_NO_CREDIT),
    ],
)
def test_errors(msg, code):
    h = Host()
    h.take()
    h.send(*msg)
    errs = h.take(pr.Error)
    assert len(errs) == 1 and errs[0].code == code
    assert errs[0].ref_seq == 0 and errs[0].message


def inject_all(h: Host, x: np.ndarray, frame: int = 512) -> None:
    """Stream x with INJECT, honouring credits, then STOP_STREAM."""
    h.send(pr.Cmd(pr.CMD_START_STREAM, 1))
    balance, pos = 0, 0
    limit = app.LIMITS["inject_samples"]
    while pos < x.size:
        for m in h.msgs(pr.Credit):
            balance += m.credits_samples
        h.items = [
            it for it in h.items if not (isinstance(it, pr.Frame) and isinstance(it.msg, pr.Credit))
        ]
        assert balance > 0, "node granted no credit"
        while balance > 0 and pos < x.size:
            n = min(frame, balance, x.size - pos)
            h.app.rx(h.enc.encode(pr.Inject(pos, x[pos : pos + n])))
            balance -= n
            pos += n
            st = h.app.stats
            assert st["credits"] + st["inject_queued"] <= limit
        h.app.poll()
    h.send(pr.Cmd(pr.CMD_STOP_STREAM, 0))


def events_of(msgs):
    return [
        (m.onset_sample, m.class_index, m.kind, m.duration_samples, m.hits, m.score)
        for m in msgs
        if isinstance(m, pr.Event)
    ]


def ref_events(node: core.Node):
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


def test_inject_events_equal_detector():
    x = audio.load(CLIP)
    x = np.concatenate([x, x[::-1], x])
    h = Host()
    h.take()
    inject_all(h, x, frame=500)
    msgs = h.take()
    assert isinstance(msgs[-1], pr.Ack)  # STOP's ACK comes after every EVENT
    node = core.Node(loud_classifier(), 2, thresholds=THRESHOLDS)
    node.process(x)
    node.flush()
    want = ref_events(node)
    assert len(want) >= 2 and events_of(msgs) == want
    st = h.app.stats
    assert (
        st["samples"] == x.size and st["inject_no_credit"] == 0 and st["input"] == app.INPUT_STOPPED
    )


def test_early_window_config_changes_the_detector():
    """CONFIG EARLY_PREROLL_FRAMES restarts the detector with the new early window: the app
    classifies the same windows and emits the same events as core.Node with that early
    pre-roll, and the windows differ from those without an early window."""
    x = audio.load(CLIP)
    x = np.concatenate([x, x[::-1], x])
    windows = {}
    for early in (0, 30):
        app_calls, ref_calls = [], []
        classify = loud_classifier()
        h = Host(
            classify=lambda w, f, calls=app_calls, cl=classify: (
                calls.append((w.start_sample, w.kind)) or cl(w, f)
            )
        )
        h.take()
        h.send(pr.ConfigSet(pr.CFG_EARLY_PREROLL_FRAMES, early))
        assert h.take() == [pr.Config(pr.CFG_EARLY_PREROLL_FRAMES, early)]
        inject_all(h, x, frame=500)
        node = core.Node(
            lambda w, f, calls=ref_calls, cl=classify: (
                calls.append((w.start_sample, w.kind)) or cl(w, f)
            ),
            2,
            thresholds=THRESHOLDS,
            early_preroll=early,
        )
        node.process(x)
        node.flush()
        assert events_of(h.take()) == ref_events(node) and node.events
        assert app_calls == ref_calls and app_calls
        windows[early] = app_calls
    assert windows[0] != windows[30] and any(k == "early" for _, k in windows[30])
    assert not any(k == "early" for _, k in windows[0])


def test_mic_adc_path_equals_core_stages():
    """feed_adc = ew_adc_to_pcm + decimator + detector, as the core stages run separately."""
    x = audio.load(CLIP, sr=32000).astype(np.int32)
    codes = np.clip((x >> 4) + 2048, 0, 4095).astype(np.uint16)
    h = Host()
    h.send(pr.ConfigSet(pr.CFG_AUDIO_STREAM, 1))
    h.take()
    for i in range(0, codes.size, 777):
        assert h.app.feed_adc(codes[i : i + 777]) == 0
        h.app.poll()
    h.send(pr.Cmd(pr.CMD_STOP_STREAM, 0))
    msgs = h.take()
    pcm = core.decimate(core.adc_to_pcm(codes), 2)
    node = core.Node(loud_classifier(), 2, thresholds=THRESHOLDS)
    node.process(pcm)
    node.flush()
    assert events_of(msgs) == ref_events(node) and node.events
    frames = [m for m in msgs if isinstance(m, pr.Audio)]
    got = np.concatenate([np.asarray(m.samples, np.int16) for m in frames])
    assert [m.first_sample for m in frames] == list(
        np.cumsum([0] + [len(m.samples) for m in frames[:-1]])
    )
    assert np.array_equal(got, pcm) and all(len(m.samples) <= 512 for m in frames)


def test_gain_applies_to_microphone_only():
    pcm = (np.sin(np.arange(4096) / 10) * 3000).astype(np.int16)
    h = Host()
    h.send(pr.ConfigSet(pr.CFG_GAIN_DB_Q8, round(6.0206 * 256)))
    h.send(pr.ConfigSet(pr.CFG_AUDIO_STREAM, 1))
    h.take()
    h.app.feed_pcm16(pcm)
    got = np.concatenate([np.asarray(m.samples) for m in h.take(pr.Audio)])
    assert np.abs(got - 2 * pcm[: got.size].astype(np.int32)).max() <= 2


def test_status_and_stats():
    clock = [0]
    h = Host(time_us=lambda: clock[0])
    h.take()
    h.app.feed_pcm16(audio.load(CLIP))
    clock[0] = 999_999
    h.app.poll()
    assert not h.msgs(pr.Status)
    clock[0] = 1_000_000
    h.app.poll()
    (s,) = h.take(pr.Status)
    st = h.app.stats
    assert s.sample_index == st["samples"] > 0 and s.inference_count == st["inference_count"] > 0
    assert (
        0 < s.gate_duty_q16 <= 65535
        and -100 * 256 < s.noise_floor_dbfs_q8 < s.level_dbfs_q8 + 60 * 256
    )
    assert s.mode == 0 and s.credits == 0


def test_send_error_truncates():
    h = Host()
    h.take()
    h.app.send_error(pr.ERRC_MODEL_MISMATCH, "x" * 300)
    (e,) = h.take(pr.Error)
    assert e.code == pr.ERRC_MODEL_MISMATCH and e.message == "x" * pr.MAX_ERROR_TEXT


def test_classifier_exception_is_raised_not_swallowed():
    def bad(window, f):
        raise RuntimeError("model exploded")

    h = Host(classify=bad)
    with pytest.raises(RuntimeError, match="exploded"):
        h.app.feed_pcm16(audio.load(CLIP))


def test_init_errors():
    with pytest.raises(ValueError):
        app.App(labels=[], write=print, classify=print)
    with pytest.raises(app.AppError):
        app.App(labels=["x" * 40, "y"], write=print, classify=print)
    with pytest.raises(app.AppError):
        app.App(labels=LABELS, write=print, classify=print, adc_rate_hz=44100)


def test_bench_app_builds_and_runs_on_host():
    """tools/bench/c/bench_app.c (rv32 figures for make bench) stays compilable and self-consistent."""
    d = bench.bench_data_dir()
    exe = build("bench_app", [BENCH_C / "bench_app.c"], include_dirs=[d, BENCH_C])
    res = run(exe, timeout=600)
    assert res.returncode == 0 and b"FAIL" not in res.stdout, res.stdout[-2000:]
    f = dict(line.split() for line in res.stdout.decode().splitlines())
    assert int(f["samples"]) > 16000 * 10 and int(f["tx_bytes_record"]) > 2 * int(f["samples"])


def test_settings_table_ranges_and_defaults_are_the_nodes():
    """Every ewcore.toml [[setting]]: the node accepts min and max (and 0 where zero_off), refuses
    one below / above, and a fresh node answers the table's numeric default."""
    h = Host()
    for s in pr.SETTINGS:
        if isinstance(s.default, (int, float)) and not isinstance(s.default, bool):
            assert h.app.config_get(s.key) == round(s.default * s.scale), s.name
    for s in pr.SETTINGS:
        ok = [s.min, s.max] + ([0] if s.zero_off else [])
        if s.id == "EARLY_PREROLL_FRAMES":  # must also exceed the pre-roll
            ok = [s.max, 0]
        if s.id == "HABITUATE_RECHECK_MS":  # must also be at least the gate's re-check period
            ok = [s.max]
        for v in ok:
            h.app.config_set(s.key, v)
        for v in (s.min - 1, s.max + 1):
            if s.zero_off and v == 0:
                continue
            with pytest.raises(app.AppError):
                h.app.config_set(s.key, v)
    with pytest.raises(app.AppError):
        h.app.config_set(pr.cfg_threshold(0), pr.THRESHOLD_OFF + 1)
    blob = app.parse_config_blob(h.saved)
    assert [k for k in blob if k < pr.CFG_THRESHOLD_BASE] == [
        s.key for s in pr.SETTINGS if s.persisted
    ]


def test_app_sources_are_layered():
    """ew_app_*.c call each other only downwards, in the order of src/ew_app_internal.h (no cycle)."""
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "firmware" / "lib" / "ewcore" / "src"
    order = re.findall(r"^ \*   (ew_app\w*\.c) ", (src / "ew_app_internal.h").read_text(), re.M)
    assert sorted(order) == sorted(p.name for p in src.glob("ew_app*.c")), order
    text = {f: (src / f).read_text() for f in order}
    defined = {
        name: f
        for f in order
        for name in re.findall(
            r"^(?!static)[a-z][\w \*]*?\b(ew_app_\w+)\([^;]*?\{", text[f], re.M | re.S
        )
    }
    assert {"ew_app_rx", "ew_app__send", "ew_app__process", "ew_app__config_set"} <= set(defined)
    for i, f in enumerate(order):
        for name in set(re.findall(r"\b(ew_app_\w+)\(", text[f])):
            j = order.index(defined[name]) if name in defined else -1
            assert j <= i, f"{f} calls {name} of {defined[name]}, a higher layer"
