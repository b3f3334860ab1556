"""The fixed-point front end against librosa's float log-mel on the shipped real clips."""

from pathlib import Path

import numpy as np
import pytest

from tools.node import audio, core, params

librosa = pytest.importorskip("librosa")
P = params.default()
CLIPS = sorted((Path(__file__).parent / "audio").glob("*.wav"))
OFFSET_Q8 = (45 + 2 * P.window_frac_bits - P.power_shift) * 256  # EW_LOGMEL_OFFSET_Q8
FLOOR_DB = -50.0  # cells above this (~92 dB below a full-scale tone) are compared


def _both(path):
    x = audio.load(path)
    ours = (core.logmel(x).astype(np.float64) - OFFSET_Q8) / 256 * params.DB_PER_LOG2
    y = core.dc_block(x).astype(np.float32) / 32768
    M = librosa.feature.melspectrogram(
        y=y,
        sr=P.sample_rate_hz,
        n_fft=P.frame_samples,
        hop_length=P.hop_samples,
        window="hann",
        center=False,
        power=2.0,
        n_mels=P.n_mels,
        fmin=P.fmin_hz,
        fmax=P.fmax_hz,
        htk=False,
        norm=None,
    )
    ref = 10 * np.log10(M.T + 1e-30)
    n = min(len(ours), len(ref))
    return ours[:n], ref[:n]


def test_mel_weights_match_librosa():
    w = librosa.filters.mel(
        sr=P.sample_rate_hz,
        n_fft=P.frame_samples,
        n_mels=P.n_mels,
        fmin=P.fmin_hz,
        fmax=P.fmax_hz,
        htk=False,
        norm=None,
    )
    starts, lens, weights = P.mel_sparse
    ours = np.zeros_like(w)
    off = 0
    for b, (s, n) in enumerate(zip(starts, lens)):
        ours[b, s : s + n] = np.array(weights[off : off + n]) / 32768
        off += n
    assert np.abs(ours - w).max() <= 0.5 / 32768 + 1e-6


@pytest.mark.parametrize("path", CLIPS, ids=lambda p: p.stem)
def test_logmel_matches_librosa(path):
    ours, ref = _both(path)
    live = ref > FLOOR_DB
    assert live.mean() > 0.3
    err = np.abs(ours - ref)[live]
    assert np.percentile(err, 99) < 0.1, f"p99 error {np.percentile(err, 99):.3f} dB"
    assert err.max() < 1.0, f"max error {err.max():.3f} dB"
    bands = [
        m
        for m in range(P.n_mels)
        if np.percentile(ref[:, m], 10) > FLOOR_DB and ref[:, m].std() > 0.5
    ]
    for m in bands:
        assert np.corrcoef(ours[:, m], ref[:, m])[0, 1] >= 0.999, m
