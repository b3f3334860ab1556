/**
 * @file ew_gate.h
 * @brief Block-power impulse gate integer only.
 *
 * Once per block of EW_HOP_SAMPLES samples (16 ms):
 *  1. Block power  e(k) = (1/N) sum x^2(n + kN)            uint32, 0..2^30
 *     and its level p(k) = 256 log2(e(k) + 1)              log2 Q8, 0..7680 (7680 = 0 dBFS)
 *  2. Min-max normalisation over the last L blocks
 *        en(i) = (e(i) - min) / (max - min)                 in [0, 1]
 *  3. Spread = variance of the normalised powers, Q16:
 *        s(k) = (L sum en^2 - (sum en)^2) / L^2
 *     A lone impulse in a uniform background gives s ~ (L-1)/L^2 (0.030 for L = 32);
 *     fluctuating sound (speech, music, traffic) spreads the normalised powers: s ~ 0.05..0.1.
 *  4. Two log-domain trackers, each falling and rising with its own time constant:
 *     the short-term background b(k) (2^bg_fall_shift / 2^bg_rise_shift blocks: 0.26 s / 1 s)
 *     follows the room closely, so modulated backgrounds (engines, rain, helicopters) do not
 *     stand out; the long-term noise floor f(k) (2^nf_fall_shift / 2^nf_rise_shift blocks:
 *     0.13 s / 16 s) remembers how quiet the place is, so sustained events stay visible.
 *  5. Novelty j(k) = p(k) - 256 log2(1 + max of the L-2 powers before block k-1): in normalised
 *     terms the new block is 1 and every block of the window before the previous one is below
 *     2^(-jump_margin): an impulse rises above everything heard in the last 0.5 s; a modulated
 *     background does not.  Block k-1 is left out because an onset may take two blocks to rise
 *     (it falls late in block k-1, or the sound builds up over ~20 ms: glass, slams).
 *     Long-term novelty n(k) = p(k) - a(k-1), with the decaying peak a(k) = max(p(k), a(k-1) -
 *     peak_decay): an impulse must also be louder than every earlier block, forgotten at
 *     peak_decay per block (3 dB/s), so the recurring pops of a fire or dripping water do not
 *     reopen the gate every time one exceeds the last 0.5 s.
 *  6. Decisions on the block, with excess x(k) = p(k) - b(k-1), height h(k) = p(k) - f(k-1):
 *        CANDIDATE = warm && p >= floor && x >= onset_margin && j >= jump_margin
 *                    && n >= peak_margin && (s <= spread_max || x >= strong_margin)
 *     A candidate on block c becomes ONSET on block c + onset_blocks - 1 if every block from c
 *     on stays at least confirm_margin above b(c-1): gunshots, glass, slams and explosions ring
 *     for tens of milliseconds, the single-block pops of fire crackle and drops do not.  The
 *     ONSET flag then comes with onset_delay = blocks since the candidate.
 *        ABOVE = warm && p >= floor && h >= sustain_margin
 *        LOUD  = ABOVE on this block and the sustain_blocks - 1 before it, and the event is
 *                tonal (t(k) >= tonal_margin) or began impulsively: an ONSET, or an ABOVE
 *                block with x >= strong_margin, while the ABOVE run was still shorter than
 *                sustain_blocks, and no sustain_blocks non-ABOVE blocks in a row since
 *     "warm" = more than warmup_blocks seen since reset.  The detector turns ONSET into a
 *     trigger and re-triggers every recheck_blocks while LOUD (sustained sirens, crying, the
 *     rumble of an explosion), not while a noise-like background (rain, sea, engines) that
 *     rose slowly lasts.
 *  7. Tonality t(k) (ew_gate_spectrum, from the node's log-mel frame that ends with block k):
 *        T = max over bands b = 2..n_mels-3 of  m(b) - (m(b-2) + m(b+2)) / 2   (>= 0, log2 Q8)
 *     the prominence of the strongest spectral peak over the bands two either side; smoothed
 *     t += (T - t) / 2^tonal_shift (steps truncated toward zero).  Sirens, alarms, crying and
 *     screams are harmonic (median T 20-30 dB); rain, sea, wind and engines are not (6-9 dB).
 *
 * Exact integer evaluation of Eq. 3: with d(i) = (e(i) - min) >> s, R = (max - min) >> s and s
 * chosen so that R < 2^15:  s(k) = ((L sum d^2 - (sum d)^2) << 16) / (L^2 R^2), all in uint64
 * (L sum d^2 < 2^41, L^2 R^2 < 2^40).  With max == min the spread is 0.
 */
#ifndef EW_GATE_H
#define EW_GATE_H

#include "ew_fixed.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EW_GATE_MAX_ONSET_BLOCKS 4

/** Gate decision flags returned per block. */
enum {
    EW_GATE_WARM = 1u << 0,  /**< past the warm-up blocks */
    EW_GATE_LOUD = 1u << 1,  /**< sustained event: ABOVE for sustain_blocks blocks in a row */
    EW_GATE_ONSET = 1u << 2, /**< onset condition */
    EW_GATE_ABOVE = 1u << 3, /**< height over the noise floor >= sustain_margin (event still on) */
};

/** Run-time gate parameters (defaults from ew_params.h; changeable by CONFIG frames). */
typedef struct {
    int32_t floor_q8;          /**< absolute floor, log2(mean square) Q8 */
    int32_t onset_margin_q8;   /**< onset excess over background, log2 Q8 */
    int32_t strong_margin_q8;  /**< excess that opens regardless of spread */
    int32_t jump_margin_q8;    /**< onset block over every other block of the window */
    int32_t confirm_margin_q8; /**< blocks after a candidate: over the pre-onset background */
    uint8_t onset_blocks;      /**< blocks an onset must last, 1..4 */
    int32_t sustain_margin_q8; /**< excess that keeps an event "on" */
    uint32_t spread_max_q16;   /**< max normalised variance for an onset */
    uint16_t sustain_blocks;   /**< ABOVE blocks in a row that make LOUD (>= 1) */
    uint16_t recheck_blocks;   /**< re-trigger period while LOUD (used by the detector) */
    uint16_t warmup_blocks;    /**< blocks after reset that only seed the background */
    uint8_t bg_fall_shift;     /**< background fall time constant 2^n blocks (1..15) */
    uint8_t bg_rise_shift;     /**< background rise time constant 2^n blocks (1..15) */
    uint8_t nf_fall_shift;     /**< noise floor fall time constant 2^n blocks (1..15) */
    uint8_t nf_rise_shift;     /**< noise floor rise time constant 2^n blocks (1..15) */
    int32_t peak_margin_q8;    /**< onset over the decaying peak of all earlier blocks */
    int32_t peak_decay_q8;     /**< decay of that peak per block (>= 1) */
    int32_t tonal_margin_q8;   /**< smoothed tonality that makes a sustained event tonal */
    uint8_t tonal_shift;       /**< tonality smoothing time constant 2^n frames (0..15) */
} ew_gate_config_t;

typedef struct {
    ew_gate_config_t cfg;
    uint32_t ring[EW_GATE_WINDOW_BLOCKS]; /**< last L block powers */
    uint32_t n_seen;                      /**< blocks since reset (saturates) */
    uint32_t above_run;                   /**< consecutive ABOVE blocks (saturates) */
    uint8_t cand_age;   /**< 0: no candidate; else blocks since the candidate + 1 */
    int32_t cand_bg_q8; /**< background before the candidate */
    uint16_t head;      /**< next write index in ring */
    int32_t bg_q16;     /**< short-term background, log2 Q16 (log2 Q8 << 8) */
    int32_t nf_q16;     /**< long-term noise floor, log2 Q16 */
    int32_t peak_q8;    /**< decaying peak a(k) of the block levels, log2 Q8 */
    int32_t tonal_q8;   /**< smoothed tonality t of the log-mel frames, log2 Q8 */
    uint32_t quiet_run; /**< consecutive blocks that were not ABOVE (saturates) */
    uint8_t impulsive;  /**< the current sustained episode began with an onset or a strong rise */
    /* outputs of the last block, for the detector, STATUS and traces */
    uint32_t power;        /**< e(k) */
    int32_t level_q8;      /**< p(k) */
    int32_t bg_used_q8;    /**< b(k-1), the background the decision used */
    int32_t excess_q8;     /**< p(k) - b(k-1) */
    int32_t nf_used_q8;    /**< f(k-1), the noise floor the decision used */
    uint32_t spread_q16;   /**< s(k) */
    int32_t jump_q8;       /**< j(k): p(k) - level of the loudest block before k-1 in the window */
    int32_t novelty_q8;    /**< n(k): p(k) - a(k-1) */
    int32_t tonal_used_q8; /**< t, the tonality the decision used */
    uint8_t flags;         /**< EW_GATE_* */
    uint8_t onset_delay;   /**< with EW_GATE_ONSET: the onset block is this many blocks back */
} ew_gate_t;

/** Fill cfg with the generated defaults. */
void ew_gate_config_default(ew_gate_config_t *cfg);
/**
 * @brief Validate cfg and reset the gate with it.
 * @return EW_OK; EW_ERR_ARG for NULL; EW_ERR_CONFIG if a shift is outside 1..15 (tonal_shift
 *         0..15), a margin is negative, peak_decay_q8 < 1 or recheck_blocks is 0.
 */
int ew_gate_init(ew_gate_t *g, const ew_gate_config_t *cfg);
/** Forget all history (keeps the configuration). */
void ew_gate_reset(ew_gate_t *g);
/** Sum of squares of n int16 samples (exact, uint64). */
uint64_t ew_sum_squares(const int16_t *x, size_t n);
/**
 * @brief Process one block given its mean square e(k) = sum x^2 / EW_HOP_SAMPLES.
 * @return the EW_GATE_* flags (also left in g->flags).
 */
uint8_t ew_gate_process_block(ew_gate_t *g, uint32_t power);
/** Tonality T of one log-mel frame (EW_N_MELS values, log2 Q8): see rule 7 above. */
int32_t ew_gate_tonality(const uint16_t *logmel);
/**
 * @brief Feed the log-mel frame that ends with the block about to be processed (the node's
 *        frame k-1 before block k); updates the smoothed tonality used by LOUD.
 */
void ew_gate_spectrum(ew_gate_t *g, const uint16_t *logmel);

#ifdef __cplusplus
}
#endif
#endif /* EW_GATE_H */
