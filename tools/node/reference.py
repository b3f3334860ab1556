"""NumPy reference of the core's integer algorithms: the executable specification.

Written from the algorithm descriptions in the C headers (ew_cond.h, ew_gate.h,
ew_frontend.h), not from the C code, and vectorised where the algorithm allows.  Golden
vectors (tests/golden) are produced by this module; the C core (host, rv32imc under QEMU and
through tools.node.core) must reproduce them bit for bit.  All arithmetic is int64/uint64 with
floor shifts, which is what the C code's arithmetic right shifts do.
"""

from __future__ import annotations

import numpy as np

from tools.node import params as _params

P = _params.default()


def adc_to_pcm(codes) -> np.ndarray:
    c = np.minimum(np.asarray(codes, dtype=np.int64), (1 << P.adc_bits) - 1)
    return ((c - (1 << (P.adc_bits - 1))) * (1 << (16 - P.adc_bits))).astype(np.int16)


def sat16(v):
    return np.clip(v, -32768, 32767).astype(np.int16)


def dc_block(x) -> np.ndarray:
    """y = x[n] - x[n-1] + (1 - 2^-s) y[n-1], state in Q(frac), from rest."""
    x = np.asarray(x, dtype=np.int64)
    s, f = P.dc_pole_shift, P.dc_frac_bits
    out = np.empty(x.size, np.int64)
    acc, prev = 0, 0
    for i, v in enumerate(x.tolist()):
        acc = acc - (acc >> s) + ((v - prev) << f)
        prev = v
        out[i] = (acc + (1 << (f - 1))) >> f
    return sat16(out)


def decimate(x, factor: int) -> np.ndarray:
    """FIR (Q15) over a zero history; output m is aligned with input m*factor + factor - 1.
    (The C filter folds symmetric taps and skips zeros: the same integer sum.)"""
    taps = np.array(P.decim_taps_q15(factor), dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    padded = np.concatenate([np.zeros(taps.size - 1, np.int64), x])
    full = np.convolve(padded, taps[::-1], mode="valid")  # full[n] uses inputs n-nt+1..n
    acc = full[factor - 1 :: factor]
    return sat16((acc + (1 << 14)) >> 15)


def bitlen(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.uint64).copy()
    n = np.zeros(v.shape, np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        m = (v >> np.uint64(s)) != 0
        n[m] += s
        v[m] >>= np.uint64(s)
    return n + v.astype(np.int64)


def log2_q8(v) -> np.ndarray:
    """256 * log2(v) for v >= 1 (0 for 0): bit length + interpolated Q14 table."""
    v = np.asarray(v, dtype=np.uint64)
    lut = np.array(P.log2_lut_q14, dtype=np.int64)
    n = bitlen(v) - 1
    nn = np.maximum(n, 0).astype(np.uint64)
    hi = v >> (np.maximum(nn, np.uint64(15)) - np.uint64(15))
    lo = v << np.where(n < 15, np.uint64(15) - np.minimum(nn, 15), 0).astype(np.uint64)
    m = (np.where(n >= 15, hi, lo) & np.uint64(0x7FFF)).astype(np.int64)
    i, r = m >> 8, m & 0xFF
    y = lut[i] + (((lut[i + 1] - lut[i]) * r + 128) >> 8)
    out = (n << 8) + ((y + 32) >> 6)
    return np.where(v == 0, 0, out).astype(np.int64)


# ---- front end -----------------------------------------------------------------------------


def _mulq31(a, w):
    return (2 * a * w) >> 32  # floor(a * w / 2^31): the high word of (2a) * w


def _rmul(ar, ai, wr, wi):
    return _mulq31(ar, wr) - _mulq31(ai, wi), _mulq31(ar, wi) + _mulq31(ai, wr)


def power_spectrum(frames) -> np.ndarray:
    """P[k] = |X[k]|^2 >> power_shift of Hann-windowed frames, (n, frame) -> (n, bins) int64."""
    frames = np.asarray(frames, dtype=np.int64)
    m = P.frame_samples // 2
    w = np.array(P.hann_q15, dtype=np.int64)
    cos, sin = (np.array(t, dtype=np.int64) for t in P.twiddles_q31)
    fb = P.window_frac_bits
    xw = (frames * w + (1 << (14 - fb))) >> (15 - fb)
    perm = np.array(P.bitrev)
    re, im = xw[:, 0::2][:, perm].copy(), xw[:, 1::2][:, perm].copy()
    size = 2
    while size <= m:
        half = size // 2
        j = np.arange(half)
        starts = np.arange(0, m, size)
        ia = (starts[:, None] + j[None, :]).ravel()
        ib = ia + half
        wr = np.tile(cos[j * 2 * (m // size)], starts.size)
        wi = np.tile(sin[j * 2 * (m // size)], starts.size)
        tr, ti = _rmul(re[:, ib], im[:, ib], wr, wi)
        one = np.tile(j == 0, starts.size)  # the j = 0 twiddle is exactly 1: no product
        tr[:, one], ti[:, one] = re[:, ib][:, one], im[:, ib][:, one]
        ar, ai = re[:, ia], im[:, ia]
        re[:, ib], im[:, ib] = ar - tr, ai - ti
        re[:, ia], im[:, ia] = ar + tr, ai + ti
        size *= 2
    shift = P.power_shift + 2
    out = np.empty((frames.shape[0], m + 1), np.int64)
    out[:, 0] = (2 * (re[:, 0] + im[:, 0])) ** 2 >> shift
    out[:, m] = (2 * (re[:, 0] - im[:, 0])) ** 2 >> shift
    k = np.arange(1, m)
    zr, zi, cr, ci = re[:, k], im[:, k], re[:, m - k], im[:, m - k]
    er, ei = zr + cr, zi - ci
    orr, oi = zi + ci, cr - zr
    tr, ti = _rmul(orr, oi, cos[k], sin[k])
    xr, xi = er + tr, ei + ti
    out[:, 1:m] = (xr * xr + xi * xi) >> shift
    return out


def logmel_frames(frames) -> np.ndarray:
    """log2 Q8 mel energies of frames (already DC-blocked), (n, frame) -> (n, n_mels) uint16."""
    p = power_spectrum(frames).astype(np.uint64)
    starts, lens, weights = P.mel_sparse
    out = np.empty((p.shape[0], P.n_mels), np.int64)
    off = 0
    for b, (s, n) in enumerate(zip(starts, lens)):
        w = np.array(weights[off : off + n], dtype=np.uint64)
        off += n
        out[:, b] = log2_q8((p[:, s : s + n] * w).sum(axis=1, dtype=np.uint64) + np.uint64(1))
    return out.astype(np.uint16)


def frame(x) -> np.ndarray:
    x = np.asarray(x)
    n = max(0, (x.size - P.frame_samples) // P.hop_samples + 1)
    idx = np.arange(P.frame_samples)[None, :] + P.hop_samples * np.arange(n)[:, None]
    return x[idx]


def logmel(pcm) -> np.ndarray:
    """The node's log-mel of a 16 kHz stream: DC blocker, frames at hop, log-mel."""
    return logmel_frames(frame(dc_block(pcm)))


def quantize(logmel_q8, q: _params.Quant | None = None) -> np.ndarray:
    q = q or P.quant
    v = q.zero_point + (
        (np.asarray(logmel_q8, np.int64) * q.mult + (1 << (q.shift - 1))) >> q.shift
    )
    return np.clip(v, -128, 127).astype(np.int8)


# ---- gate -------------------------------------------------------------------------------------

GATE_FIELDS = (
    "power",
    "level_q8",
    "bg_q8",
    "excess_q8",
    "spread_q16",
    "flags",
    "nf_q8",
    "jump_q8",
    "onset_delay",
    "novelty_q8",
    "tonal_q8",
)
WARM, LOUD, ONSET, ABOVE = 1, 2, 4, 8


def block_powers(y) -> np.ndarray:
    """Mean square of each complete block of DC-blocked samples (uint32 range)."""
    y = np.asarray(y, dtype=np.int64)
    n = y.size // P.hop_samples
    b = y[: n * P.hop_samples].reshape(n, P.hop_samples)
    return (b * b).sum(axis=1) >> P.hop_log2


def _spread_q16(window: list[int]) -> int:
    """Eq. 3: variance of the min-max normalised powers, Q16, evaluated exactly."""
    mn, mx = min(window), max(window)
    rng = mx - mn
    if rng == 0:
        return 0
    s = max(0, rng.bit_length() - 15)
    r = rng >> s
    d = [(e - mn) >> s for e in window]
    L = len(window)
    num = L * sum(v * v for v in d) - sum(d) ** 2
    return (num << 16) // (L * L * r * r)


def _step(d: int, shift: int) -> int:
    """d / 2^shift truncated toward zero."""
    return -((-d) >> shift) if d < 0 else d >> shift


def tonality(logmel_q8) -> np.ndarray:
    """Per frame: max over bands b = 2..n-3 of m[b] - (m[b-2] + m[b+2]) // 2, at least 0."""
    m = np.asarray(logmel_q8, dtype=np.int64)
    if m.shape[0] == 0:
        return np.zeros(0, np.int64)
    t = m[:, 2:-2] - ((m[:, :-4] + m[:, 4:]) >> 1)
    return np.maximum(t.max(axis=1), 0)


def gate(powers, logmel_q8=None, cfg: dict | None = None) -> dict:
    """The gate's outputs for a sequence of block powers (see ew_gate.h).  logmel_q8: the
    log-mel frames of the same stream (frame j = blocks j, j+1); frame k-1 updates the tonality
    before block k is decided.  Without frames the tonality stays 0."""
    c = dict(P.gate_fixed)
    c.update(cfg or {})
    L = c["window_blocks"]
    levels = log2_q8(np.asarray(powers, dtype=np.uint64) + np.uint64(1)).tolist()
    tonal_frames = tonality(logmel_q8).tolist() if logmel_q8 is not None else []
    out = {k: [] for k in GATE_FIELDS}
    ring: list[int] = []
    bg = nf = peak = ton = 0
    above_run = quiet_run = cand_age = cand_bg = 0
    impulsive = False

    def track(state, p, fall, rise):
        d = p * 256 - state
        return state + _step(d, fall if d < 0 else rise)

    for k, (e, p) in enumerate(zip((int(v) for v in powers), levels)):
        if 1 <= k <= len(tonal_frames):
            ton += _step(tonal_frames[k - 1] - ton, c["tonal_shift"])
        ring.append(e)
        if len(ring) > L:
            ring.pop(0)
        other = max(ring[:-2], default=0)  # every block but this one and the previous
        j = p - int(log2_q8(np.uint64(other + 1)))
        if k == 0:
            bg = nf = p * 256
            peak = p
        b, fl = bg >> 8, nf >> 8
        x = p - b
        nov = p - peak
        s = _spread_q16(ring)
        f, delay, candidate = 0, 0, False
        if k + 1 > c["warmup_blocks"]:
            f |= WARM
            if p >= c["floor_q8"]:
                if p - fl >= c["sustain_margin_q8"]:
                    f |= ABOVE
                candidate = (
                    x >= c["onset_margin_q8"]
                    and j >= c["jump_margin_q8"]
                    and nov >= c["peak_margin_q8"]
                    and (s <= c["spread_max_q16"] or x >= c["strong_margin_q8"])
                )
        if cand_age > 0:
            cand_age = cand_age + 1 if p - cand_bg >= c["confirm_margin_q8"] else 0
        if cand_age == 0 and candidate:
            cand_age, cand_bg = 1, b
        if cand_age > 0 and cand_age >= c["onset_blocks"]:
            f |= ONSET
            delay, cand_age = cand_age - 1, 0
        # an impulsive start: an onset or a strong rise before the sound has become sustained
        start = bool(f & ONSET) or bool(f & ABOVE and x >= c["strong_margin_q8"])
        if start and above_run < c["sustain_blocks"]:
            impulsive = True
        if f & ABOVE:
            above_run, quiet_run = above_run + 1, 0
        else:
            above_run, quiet_run = 0, quiet_run + 1
            if quiet_run >= c["sustain_blocks"]:
                impulsive = False
        if above_run >= c["sustain_blocks"] and (ton >= c["tonal_margin_q8"] or impulsive):
            f |= LOUD
        bg = track(bg, p, c["bg_fall_shift"], c["bg_rise_shift"])
        nf = track(nf, p, c["nf_fall_shift"], c["nf_rise_shift"])
        peak = max(p, peak - c["peak_decay_q8"])
        for name, v in zip(GATE_FIELDS, (e, p, b, x, s, f, fl, j, delay, nov, ton)):
            out[name].append(v)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


def gate_stream(pcm, cfg: dict | None = None) -> dict:
    """The gate as the node runs it: block powers and log-mel frames of the DC-blocked stream."""
    return gate(block_powers(dc_block(pcm)), logmel(pcm), cfg)
