/**
 * @file ew_cond.h
 * @brief Input conditioning: ADC codes -> int16, anti-alias decimator, DC blocker.
 *
 * Signal path on the node:
 *   ADC codes (EW_ADC_BITS, factor x 16 kHz) -> ew_adc_to_pcm -> ew_decim (-> 16 kHz int16)
 *   -> [AUDIO frames for field recording carry this signal] -> ew_dcblock -> gate + front end.
 * INJECT audio and training audio enter at 16 kHz int16 and go through the same DC blocker,
 * so every path after the decimator is identical.
 */
#ifndef EW_COND_H
#define EW_COND_H

#include "ew_fixed.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Convert unsigned ADC codes to centred int16: (code - 2^(bits-1)) << (16 - bits).
 * Codes above the ADC range are clamped.  In-place is not allowed (different element types).
 */
void ew_adc_to_pcm(const uint16_t *codes, int16_t *out, size_t n);

/** One-pole DC blocker state: y[n] = x[n] - x[n-1] + (1 - 2^-EW_DC_POLE_SHIFT) y[n-1]. */
typedef struct {
    int32_t acc;    /**< y in Q(EW_DC_FRAC_BITS): |acc| < 2^29 (|y| <= 2^16, see ew_cond.c) */
    int16_t x_prev; /**< previous input sample */
} ew_dcblock_t;

void ew_dcblock_reset(ew_dcblock_t *dc);
/** sizeof(ew_dcblock_t), for bindings that allocate it opaquely. */
size_t ew_dcblock_sizeof(void);
/** Filter n samples; in == out is allowed.  Output saturates to int16. */
void ew_dcblock_process(ew_dcblock_t *dc, const int16_t *in, int16_t *out, size_t n);

#define EW_DECIM_CHUNK 64 /**< inputs filtered per pass over the linear buffer */

/** FIR decimator that computes only the kept outputs, with the generated folded filters.
 *  Inputs are appended to a linear buffer after the last n_taps - 1 samples, filtered, and
 *  the tail is moved to the front: no per-sample ring bookkeeping. */
typedef struct {
    const ew_decim_filter_t *f; /**< generated filter for this factor */
    uint16_t n_taps;
    uint8_t factor;
    uint8_t next; /**< new-sample index that completes the next output */
    int16_t buf[EW_DECIM_MAX_TAPS - 1 + EW_DECIM_CHUNK]; /**< history, then new samples */
} ew_decim_t;

/**
 * @brief Prepare a decimator for an ADC rate of factor * EW_SAMPLE_RATE_HZ.
 * @return EW_OK; EW_ERR_ARG if d is NULL; EW_ERR_FACTOR if no generated filter has this factor.
 */
int ew_decim_init(ew_decim_t *d, unsigned factor);
/** sizeof(ew_decim_t), for bindings that allocate it opaquely. */
size_t ew_decim_sizeof(void);
/** Clear the history (keeps factor and taps). */
void ew_decim_reset(ew_decim_t *d);
/**
 * @brief Push n input samples, write the decimated outputs.
 * Output m is aligned with input m*factor + factor - 1 (the filter delay is
 * (n_taps - 1) / 2 input samples).  `out` needs room for n / factor + 1 samples.
 * @return number of samples written to out.
 */
size_t ew_decim_process(ew_decim_t *d, const int16_t *in, size_t n, int16_t *out);

#ifdef __cplusplus
}
#endif
#endif /* EW_COND_H */
