/* Front end: configuration helpers (see ew_frontend.h). */
#include "ew_frontend.h"

void ew_quant_default(ew_quant_t *q) {
    q->mult = EW_QUANT_MULT;
    q->shift = EW_QUANT_SHIFT;
    q->zero_point = EW_QUANT_ZERO_POINT;
}

int ew_quant_check(const ew_quant_t *q) {
    if (q == NULL) return EW_ERR_ARG;
    if (q->mult <= 0 || q->shift < 1 || q->shift > 40) return EW_ERR_CONFIG;
    return EW_OK;
}

size_t ew_frontend_sizeof(void) { return sizeof(ew_frontend_t); }
