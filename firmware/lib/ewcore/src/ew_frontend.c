/* Fixed-point log-mel front end: hot path (see ew_frontend.h). */
#include "ew_frontend.h"

#define HALF (EW_FRAME_SAMPLES / 2) /* M: complex FFT size */

/* floor(a * w) for |a| < 2^30 and a Q31 twiddle w: the high word of (2a) * w, which is one
 * `mulh` on RV32 (and one smull-high on Xtensa/ARM). */
static inline int32_t mulq31(int32_t a, int32_t w) {
    return (int32_t)(((int64_t)(a * 2) * w) >> 32);
}
static inline int32_t cmul_re(int32_t ar, int32_t ai, int32_t wr, int32_t wi) {
    return mulq31(ar, wr) - mulq31(ai, wi);
}
static inline int32_t cmul_im(int32_t ar, int32_t ai, int32_t wr, int32_t wi) {
    return mulq31(ar, wi) + mulq31(ai, wr);
}

/* In-place radix-2 decimation-in-time FFT of HALF complex points (interleaved). */
static void fft_complex(int32_t *z) {
    for (uint32_t i = 0; i < HALF; i++) {
        const uint32_t j = ew_bitrev[i];
        if (j > i) {
            int32_t t = z[2 * i];
            z[2 * i] = z[2 * j];
            z[2 * j] = t;
            t = z[2 * i + 1];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j + 1] = t;
        }
    }
    for (uint32_t size = 2; size <= HALF; size <<= 1) {
        const uint32_t half = size >> 1;
        const uint32_t tw_step =
            2 * (HALF / size); /* index into the EW_FRAME_SAMPLES-point table */
        /* j = 0: the twiddle is exactly 1, no multiply */
        for (uint32_t start = 0; start < HALF; start += size) {
            int32_t *a = &z[2 * start];
            int32_t *b = &z[2 * (start + half)];
            const int32_t tr = b[0], ti = b[1];
            b[0] = a[0] - tr; /* |.| at most doubles per stage */
            b[1] = a[1] - ti;
            a[0] = a[0] + tr;
            a[1] = a[1] + ti;
        }
        for (uint32_t j = 1; j < half; j++) { /* each twiddle loaded once per stage */
            const int32_t wr = ew_twiddle_cos_q31[j * tw_step];
            const int32_t wi = ew_twiddle_sin_q31[j * tw_step];
            for (uint32_t start = 0; start < HALF; start += size) {
                int32_t *a = &z[2 * (start + j)];
                int32_t *b = &z[2 * (start + j + half)];
                const int32_t tr = cmul_re(b[0], b[1], wr, wi);
                const int32_t ti = cmul_im(b[0], b[1], wr, wi);
                b[0] = a[0] - tr;
                b[1] = a[1] - ti;
                a[0] = a[0] + tr;
                a[1] = a[1] + ti;
            }
        }
    }
}

void ew_frontend_logmel(ew_frontend_t *fe, const int16_t *frame, uint16_t *logmel) {
    int32_t *z = fe->z;
    for (uint32_t n = 0; n < EW_FRAME_SAMPLES; n++) /* windowed, Q(frac), 20 bits, re/im */
        z[n] = ((int32_t)frame[n] * ew_hann_q15[n] + (1 << (14 - EW_WINDOW_FRAC_BITS))) >>
               (15 - EW_WINDOW_FRAC_BITS);
    fft_complex(z);

    /* Split: 2X[k] = E[k] + W^k O[k], E = Z[k] + conj(Z[M-k]), O = -j (Z[k] - conj(Z[M-k])) */
    const int shift = EW_POWER_SHIFT + 2;
    {
        const int64_t dc = 2 * ((int64_t)z[0] + z[1]); /* 2X[0], real */
        const int64_t ny = 2 * ((int64_t)z[0] - z[1]); /* 2X[M], real */
        fe->power[0] = (uint64_t)(dc * dc) >> shift;
        fe->power[HALF] = (uint64_t)(ny * ny) >> shift;
    }
    for (uint32_t k = 1; k < HALF; k++) {
        const int32_t zr = z[2 * k], zi = z[2 * k + 1];
        const int32_t cr = z[2 * (HALF - k)], ci = z[2 * (HALF - k) + 1];
        const int32_t er = zr + cr, ei = zi - ci;  /* E[k], 29 bits */
        const int32_t or_ = zi + ci, oi = cr - zr; /* O[k] = -j (Z[k] - conj Z[M-k]) */
        const int32_t wr = ew_twiddle_cos_q31[k], wi = ew_twiddle_sin_q31[k];
        const int32_t xr = er + cmul_re(or_, oi, wr, wi); /* 2X[k], |.| < 2^30 */
        const int32_t xi = ei + cmul_im(or_, oi, wr, wi);
        fe->power[k] = (uint64_t)((int64_t)xr * xr + (int64_t)xi * xi) >> shift; /* < 2^61 */
    }

    const uint16_t *w = ew_mel_weights_q15;
    for (uint32_t m = 0; m < EW_N_MELS; m++) {
        const uint64_t *p = &fe->power[ew_mel_start[m]];
        uint64_t acc = 0; /* < 2^59 (Parseval) */
        for (uint32_t i = 0; i < ew_mel_len[m]; i++) acc += p[i] * w[i];
        w += ew_mel_len[m];
        logmel[m] = (uint16_t)ew_log2_q8_u64(acc + 1u);
    }
}

void ew_frontend_logmel_frames(ew_frontend_t *fe, const int16_t *x, size_t n_frames, size_t hop,
                               uint16_t *logmel) {
    for (size_t j = 0; j < n_frames; j++)
        ew_frontend_logmel(fe, x + j * hop, logmel + j * EW_N_MELS);
}

void ew_frontend_quantize(const uint16_t *logmel, int8_t *out, size_t n, const ew_quant_t *q) {
    const int64_t round = (int64_t)1 << (q->shift - 1);
    for (size_t i = 0; i < n; i++) {
        const int64_t v = q->zero_point + (((int64_t)logmel[i] * q->mult + round) >> q->shift);
        out[i] = (int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
    }
}
