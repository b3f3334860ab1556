"""Behaviour of the C core through its Python binding: streaming invariance, conditioning,
detector decisions, configuration errors."""

import csv
from pathlib import Path

import numpy as np
import pytest

from tools.node import audio, core, params

AUDIO = Path(__file__).parent / "audio"
SR = 16000
HOP = core.HOP
P = params.default()


def clip(name):
    return audio.load(AUDIO / name)


def burst_stream(onsets_s, total_s=6.0, burst_ms=60, level=12000, floor=60, seed=1, gains=None):
    """Low noise with noise bursts at known onsets (samples), each scaled by its gain."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, floor, int(total_s * SR))
    onsets = [int(t * SR) for t in onsets_s]
    for o, g in zip(onsets, gains or [1.0] * len(onsets)):
        n = int(burst_ms * SR / 1000)
        x[o : o + n] += g * rng.normal(0, level, n) * np.exp(-np.arange(n) / (n / 3))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16), onsets


def feature_classifier(window, feats):
    """Deterministic scores from the features, so decisions depend on every feature value."""
    s = int(feats.astype(np.int64).sum())
    return [s % 256, (s // 7) % 256, 255 - s % 256]


# ---- streaming invariance ------------------------------------------------------------------------


def _run(x, chunk, mode="gated"):
    node = core.Node(
        feature_classifier,
        3,
        thresholds=[0.3, 0.5, 0.7],
        mode=mode,
        keep_features=True,
        trace=True,
        continuous_stride=17,
    )
    if chunk is None:
        node.process(x)
    else:
        for i in range(0, x.size, chunk):
            node.process(x[i : i + chunk])
    node.flush()
    return node


@pytest.mark.parametrize("mode", ["gated", "continuous"])
def test_output_does_not_depend_on_chunk_sizes(mode):
    x = np.concatenate(
        [
            clip("background_rain_1.wav"),
            clip("gunshot_2.wav"),
            clip("siren_1.wav"),
            clip("glass_breaking_1.wav"),
        ]
    )
    ref = _run(x, None, mode)
    assert len(ref.windows) >= 4 and ref.events, "the stream must exercise windows and events"
    for chunk in (1, 7, 256, 4096):
        n = _run(x if chunk != 1 else x[: 3 * SR], chunk, mode)
        r = ref if chunk != 1 else _run(x[: 3 * SR], None, mode)
        assert n.events == r.events
        assert n.windows == r.windows
        assert n.stats == r.stats
        np.testing.assert_array_equal(n.trace, r.trace)
        for a, b in zip(n.features, r.features):
            np.testing.assert_array_equal(a, b)


def test_window_features_are_the_frame_features():
    """The window handed to the classifier is exactly the stream's frames start..start+63."""
    x = np.concatenate([clip("gunshot_1.wav"), clip("dog_bark_1.wav")])
    node = core.Node(keep_features=True)
    node.process(x)
    node.flush()
    all_feats = core.features(np.concatenate([x, np.zeros(SR * 2, np.int16)]))
    pad = core.FRAMES_PER_WINDOW  # frames before the stream are silence
    all_feats = np.concatenate(
        [np.full((pad, core.N_MELS), core.P.quant.zero_point, np.int8), all_feats]
    )
    assert node.windows and min(w.start_sample for w in node.windows) < 0  # gunshot at 0.5 s
    for w, f in zip(node.windows, node.features):
        j = w.start_sample // core.HOP + pad
        np.testing.assert_array_equal(f, all_feats[j : j + core.FRAMES_PER_WINDOW])


# ---- conditioning ------------------------------------------------------------------------------------


def _tone(freq, sr, seconds=0.5, amp=16000):
    t = np.arange(int(sr * seconds)) / sr
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _gain_db(y):
    y = y[len(y) // 4 :].astype(np.float64)
    return 20 * np.log10(np.sqrt(np.mean(y * y)) / (16000 / np.sqrt(2)) + 1e-12)


@pytest.mark.parametrize("factor", [2, 3])
def test_decimator_passband_and_alias_rejection(factor):
    sr = SR * factor
    for f in (200, 1000, 4000, 6000):
        assert abs(_gain_db(core.decimate(_tone(f, sr), factor))) < 0.1, f
    assert -3.0 < _gain_db(core.decimate(_tone(7000, sr), factor)) < -0.1
    # tones that would fold into the 0-6.5 kHz band are removed (see ewcore.toml)
    for f in (9500, 12000, sr / 2 - 500):
        assert _gain_db(core.decimate(_tone(f, sr), factor)) < -60, f


@pytest.mark.parametrize("factor", [2, 3])
def test_decimator_full_scale_does_not_wrap(factor):
    """Full-scale square (-32768 included): the integer filter equals the exact filter, saturated."""
    x = np.tile(np.array([32767] * 8 + [-32768] * 8, np.int16), 600)
    y = core.decimate(x, factor).astype(np.int64)
    taps = np.array(P.decim_taps_q15(factor), dtype=np.float64)
    exact = (
        np.convolve(np.concatenate([np.zeros(taps.size - 1), x]), taps[::-1], "valid")[
            factor - 1 :: factor
        ]
        / 32768
    )
    np.testing.assert_allclose(y, np.clip(np.round(exact), -32768, 32767), atol=1)
    assert np.abs(y).max() == 32767 or np.abs(y).max() == 32768


def test_adc_codes_to_pcm():
    np.testing.assert_array_equal(core.adc_to_pcm([0, 2048, 4095, 9999]), [-32768, 0, 32752, 32752])


def test_dc_blocker_removes_adc_bias_and_keeps_audio():
    codes = (
        2048 + 300 + np.round(200 * np.sin(2 * np.pi * 300 * np.arange(32000 * 2) / 32000))
    ).astype(np.uint16)
    y = core.dc_block(core.decimate(core.adc_to_pcm(codes), 2))
    tail = y[SR:].astype(np.float64)
    assert abs(tail.mean()) < 2.0  # the bias (300 codes = 4800 LSB) is gone
    assert abs(20 * np.log10(tail.std() * np.sqrt(2) / (200 * 16))) < 0.5  # 300 Hz passes


# ---- detector decisions --------------------------------------------------------------------------


def test_event_onset_is_sample_accurate():
    x, onsets = burst_stream([2.0])
    node = core.Node(lambda w, f: [230], 1)
    node.process(x)
    node.flush()
    kinds = [e.kind for e in node.events]
    assert kinds == ["onset", "end"]
    ev = node.events[0]
    assert abs(ev.onset_sample - onsets[0]) <= 16
    assert ev.class_index == 0 and ev.score == 230
    assert 0.03 * SR <= ev.duration_samples <= 0.3 * SR


def test_threshold_and_disabled_class():
    x, _ = burst_stream([2.0])
    for scores, thr, expect in (
        ([150, 0], [0.6, 0.6], 0),
        ([154, 0], [0.6, 0.6], 1),
        ([250, 240], [None, 0.9], 1),
        ([250, 10], [None, 0.5], 0),
    ):
        node = core.Node(lambda w, f, s=scores: s, 2, thresholds=thr)
        node.process(x)
        node.flush()
        onsets = [e for e in node.events if e.kind == "onset"]
        assert len(onsets) == expect, (scores, thr)
        if expect and thr[0] is None:
            assert onsets[0].class_index == 1


def test_repeated_hits_merge_within_holdoff_and_split_beyond():
    # the second burst is 6 dB louder: an equal one 1.2 s later is not new to the gate (peak novelty)
    x, onsets = burst_stream([1.5, 2.7, 6.5], total_s=9.0, gains=[0.5, 1.0, 1.0])
    node = core.Node(lambda w, f: [220], 1)
    node.process(x)
    node.flush()
    # 60-ms bursts: each onset's early window only (the sound is over when it completes)
    assert [w.kind for w in node.windows] == ["early"] * 3
    on = [e for e in node.events if e.kind == "onset"]
    end = [e for e in node.events if e.kind == "end"]
    assert len(on) == 2 and len(end) == 2
    assert end[0].hits == 2 and end[1].hits == 1
    assert abs(end[0].onset_sample - onsets[0]) <= 16
    assert end[0].onset_sample + end[0].duration_samples >= onsets[1]


def test_early_window_reports_an_onset_sooner_and_the_main_window_merges():
    P = core.P
    early, pre = P.detector["early_preroll_frames"], P.detector["preroll_frames"]
    assert pre < early < core.FRAMES_PER_WINDOW
    arrivals = {}
    for burst_ms, e_pre, kinds in (
        (60, early, ["early"]),
        (800, early, ["early", "onset"]),
        (60, 0, ["onset"]),
        (800, 0, ["onset"]),
    ):
        # a short burst is over when the early window completes; a 0.8-s one is still on
        x, onsets = burst_stream([2.0], burst_ms=burst_ms)
        if burst_ms > 100:
            x, onsets = burst_stream([2.0], burst_ms=60)
            n = int(0.8 * SR)
            x[onsets[0] : onsets[0] + n] += (
                np.random.default_rng(5).normal(0, 3000, n).astype(np.int16)
            )
        seen = []
        node = core.Node(lambda w, f, seen=seen: (seen.append(w), [230])[1], 1, early_preroll=e_pre)
        node.process(x)
        node.flush()
        assert [w.kind for w in seen] == kinds, (burst_ms, e_pre)
        on = [e for e in node.events if e.kind == "onset"]
        assert len(on) == 1 and abs(on[0].onset_sample - onsets[0]) <= 16
        assert node.events[-1].hits == len(kinds)  # the main window's hit merged
        k = seen[0].trigger_block
        starts = {"early": k - early, "onset": k - pre}
        assert [w.start_sample // HOP for w in seen] == [starts[c] for c in kinds]
        assert {w.trigger_sample for w in seen} == {on[0].onset_sample}
        assert node.stats["windows_dropped"] == (1 if kinds == ["early"] else 0)
        # the EVENT leaves when the first window is complete
        arrivals[(burst_ms, e_pre)] = (
            seen[0].start_sample // HOP + core.FRAMES_PER_WINDOW
        ) * HOP - onsets[0]
    assert arrivals[(60, 0)] - arrivals[(60, early)] == (early - pre) * HOP
    assert arrivals[(800, early)] == arrivals[(60, early)]
    assert arrivals[(60, early)] <= (core.FRAMES_PER_WINDOW - early + 2) * HOP


def test_early_window_at_the_stream_start_sees_silence_before_it():
    x, onsets = burst_stream([0.3], total_s=3.0)  # onset block < early pre-roll
    node = core.Node(lambda w, f: [0], 1, keep_features=True)
    node.process(x)
    node.flush()
    (w,), (f,) = node.windows, node.features
    k = w.trigger_block
    assert (
        w.kind == "early"
        and w.start_sample == (k - core.P.detector["early_preroll_frames"]) * HOP < 0
    )
    before = -w.start_sample // HOP  # frames before the stream: the zero point
    assert (f[:before] == core.P.quant.zero_point).all()
    assert (f[before:] == core.features(x)[: core.FRAMES_PER_WINDOW - before]).all()
    assert (f[before:] != core.P.quant.zero_point).any()


def test_early_preroll_is_validated():
    for bad in (core.P.detector["preroll_frames"], core.FRAMES_PER_WINDOW):
        with pytest.raises(ValueError):
            core.Node(early_preroll=bad)


def test_different_classes_make_separate_events():
    x, _ = burst_stream([1.5, 2.7], total_s=5.0, gains=[0.5, 1.0])
    node = core.Node(lambda w, f: [220, 0] if w.trigger_sample < 2 * SR else [0, 220], 2)
    node.process(x)
    node.flush()
    assert [(e.class_index, e.kind) for e in node.events] == [
        (0, "onset"),
        (1, "onset"),
        (0, "end"),
        (1, "end"),
    ]


def test_continuous_mode_classifies_every_stride():
    x = clip("background_rain_1.wav")
    node = core.Node(lambda w, f: [0], 1, mode="continuous", continuous_stride=4)
    node.process(x)
    frames = node.stats["frames"]
    assert len(node.windows) == (frames - core.FRAMES_PER_WINDOW) // 4 + 1
    assert all(w.kind == "continuous" for w in node.windows)
    gated = core.Node(lambda w, f: [0], 1)
    gated.process(x)
    assert len(gated.windows) == 0  # the gate stays closed on steady rain


def test_sustained_event_is_rechecked_while_it_lasts():
    x = clip("siren_1.wav")
    node = core.Node(trace=True)
    node.process(np.concatenate([audio.lead_in(x), x]))
    node.flush()
    kinds = [w.kind for w in node.windows]
    assert kinds[:2] == ["early", "onset"] and kinds.count("recheck") >= 2


def test_recurring_equal_impulses_are_not_new_but_louder_ones_are():
    """Peak novelty: a burst as loud as one 0.8 s earlier does not reopen the gate (crackling
    fire, dripping water); one 6 dB louder does, and so does an equal one 5 s later."""
    x, _ = burst_stream([1.5, 2.3, 3.1, 8.1], total_s=10.0, gains=[0.5, 0.5, 1.0, 1.0])
    node = core.Node()
    node.process(x)
    node.flush()
    assert [round(w.trigger_sample / SR, 1) for w in node.windows] == [1.5, 3.1, 8.1]


def test_noise_like_sustained_sound_is_not_rechecked():
    """LOUD needs a tonal sound (siren) or an impulsive start: noise that swells slowly 20 dB
    (surf, rain coming in) opens no window; the same noise starting abruptly is re-checked."""
    rng = np.random.default_rng(3)
    n = 8 * SR
    env = np.clip((np.arange(n) - 2 * SR) / (2.0 * SR), 0, 1)  # 0 -> 1 over 2 s from t = 2 s
    slow = rng.normal(0, 30, n) * (1 + 9 * env)
    node = core.Node(trace=True)
    node.process(np.clip(np.round(slow), -32768, 32767).astype(np.int16))
    assert node.windows == [] and (node.trace["flags"] & 2).sum() == 0
    step = rng.normal(0, 30, n) * np.where(np.arange(n) < 2 * SR, 1, 100)  # +40 dB at once
    node = core.Node()
    node.process(np.clip(np.round(step), -32768, 32767).astype(np.int16))
    node.flush()
    assert [w.kind for w in node.windows][:3] == ["early", "onset", "recheck"]


def test_classifier_failure_is_counted_and_makes_no_decision():
    x, _ = burst_stream([2.0])

    def broken(w, f):
        raise RuntimeError("model exploded")

    node = core.Node(broken, 1)
    with pytest.raises(RuntimeError, match="model exploded"):
        node.process(x)
    assert node.stats["classify_errors"] == 1 and node.events == []


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_classes=17),
        dict(gate={"bg_fall_shift": 0}),
        dict(gate={"onset_blocks": 5}),
        dict(gate={"peak_decay_q8": 0}),
        dict(gate={"tonal_shift": 16}),
        dict(continuous_stride=0),
        dict(quant=params.Quant(0.75, 0, 0)),
        dict(habituate_recheck_s=0.5),  # faster than the gate's re-checks
        dict(habituate_max_score=1.0),  # Q0.8 256 would wrap to 0
        dict(habituate_recheck_max_score=0.999),
        dict(habituate_max_score=-0.01),
    ],
)
def test_invalid_configuration_is_rejected(kwargs):
    with pytest.raises(ValueError):
        core.Node(**kwargs)


def test_scores_become_q8_bytes_or_a_clear_error():
    assert (
        params.score_q8(0.375) == 96 and params.score_q8(0.0) == 0 and params.score_q8(0.996) == 255
    )
    for bad in (1.0, 0.999, -0.01):
        with pytest.raises(ValueError, match="habituate_max_score"):
            params.score_q8(bad, "habituate_max_score")
    with pytest.raises(
        ValueError, match="habituate_max_score"
    ):  # ewcore.toml is checked the same way
        params.load(overrides={"detector": {"habituate_max_score": 1.0}})


def test_binding_structs_match_generated_defaults():
    """ctypes mirrors of the C structs: the C defaults read back equal the parameter file."""
    cfg = core.NodeConfig()
    core.lib.ew_node_config_default(cfg, 3)
    for name, value in P.gate_fixed.items():
        if name != "window_blocks":
            assert getattr(cfg.gate, name) == value, name
    assert (cfg.quant.mult, cfg.quant.shift, cfg.quant.zero_point) == (
        P.quant.mult,
        P.quant.shift,
        P.quant.zero_point,
    )
    d = P.detector_fixed
    assert cfg.holdoff_samples == d["holdoff_samples"] and cfg.preroll_frames == d["preroll_frames"]
    assert list(cfg.thresholds_q8[:3]) == [d["default_threshold_q8"]] * 3
    assert cfg.n_classes == 3 and cfg.continuous_stride == d["continuous_stride_frames"]


def test_full_scale_input_is_finite_and_ordered():
    """-32768 everywhere and a full-scale square: the log-mel is the loudest the node can see."""
    sq = np.tile(np.array([32767] * 8 + [-32768] * 8, np.int16), 2000)
    L_sq = core.logmel(sq)
    L_quiet = core.logmel((sq // 256).astype(np.int16))
    # 48 dB less input gives 48 dB less output in every band that carries the square's energy
    band = L_sq.mean(axis=0) > L_sq.mean() - 200
    diff_db = (L_sq - L_quiet)[10:, band].mean() * params.DB_PER_LOG2 / 256
    assert abs(diff_db - 48.16) < 0.5
    assert L_sq.max() < 16384


def test_manifest_lists_every_shipped_clip():
    rows = list(csv.DictReader(open(AUDIO / "manifest.csv")))
    assert {r["path"] for r in rows} == {p.name for p in AUDIO.glob("*.wav")}
    for r in rows:  # redistributable: the clip's own licence is CC0 or CC BY
        lic = r["licence"]
        assert "unspecified" not in lic and ("CC0" in lic or "NC" not in lic), r["path"]


# ---- habituation: the classifier's confident rejections quiet the gate ---------------------------


def _onset_triggers(node):
    return sorted({w.trigger_block for w in node.windows if w.kind in ("onset", "early")})


def _habituation_run(
    scores, gains, habituate=None, thresholds=(0.5, None), spacing_s=2.0, onsets_s=None
):
    """Bursts every spacing_s from 1 s (or at onsets_s), each scaled by its gain; the classifier
    answers scores(window) for classes [target, negative]; returns (node, trigger times in s,
    onsets in samples)."""
    onsets_s = onsets_s or [1.0 + spacing_s * i for i in range(len(gains))]
    x, onsets = burst_stream(onsets_s, total_s=onsets_s[-1] + 2.0, gains=gains)
    node = core.Node(lambda w, f: scores(w), 2, thresholds=list(thresholds), habituate=habituate)
    node.process(x)
    node.flush()
    return node, [round(k * HOP / SR) for k in _onset_triggers(node)], onsets


def test_habituation_stops_windows_on_repeated_rejected_impulses():
    reject = lambda w: [0, 255]  # confidently "not a target"
    gains = [1.0] * 6
    off, t_off, _ = _habituation_run(reject, gains, habituate=0)
    on, t_on, _ = _habituation_run(reject, gains)
    assert t_off == [1, 3, 5, 7, 9, 11]  # without habituation every burst is classified
    assert t_on == [1]  # with it, the first one only
    assert on.stats["onsets_habituated"] == 5 and off.stats["onsets_habituated"] == 0
    assert P.detector["habituate_onsets"] == 1  # the shipped default is on
    # N = 2: two rejected onsets before the node habituates
    two, t_two, _ = _habituation_run(reject, gains, habituate=2)
    assert t_two == [1, 3]


def test_habituated_node_still_opens_on_a_louder_impulse_and_a_hit_ends_it():
    target_at = {}

    def scores(w):  # the burst at target_at["s"] is a target
        return [230, 20] if abs(w.trigger_sample / SR - target_at.get("s", -9)) < 0.1 else [0, 255]

    # 12 dB louder (at 5 s) opens a habituated node: 1, 3 (suppressed), 5
    at = [1.0, 3.0, 5.0, 11.0]  # 11 s: 8 s after the last suppressed onset
    for hit in (False, True):
        target_at["s"] = 5.0 if hit else -9
        node, t, onsets = _habituation_run(scores, [0.5, 0.5, 2.0, 0.5], onsets_s=at)
        # a rejected loud burst raises the habituation level: the quiet one at 11 s stays
        # suppressed; a hit ends the habituation: it is classified again
        assert t == ([1, 5, 11] if hit else [1, 5]), hit
        assert node.stats["onsets_habituated"] == (1 if hit else 2)
        ev = [e for e in node.events if e.kind == "onset"]
        assert len(ev) == hit and (not hit or abs(ev[0].onset_sample - onsets[2]) <= 16)


def test_habituation_needs_a_confident_rejection_and_enabled_classes():
    at = int(P.detector["habituate_max_score"] * 256)
    assert 0 < at < 128  # the shipped rule: below the 0.5 threshold
    unsure = lambda w: [at, 255 - at]  # below the threshold, but not below the max score
    node, t, _ = _habituation_run(unsure, [1.0] * 4)
    assert t == [1, 3, 5, 7] and node.stats["onsets_habituated"] == 0
    sure = lambda w: [at - 1, 256 - at]  # one step below the max score: rejected with confidence
    node, t, _ = _habituation_run(sure, [1.0] * 4)
    assert t == [1] and node.stats["onsets_habituated"] == 3
    # no enabled class (training's feature extraction, gate-only measurements): never habituates
    node, t, _ = _habituation_run(lambda w: [0, 255], [1.0] * 4, thresholds=(None, None))
    assert t == [1, 3, 5, 7]


def test_habituation_expires_after_quiet_time():
    hold_s = P.detector["habituate_s"]
    reject = lambda w: [0, 255]
    # second burst within the hold time: suppressed; third one after more than the hold: classified
    node, t, _ = _habituation_run(reject, [1.0, 1.0], spacing_s=hold_s - 2)
    assert t == [1]
    node, t, _ = _habituation_run(reject, [1.0, 1.0], spacing_s=hold_s + 2)
    assert t == [1, 1 + int(hold_s + 2)]


# ---- re-check habituation: a sustained sound the classifier keeps rejecting is looked at less often

RECHECK_BLOCKS = P.gate_fixed["recheck_blocks"]
SLOW_BLOCKS = P.detector_fixed["habituate_recheck_blocks"]
N_RECHECKS = P.detector["habituate_rechecks"]


def _noise_episodes(spans_s, total_s, seed=5):
    """Noise at +40 dB over a quiet floor during each (start_s, end_s): abrupt starts, so the
    gate calls it a sustained event (LOUD) and re-checks it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(total_s * SR)) / SR
    on = np.zeros(t.size, bool)
    for a, b in spans_s:
        on |= (t >= a) & (t < b)
    x = rng.normal(0, 30, t.size) * np.where(on, 100, 1)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _recheck_run(x, scores, **kw):
    kw.setdefault("thresholds", [0.5, None])
    node = core.Node(lambda w, f: scores(w), 2, **kw)
    node.process(x)
    node.flush()
    return node, [w.trigger_block for w in node.windows if w.kind == "recheck"]


def test_rejected_rechecks_slow_down_and_a_hit_restores_them():
    assert N_RECHECKS >= 1 and SLOW_BLOCKS > 2 * RECHECK_BLOCKS  # the shipped default is on
    x = _noise_episodes([(2.0, 30.0)], 31.0)
    unsure = lambda w: [100, 155]  # no hit, not a confident rejection either
    off, r_off = _recheck_run(x, unsure, habituate_rechecks=0)
    (fast,) = set(np.diff(r_off))  # back to back: the gate's period (+1: the
    assert fast - RECHECK_BLOCKS in (0, 1) and len(r_off) >= 20  # window completes first)
    on, r_on = _recheck_run(x, unsure)
    gaps = np.diff(r_on)
    assert list(gaps[: N_RECHECKS - 1]) == [fast] * (N_RECHECKS - 1)
    assert set(gaps[N_RECHECKS - 1 :]) == {SLOW_BLOCKS}
    assert on.stats["rechecks_slowed"] == len(gaps) - (N_RECHECKS - 1) > 0
    assert off.stats["rechecks_slowed"] == 0
    # the classifier recognises the sound from 8 s on: a hit brings the re-checks back
    hit_from = int(8.0 * SR / HOP)
    late = lambda w: [230, 20] if w.trigger_block >= hit_from else [100, 155]
    node, r = _recheck_run(x, late)
    first_hit = next(b for b in r if b >= hit_from)
    after = np.diff([b for b in r if b >= first_hit])
    assert len(after) >= 4 and set(after) == {fast}  # until the floor has caught up (~21 s)
    assert [e.class_index for e in node.events if e.kind == "onset"] == [0]
    # a node with no enabled class (training, gate-only measurements) never slows down
    _, r_none = _recheck_run(x, unsure, thresholds=[None, None])
    assert r_none == r_off
    # nor does a near miss: no hit, but a class scored at least habituate_recheck_max_score
    near = P.detector["habituate_recheck_max_score"]
    _, r_near = _recheck_run(x, lambda w: [int(near * 256) + 10, 20], thresholds=[0.9, None])
    assert r_near == r_off


def test_rechecks_stay_back_to_back_for_a_while_after_a_hit():
    """A hit (here: the onset's windows) keeps the node alert: re-checks rejected within
    habituate_s of it do not count, so they follow each other until then, and slow down after."""
    hold_blocks = P.detector_fixed["habituate_blocks"]
    x = _noise_episodes([(2.0, 30.0)], 31.0)
    node, r = _recheck_run(x, lambda w: [230, 20] if w.kind in ("onset", "early") else [100, 155])
    hit_block = (
        max(w.trigger_block for w in node.windows if w.kind == "onset") + core.FRAMES_PER_WINDOW
    )
    gaps = np.diff(r)
    alert = [g for b, g in zip(r[1:], gaps) if b < hit_block + hold_blocks]
    assert len(alert) >= 8 and set(alert) == {gaps[0]} and gaps[0] <= RECHECK_BLOCKS + 1
    assert gaps[-1] == SLOW_BLOCKS


def test_a_louder_sustained_sound_is_rechecked_at_once():
    """Re-checks slowed on a rejected sound speed up again for a block louder than it + margin."""
    margin_db = P.detector["habituate_margin_db"]
    x = _noise_episodes([(2.0, 30.0)], 31.0).astype(np.float64)
    t_step = 12.0
    x[int(t_step * SR) :] *= 10 ** ((margin_db + 6) / 20)  # 6 dB over the margin
    x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    _, r = _recheck_run(x, lambda w: [100, 155])
    step = int(t_step * SR / HOP)
    before = [b for b in r if b < step]
    after = [b for b in r if b >= step]
    assert before[-1] - before[-2] == SLOW_BLOCKS  # slowed before the step
    assert after[0] - before[-1] < SLOW_BLOCKS and after[0] - step <= RECHECK_BLOCKS + 1


def test_recheck_habituation_expires():
    hold_s = P.detector["habituate_s"]
    unsure = lambda w: [100, 155]
    for gap_s, slowed in ((2.0, True), (hold_s + 3.0, False)):
        x = _noise_episodes([(2.0, 10.0), (10.0 + gap_s, 18.0 + gap_s)], 19.0 + gap_s)
        node, r = _recheck_run(x, unsure)
        onset = max(w.trigger_block for w in node.windows if w.kind == "onset")  # second episode
        first = min(b for b in r if b > onset)
        # the second episode is re-checked as soon as its onset window is done, unless the node
        # still remembers rejecting the first one
        assert (
            (first - onset == SLOW_BLOCKS) if slowed else (first - onset <= RECHECK_BLOCKS + 1)
        ), gap_s


def test_ctypes_mirrors_match_the_c_layout():
    """Every ctypes.Structure mirror of a C struct is checked at import against the compiler's
    sizeof / offsetof (tools/node/_ewcore_module.c); a wrong mirror is one line naming struct and field."""
    import ctypes as C

    from tools.node import app

    core.check_layout({**core.MIRRORS, **app.MIRRORS})
    mirrored = {cls.__name__ for cls in {**core.MIRRORS, **app.MIRRORS}}
    for mod in (core, app):  # no mirror escapes the check
        structs = {
            n
            for n, v in vars(mod).items()
            if isinstance(v, type)
            and issubclass(v, C.Structure)
            and v.__module__ == mod.__name__
            and n != "LayoutRow"
        }
        assert structs <= mirrored, structs - mirrored

    def mirror(fields):
        return type("Event", (C.Structure,), {"_fields_": fields})

    good = list(core.Event._fields_)
    wide = [(n, C.c_uint16 if n == "score" else t) for n, t in good]
    renamed = [("class_idx" if n == "class_index" else n, t) for n, t in good]
    for fields, msg in [
        (
            wide,
            "Event of ew_event_t: field score at offset 14 (2 bytes), C has offset 13 (1 bytes)",
        ),
        (renamed, "Event of ew_event_t: field class_idx where C has class_index"),
        (good[:-1], "Event of ew_event_t: field hits only in C"),
        (good + [("extra", C.c_uint8)], "Event of ew_event_t: field extra only in the mirror"),
    ]:
        with pytest.raises(core.LayoutError) as e:
            core.check_layout({mirror(fields): "ew_event_t"})
        assert str(e.value) == f"ctypes mirror {msg}" and "\n" not in str(e.value)
    with pytest.raises(core.LayoutError, match="not in the C layout table"):
        core.check_layout({mirror(good): "ew_nothing_t"})
