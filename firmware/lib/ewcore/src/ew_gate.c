/* Block-power impulse gate: hot path (see ew_gate.h for the rule). */
#include "ew_gate.h"

uint64_t ew_sum_squares(const int16_t *x, size_t n) {
    uint64_t acc = 0;                                   /* n * 2^30: 38 bits for n = 256 */
    for (size_t i = 0; i < n; i++) acc += (uint64_t)((int32_t)x[i] * x[i]);  /* 31 bits */
    return acc;
}

/* Variance of the min-max normalised powers in the ring, Q16 (0..16384). */
static uint32_t spread_q16(const uint32_t *ring, uint32_t count) {
    uint32_t mn = ring[0], mx = ring[0];
    for (uint32_t i = 1; i < count; i++) {
        if (ring[i] < mn) mn = ring[i];
        if (ring[i] > mx) mx = ring[i];
    }
    const uint32_t range = mx - mn;                     /* 30 bits */
    if (range == 0) return 0;
    int s = ew_bitlen_u64(range) - 15;
    if (s < 0) s = 0;
    const uint64_t r = range >> s;                      /* 15 bits */
    uint64_t s1 = 0, s2 = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint64_t d = (ring[i] - mn) >> s;         /* 15 bits */
        s1 += d;                                        /* <= 2^15 * L */
        s2 += d * d;                                    /* <= 2^30 * L */
    }
    const uint64_t num = (uint64_t)count * s2 - s1 * s1;  /* >= 0 (Cauchy-Schwarz), < 2^41 */
    const uint64_t den = (uint64_t)count * count * r * r; /* < 2^40 */
    return (uint32_t)((num << 16) / den);               /* num < 2^41: << 16 < 2^57 */
}

uint8_t ew_gate_process_block(ew_gate_t *g, uint32_t power) {
    const ew_gate_config_t *c = &g->cfg;
    const int32_t p = (int32_t)ew_log2_q8_u64((uint64_t)power + 1u);   /* 0..7681 */
    g->ring[g->head] = power;
    g->head = (uint16_t)(g->head + 1 == EW_GATE_WINDOW_BLOCKS ? 0 : g->head + 1);
    if (g->n_seen < UINT32_MAX) g->n_seen++;
    if (g->n_seen == 1) g->bg_q16 = p * 256;            /* seed the background */
    const uint32_t count = g->n_seen < EW_GATE_WINDOW_BLOCKS ? g->n_seen : EW_GATE_WINDOW_BLOCKS;
    const int32_t bg = g->bg_q16 >> 8;                  /* log2 Q8 */
    const int32_t x = p - bg;                           /* excess, signed 14 bits */
    const uint32_t s = spread_q16(g->ring, count);

    uint8_t flags = 0;
    if (g->n_seen > c->warmup_blocks) {
        flags |= EW_GATE_WARM;
        if (p >= c->floor_q8) {
            if (x >= c->sustain_margin_q8) flags |= EW_GATE_LOUD;
            if (x >= c->onset_margin_q8 && (s <= c->spread_max_q16 || x >= c->strong_margin_q8))
                flags |= EW_GATE_ONSET;
        }
    }
    /* background tracker, log2 Q16: |d| < 2^22, bg_q16 stays in 0..2^21 */
    const int32_t d = p * 256 - g->bg_q16;
    g->bg_q16 += d < 0 ? -((-d) >> c->bg_fall_shift) : (d >> c->bg_rise_shift);

    g->power = power;
    g->level_q8 = p;
    g->bg_used_q8 = bg;
    g->excess_q8 = x;
    g->spread_q16 = s;
    g->flags = flags;
    return flags;
}
