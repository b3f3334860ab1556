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
    switch (factor) {
        case 2: d->taps = ew_decim2_taps_q15; break;
        case 3: d->taps = ew_decim3_taps_q15; break;
        default: return EW_ERR_FACTOR;
    }
    d->factor = (uint8_t)factor;
    d->n_taps = (uint16_t)(factor * EW_DECIM_TAPS_PER_PHASE);
    return EW_OK;
}

void ew_decim_reset(ew_decim_t *d) {
    memset(d->hist, 0, sizeof(d->hist));
    d->phase = 0;
    d->pos = 0;
}
