/* Input conditioning hot paths: ADC conversion, DC blocker, decimator (see ew_cond.h). */
#include "ew_cond.h"

void ew_adc_to_pcm(const uint16_t *codes, int16_t *out, size_t n) {
    const int32_t max_code = (1 << EW_ADC_BITS) - 1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = codes[i] > max_code ? max_code : codes[i];          /* 12 bits */
        out[i] = (int16_t)((c - (1 << (EW_ADC_BITS - 1))) * (1 << (16 - EW_ADC_BITS)));
    }
}

void ew_dcblock_process(ew_dcblock_t *dc, const int16_t *in, int16_t *out, size_t n) {
    int32_t acc = dc->acc;
    int32_t x_prev = dc->x_prev;
    for (size_t i = 0; i < n; i++) {
        const int32_t x = in[i];
        const int32_t d = x - x_prev;                                    /* 17 bits */
        /* The high-pass response has L1 norm <= 2, so |y| <= 2^16 and |acc| <= 2^28;
         * d << FRAC is < 2^29: the sum stays below 2^30. */
        acc = acc - (acc >> EW_DC_POLE_SHIFT) + d * (1 << EW_DC_FRAC_BITS);
        x_prev = x;
        out[i] = ew_sat16((acc + (1 << (EW_DC_FRAC_BITS - 1))) >> EW_DC_FRAC_BITS);
    }
    dc->acc = acc;
    dc->x_prev = (int16_t)x_prev;
}

size_t ew_decim_process(ew_decim_t *d, const int16_t *in, size_t n, int16_t *out) {
    size_t n_out = 0;
    const uint16_t nt = d->n_taps;
    for (size_t i = 0; i < n; i++) {
        d->hist[d->pos] = in[i];
        d->hist[d->pos + nt] = in[i];
        d->pos = (uint16_t)(d->pos + 1 == nt ? 0 : d->pos + 1);
        if (++d->phase < d->factor) continue;
        d->phase = 0;
        /* hist[pos .. pos+nt-1] is the last nt inputs, oldest first.  The taps are symmetric
         * (the generator checks it), so pairs share one multiply and zero taps (every other
         * one of a half-band) are skipped: |h[k] + h[nt-1-k]| <= 2^16, and
         * |acc| <= 2^15 * sum|taps| < 2^31 (the generator checks sum|taps| < 2^16). */
        const int16_t *h = &d->hist[d->pos];
        const ew_decim_filter_t *f = d->f;
        int32_t acc = (int32_t)f->centre * h[nt / 2];       /* 0 for an even length */
        for (uint16_t i = 0; i < f->n_pairs; i++) {
            const uint16_t k = f->off[i];
            acc += (int32_t)f->coef[i] * ((int32_t)h[k] + h[nt - 1 - k]);
        }
        out[n_out++] = ew_sat16((acc + (1 << 14)) >> 15);
    }
    return n_out;
}
