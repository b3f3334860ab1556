/* Block-power impulse gate: hot path (see ew_gate.h for the rule). */
#include "ew_gate.h"

uint64_t ew_sum_squares(const int16_t *x, size_t n) {
    uint64_t acc = 0; /* n * 2^30: 38 bits for n = 256 */
    for (size_t i = 0; i < n; i++) acc += (uint64_t)((int32_t)x[i] * x[i]); /* 31 bits */
    return acc;
}

/* Variance of the min-max normalised powers in the ring, Q16 (0..16384); also the largest
 * power other than the newest two (ring[newest], ring[prev]). */
static uint32_t spread_q16(const uint32_t *ring, uint32_t count, uint32_t newest, uint32_t prev,
                           uint32_t *max_other) {
    uint32_t mn = ring[0], mx = ring[0], mo = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (ring[i] < mn) mn = ring[i];
        if (ring[i] > mx) mx = ring[i];
        if (ring[i] > mo && i != newest && i != prev) mo = ring[i];
    }
    *max_other = mo;
    const uint32_t range = mx - mn; /* 30 bits */
    if (range == 0) return 0;
    int s = ew_bitlen_u64(range) - 15;
    if (s < 0) s = 0;
    const uint64_t r = range >> s; /* 15 bits */
    uint64_t s1 = 0, s2 = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint64_t d = (ring[i] - mn) >> s; /* 15 bits */
        s1 += d;                                /* <= 2^15 * L */
        s2 += d * d;                            /* <= 2^30 * L */
    }
    const uint64_t num = (uint64_t)count * s2 - s1 * s1;  /* >= 0 (Cauchy-Schwarz), < 2^41 */
    const uint64_t den = (uint64_t)count * count * r * r; /* < 2^40 */
    return (uint32_t)((num << 16) / den);                 /* num < 2^41: << 16 < 2^57 */
}

/* d >> shift with the step truncated toward zero (no right shift of a negative number). */
static int32_t step(int32_t d, uint8_t shift) { return d < 0 ? -((-d) >> shift) : (d >> shift); }

/* One step of an asymmetric log-domain tracker, Q16: |d| < 2^22, state stays in 0..2^21.
 * Steps are truncated toward zero. */
static int32_t track(int32_t state_q16, int32_t p_q8, uint8_t fall_shift, uint8_t rise_shift) {
    const int32_t d = p_q8 * 256 - state_q16;
    return state_q16 + (d < 0 ? step(d, fall_shift) : step(d, rise_shift));
}

int32_t ew_gate_tonality(const uint16_t *m) {
    int32_t best = 0; /* log2 Q8, 0..2^16 */
    for (uint32_t b = 2; b + 2 < EW_N_MELS; b++) {
        const int32_t t = (int32_t)m[b] - (((int32_t)m[b - 2] + (int32_t)m[b + 2]) >> 1);
        if (t > best) best = t;
    }
    return best;
}

void ew_gate_spectrum(ew_gate_t *g, const uint16_t *logmel) {
    g->tonal_q8 += step(ew_gate_tonality(logmel) - g->tonal_q8, g->cfg.tonal_shift);
}

uint8_t ew_gate_process_block(ew_gate_t *g, uint32_t power) {
    const ew_gate_config_t *c = &g->cfg;
    const int32_t p = (int32_t)ew_log2_q8_u64((uint64_t)power + 1u); /* 0..7681 */
    const uint32_t newest = g->head;
    const uint32_t prev = newest == 0 ? EW_GATE_WINDOW_BLOCKS - 1 : newest - 1;
    g->ring[g->head] = power;
    g->head = (uint16_t)(g->head + 1 == EW_GATE_WINDOW_BLOCKS ? 0 : g->head + 1);
    if (g->n_seen < UINT32_MAX) g->n_seen++;
    if (g->n_seen == 1) { /* seed the trackers */
        g->bg_q16 = g->nf_q16 = p * 256;
        g->peak_q8 = p;
    }
    const uint32_t count = g->n_seen < EW_GATE_WINDOW_BLOCKS ? g->n_seen : EW_GATE_WINDOW_BLOCKS;
    const int32_t bg = g->bg_q16 >> 8; /* log2 Q8 */
    const int32_t nf = g->nf_q16 >> 8;
    const int32_t x = p - bg; /* excess, signed 14 bits */
    uint32_t max_other;
    const uint32_t s = spread_q16(g->ring, count, newest, prev, &max_other);
    const int32_t j = p - (int32_t)ew_log2_q8_u64((uint64_t)max_other + 1u);
    const int32_t nov = p - g->peak_q8; /* long-term novelty n(k) */
    const int32_t ton = g->tonal_q8;

    uint8_t flags = 0, delay = 0;
    int candidate = 0;
    if (g->n_seen > c->warmup_blocks) {
        flags |= EW_GATE_WARM;
        if (p >= c->floor_q8) {
            if (p - nf >= c->sustain_margin_q8) flags |= EW_GATE_ABOVE;
            candidate = x >= c->onset_margin_q8 && j >= c->jump_margin_q8 &&
                        nov >= c->peak_margin_q8 &&
                        (s <= c->spread_max_q16 || x >= c->strong_margin_q8);
        }
    }
    /* onset confirmation: a pending candidate continues while the level holds */
    if (g->cand_age > 0) {
        if (p - g->cand_bg_q8 >= c->confirm_margin_q8) g->cand_age++;
        else g->cand_age = 0;
    }
    if (g->cand_age == 0 && candidate) {
        g->cand_age = 1;
        g->cand_bg_q8 = bg;
    }
    if (g->cand_age > 0 && g->cand_age >= c->onset_blocks) {
        flags |= EW_GATE_ONSET;
        delay = (uint8_t)(g->cand_age - 1);
        g->cand_age = 0;
    }
    /* an impulsive start: an onset or a strong rise before the sound has become sustained */
    const int start =
        (flags & EW_GATE_ONSET) || ((flags & EW_GATE_ABOVE) && x >= c->strong_margin_q8);
    if (start && g->above_run < c->sustain_blocks) g->impulsive = 1;
    if (flags & EW_GATE_ABOVE) {
        if (g->above_run < UINT32_MAX) g->above_run++;
        g->quiet_run = 0;
    } else {
        g->above_run = 0;
        if (g->quiet_run < UINT32_MAX) g->quiet_run++;
        if (g->quiet_run >= c->sustain_blocks) g->impulsive = 0; /* the episode is over */
    }
    if (g->above_run >= c->sustain_blocks && (ton >= c->tonal_margin_q8 || g->impulsive))
        flags |= EW_GATE_LOUD;
    g->bg_q16 = track(g->bg_q16, p, c->bg_fall_shift, c->bg_rise_shift);
    g->nf_q16 = track(g->nf_q16, p, c->nf_fall_shift, c->nf_rise_shift);
    g->peak_q8 = p > g->peak_q8 - c->peak_decay_q8 ? p : g->peak_q8 - c->peak_decay_q8;

    g->power = power;
    g->level_q8 = p;
    g->bg_used_q8 = bg;
    g->excess_q8 = x;
    g->nf_used_q8 = nf;
    g->spread_q16 = s;
    g->jump_q8 = j;
    g->novelty_q8 = nov;
    g->tonal_used_q8 = ton;
    g->flags = flags;
    g->onset_delay = delay;
    return flags;
}
