/**
 * @file ew_frontend.h
 * @brief Fixed-point log-mel front end: window, real FFT, power, mel filterbank, log, int8.
 *
 * Per frame of EW_FRAME_SAMPLES int16 samples (32 ms, hop 16 ms):
 *  1. Hann window (Q15), keeping F = EW_WINDOW_FRAC_BITS fraction bits:
 *        xw = (x * w + 2^(14-F)) >> (15-F)                                    20 bits (F = 4)
 *  2. Real FFT of 2M = EW_FRAME_SAMPLES points as an M-point complex radix-2 FFT of
 *     z[n] = xw[2n] + j xw[2n+1] plus a split step.  int32 data, Q31 twiddles, each real
 *     product floor(a * w) = high word of (2a) * w (one mulh on RV32), no scaling:
 *     |Z| <= M 2^19 sqrt2 < 2^28, |2X| < 2^30.
 *  3. Power:  P[k] = |2X[k]|^2 >> (EW_POWER_SHIFT + 2) = |X[k]|^2 / 2^EW_POWER_SHIFT     uint64
 *  4. Mel:    M[m] = sum_k P[k] w_m[k], w Q15 triangles of peak 1 (librosa norm=None, Slaney
 *     scale).  Parseval: sum_k |X[k]|^2 <= 2M sum xw^2 <= 2^56, so sum_k P[k] <= 2^44 and
 *     M < 2^59.                                                                    uint64
 *  5. Log:    L[m] = 256 log2(M[m] + 1)                                         log2 Q8, <= 16383
 *     L is 10 log10(M) dB in units of 3.0103/256 dB; for a float signal y = x / 2^15,
 *     M = 2^(45 + 2F - EW_POWER_SHIFT) * M_float: L carries the constant offset
 *     EW_LOGMEL_OFFSET_Q8 against 256 log2 of librosa's mel power.
 *  6. int8:   q = clamp(zp + ((L * mult + 2^(shift-1)) >> shift), -128, 127)
 *     with mult = round(3.0103 / 256 / scale * 2^shift): the model's input scale in dB.
 */
#ifndef EW_FRONTEND_H
#define EW_FRONTEND_H

#include "ew_fixed.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Offset between L and 256 * log2(librosa mel power of y = x / 32768). */
#define EW_LOGMEL_OFFSET_Q8 ((45 + 2 * EW_WINDOW_FRAC_BITS - EW_POWER_SHIFT) * 256)

/** int8 quantisation of the log-mel features (the model's input tensor). */
typedef struct {
    int32_t mult;      /**< Q(shift) multiplier: dB-per-LSB(L) / input scale */
    uint8_t shift;     /**< 1..40 */
    int8_t zero_point; /**< model input zero point */
} ew_quant_t;

/** Scratch memory of the front end (no allocation; one per node). */
typedef struct {
    int32_t z[EW_FRAME_SAMPLES]; /**< complex work buffer, interleaved re/im */
    uint64_t power[EW_FFT_BINS]; /**< last power spectrum, P[k] */
} ew_frontend_t;

/** sizeof(ew_frontend_t), for bindings that allocate it opaquely. */
size_t ew_frontend_sizeof(void);
/** The generated default quantisation (EW_QUANT_*). */
void ew_quant_default(ew_quant_t *q);
/** @return EW_OK, or EW_ERR_CONFIG if mult <= 0 or shift is outside 1..40. */
int ew_quant_check(const ew_quant_t *q);

/**
 * @brief Log-mel of one frame.
 * @param frame   EW_FRAME_SAMPLES samples, oldest first
 * @param logmel  EW_N_MELS outputs, log2 Q8
 */
void ew_frontend_logmel(ew_frontend_t *fe, const int16_t *frame, uint16_t *logmel);
/**
 * @brief Log-mel of n_frames frames of a conditioned 16 kHz signal, frame j starting at j * hop.
 * @param x       at least (n_frames - 1) * hop + EW_FRAME_SAMPLES samples
 * @param logmel  n_frames * EW_N_MELS outputs, frame-major
 */
void ew_frontend_logmel_frames(ew_frontend_t *fe, const int16_t *x, size_t n_frames, size_t hop,
                               uint16_t *logmel);
/** Quantise n log-mel values to int8 with q. */
void ew_frontend_quantize(const uint16_t *logmel, int8_t *out, size_t n, const ew_quant_t *q);

#ifdef __cplusplus
}
#endif
#endif /* EW_FRONTEND_H */
