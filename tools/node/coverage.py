"""What the node's gate and analysis windows cover: one home for the coverage measures that the
gate evaluation (tools.validate.gate_eval), the HIL report (tools.validate.hil) and the scene
benchmark (training.scene_eval) share."""

from __future__ import annotations

import math

import numpy as np

from tools.node import params

_P = params.default()
WINDOW_SAMPLES = _P.window_samples


def window_coverage(
    windows, offset: int, n: int, window_samples: int = WINDOW_SAMPLES
) -> np.ndarray:
    """Boolean mask of the n samples after `offset` that some analysis window covers
    (`windows`: objects with a `start_sample`, e.g. tools.node.core.WindowRec)."""
    covered = np.zeros(n, bool)
    for w in windows:
        a = max(w.start_sample - offset, 0)
        b = min(w.start_sample - offset + window_samples, n)
        if b > a:
            covered[a:b] = True
    return covered


def gate_open_in(trace, spans_s, hop: int, sample_rate_hz: int = _P.sample_rate_hz) -> list[bool]:
    """For each (onset_s, offset_s) span: was the gate open in at least one of its blocks?
    `trace`: a tools.node.core.Node trace (record array with a `gate_open` column), `hop`: the
    block length in samples."""
    out = []
    for onset_s, offset_s in spans_s:
        a = int(onset_s * sample_rate_hz) // hop
        b = int(math.ceil(offset_s * sample_rate_hz / hop))
        blocks = trace["gate_open"][a : max(b, a + 1)] if len(trace) else []
        out.append(bool(np.any(blocks)))
    return out
