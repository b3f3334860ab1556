/* Input conditioning hot paths: ADC conversion, DC blocker, decimator (see ew_cond.h). */
#include <string.h>

#include "ew_cond.h"

void ew_adc_to_pcm(const uint16_t *codes, int16_t *out, size_t n) {
    const int32_t max_code = (1 << EW_ADC_BITS) - 1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = codes[i] > max_code ? max_code : codes[i]; /* 12 bits */
        out[i] = (int16_t)((c - (1 << (EW_ADC_BITS - 1))) * (1 << (16 - EW_ADC_BITS)));
    }
}

void ew_dcblock_process(ew_dcblock_t *dc, const int16_t *in, int16_t *out, size_t n) {
    int32_t acc = dc->acc;
    int32_t x_prev = dc->x_prev;
    for (size_t i = 0; i < n; i++) {
        const int32_t x = in[i];
        const int32_t d = x - x_prev; /* 17 bits */
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
    const ew_decim_filter_t *f = d->f;
    const uint32_t nt = d->n_taps, hist = nt - 1, factor = d->factor;
    const uint32_t n_pairs = f->n_pairs, step = f->off_step, off0 = f->off[0];
    const int32_t centre = f->centre;
    const int16_t *coef = f->coef;
    const uint8_t *off = f->off;
    size_t n_out = 0;
    while (n > 0) {
        const size_t take = n < EW_DECIM_CHUNK ? n : EW_DECIM_CHUNK;
        memcpy(&d->buf[hist], in, take * sizeof(int16_t));
        uint32_t next = d->next;
        for (; next < take; next += factor) {
            /* w[0 .. nt-1]: the nt inputs ending at new sample `next`, oldest first.  The taps
             * are symmetric (the generator checks it), so pairs share one multiply and zero
             * taps (every other one of a half-band) are skipped: |w[k] + w[nt-1-k]| <= 2^16,
             * |acc| <= 2^15 * sum|taps| < 2^31 (the generator checks sum|taps| < 2^16). */
            const int16_t *w = &d->buf[next];
            int32_t acc = centre * w[nt / 2]; /* 0 for an even length */
            if (step != 0) {
                const int16_t *lo = w + off0, *hi = w + hist - off0;
                for (uint32_t i = 0; i < n_pairs; i++, lo += step, hi -= step)
                    acc += (int32_t)coef[i] * ((int32_t)*lo + *hi);
            } else {
                for (uint32_t i = 0; i < n_pairs; i++)
                    acc += (int32_t)coef[i] * ((int32_t)w[off[i]] + w[hist - off[i]]);
            }
            out[n_out++] = ew_sat16((acc + (1 << 14)) >> 15);
        }
        d->next = (uint8_t)(next - take);
        memmove(d->buf, &d->buf[take], hist * sizeof(int16_t));
        in += take;
        n -= take;
    }
    return n_out;
}
