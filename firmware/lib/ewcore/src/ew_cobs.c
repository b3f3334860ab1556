/* COBS encoder / in-place decoder.  See ew_cobs.h. */
#include "ew_cobs.h"

void ew_cobs_encoder_begin(ew_cobs_encoder_t *e, uint8_t *out, size_t cap) {
    e->out = out;
    e->cap = out == NULL ? 0 : cap;
    e->code_pos = 0;
    e->pos = 1; /* out[0] is reserved for the first code byte */
    e->code = 1;
    e->overflow = e->cap == 0;
}

/* Close the current piece: write its code byte and reserve the next one. */
static void ew_cobs_close_piece(ew_cobs_encoder_t *e) {
    e->out[e->code_pos] = e->code;
    e->code_pos = e->pos++;
    e->code = 1;
}

void ew_cobs_encoder_put(ew_cobs_encoder_t *e, const uint8_t *data, size_t n) {
    for (size_t i = 0; i < n && !e->overflow; i++) {
        /* Invariant: code_pos < pos <= cap, so out[code_pos] is writable. */
        if (data[i] == 0) {
            if (e->pos >= e->cap) {
                e->overflow = 1;
                break;
            }
            ew_cobs_close_piece(e);
        } else {
            if (e->pos >= e->cap) {
                e->overflow = 1;
                break;
            }
            e->out[e->pos++] = data[i];
            if (++e->code == 0xFF) {
                if (e->pos >= e->cap) {
                    e->overflow = 1;
                    break;
                }
                ew_cobs_close_piece(e);
            }
        }
    }
}

size_t ew_cobs_encoder_end(ew_cobs_encoder_t *e) {
    if (e->overflow) return 0;
    e->out[e->code_pos] = e->code;
    return e->pos;
}

size_t ew_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    ew_cobs_encoder_t e;
    ew_cobs_encoder_begin(&e, out, cap);
    ew_cobs_encoder_put(&e, in, n);
    return ew_cobs_encoder_end(&e);
}

int ew_cobs_decode_inplace(uint8_t *buf, size_t n, size_t *out_n) {
    size_t r = 0, w = 0;
    /* Invariant at the top of the loop: w < r or r == w == 0, and r <= n. */
    while (r < n) {
        const uint8_t code = buf[r++];
        if (code == 0) return -1;
        const size_t k = (size_t)code - 1u;
        if (k > n - r) return -1;                           /* piece runs past the block */
        for (size_t j = 0; j < k; j++) buf[w++] = buf[r++]; /* w < r: forward copy is safe */
        if (code != 0xFF && r < n) buf[w++] = 0; /* implied zero, except after the last piece */
    }
    *out_n = w;
    return 0;
}
