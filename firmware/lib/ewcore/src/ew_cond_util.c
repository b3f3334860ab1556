/* Input conditioning: init/reset (see ew_cond.h). */
#include <string.h>

#include "ew_cond.h"

void ew_dcblock_reset(ew_dcblock_t *dc) {
    dc->acc = 0;
    dc->x_prev = 0;
}

int ew_decim_init(ew_decim_t *d, unsigned factor) {
    if (d == NULL) return EW_ERR_ARG;
    memset(d, 0, sizeof(*d));
    for (int i = 0; i < EW_N_DECIM_FILTERS; i++) {
        if (ew_decim_filters[i].factor == factor) {
            d->f = &ew_decim_filters[i];
            d->factor = (uint8_t)factor;
            d->n_taps = d->f->n_taps;
            ew_decim_reset(d);
            return EW_OK;
        }
    }
    return EW_ERR_FACTOR;
}

void ew_decim_reset(ew_decim_t *d) {
    memset(d->buf, 0, sizeof(d->buf));
    d->next = (uint8_t)(d->factor - 1);
}

size_t ew_dcblock_sizeof(void) { return sizeof(ew_dcblock_t); }

size_t ew_decim_sizeof(void) { return sizeof(ew_decim_t); }
