/* GENERATED FILE - DO NOT EDIT.
 * Source: firmware/lib/ewcore/ewcore.toml; regenerate with `python -m tools.gen_params`.
 * config_hash: bc4ee5d86aff936b79f8f32e77e15a032a976114470e3c83be2fd4bae3e38cee
 */

#ifndef EW_PARAMS_H
#define EW_PARAMS_H

#include <stdint.h>

#define EW_PARAMS_SCHEMA_VERSION               1  /* schema of this header (core checks it) */
#define EW_SAMPLE_RATE_HZ                      16000  /* rate of everything after the decimator */
#define EW_ADC_BITS                            12  /* ADC code width */
#define EW_DECIM_MAX_TAPS                      72  /* longest decimator FIR */
#define EW_DC_POLE_SHIFT                       8  /* DC blocker pole = 1 - 2^-shift */
#define EW_DC_FRAC_BITS                        12  /* fractional bits of the DC blocker state */
#define EW_FRAME_SAMPLES                       512  /* analysis frame = FFT size */
#define EW_FRAME_LOG2                          9  /* log2(EW_FRAME_SAMPLES) */
#define EW_HOP_SAMPLES                         256  /* hop = gate block */
#define EW_HOP_LOG2                            8  /* log2(EW_HOP_SAMPLES) */
#define EW_FFT_BINS                            257  /* one-sided spectrum bins */
#define EW_N_MELS                              40  /* mel bands */
#define EW_MEL_WEIGHTS                         488  /* non-zero mel weights */
#define EW_WINDOW_FRAC_BITS                    4  /* fraction bits kept after the window */
#define EW_POWER_SHIFT                         12  /* |2X|^2 >> (POWER_SHIFT + 2) before the mel weights */
#define EW_FRAMES_PER_WINDOW                   64  /* frames per analysis window (model input) */
#define EW_WINDOW_SAMPLES                      16640  /* samples spanned by one analysis window */
#define EW_LOG2_LUT_BITS                       7  /* log2 table: 2^bits segments */
#define EW_LOG2_LUT_FRAC                       14  /* log2 table values in Q14 */
#define EW_GATE_WINDOW_BLOCKS                  32  /* L: sliding window of block powers */
#define EW_GATE_FLOOR_Q8                       1727  /* absolute floor, log2(mean square) Q8 (-70.0 dBFS) */
#define EW_GATE_ONSET_MARGIN_Q8                765  /* 9.0 dB in log2 Q8 */
#define EW_GATE_JUMP_MARGIN_Q8                 510  /* 6.0 dB in log2 Q8 */
#define EW_GATE_CONFIRM_MARGIN_Q8              510  /* 6.0 dB in log2 Q8 */
#define EW_GATE_ONSET_BLOCKS                   2  /* blocks an onset must last (1..4) */
#define EW_GATE_STRONG_MARGIN_Q8               1701  /* 20.0 dB in log2 Q8 */
#define EW_GATE_SUSTAIN_MARGIN_Q8              1020  /* 12.0 dB in log2 Q8 */
#define EW_GATE_SPREAD_MAX_Q16                 2949  /* normalised-power variance 0.045 in Q16 */
#define EW_GATE_SUSTAIN_BLOCKS                 24  /* blocks above the sustain margin before LOUD */
#define EW_GATE_RECHECK_BLOCKS                 58  /* re-open period while a sustained event lasts */
#define EW_GATE_BG_FALL_SHIFT                  4  /* background estimate fall time constant 2^n blocks */
#define EW_GATE_BG_RISE_SHIFT                  6  /* background estimate rise time constant 2^n blocks */
#define EW_GATE_NF_FALL_SHIFT                  3  /* noise floor fall time constant 2^n blocks */
#define EW_GATE_NF_RISE_SHIFT                  10  /* noise floor rise time constant 2^n blocks */
#define EW_GATE_WARMUP_BLOCKS                  8  /* blocks after reset that only seed the background */
#define EW_GATE_PEAK_MARGIN_Q8                 255  /* 3.0 dB in log2 Q8 */
#define EW_GATE_PEAK_DECAY_Q8                  4  /* 3.0 dB/s, log2 Q8 per block */
#define EW_GATE_TONAL_MARGIN_Q8                1020  /* 12.0 dB in log2 Q8 */
#define EW_GATE_TONAL_SHIFT                    3  /* tonality smoothing time constant 2^n frames */
#define EW_DET_PREROLL_FRAMES                  6  /* window starts this many hops before the trigger */
#define EW_DET_EARLY_PREROLL_FRAMES            44  /* an onset also opens a window this many hops before it (0 = off) */
#define EW_DET_EARLY_CONTINUE_BLOCKS           4  /* keep the main window if the sound is on in the early window's last N blocks... */
#define EW_DET_EARLY_CONTINUE_MARGIN_Q8        510  /* ...i.e. 6.0 dB over the noise floor (log2 Q8) */
#define EW_DET_HABITUATE_ONSETS                1  /* habituation after this many confidently rejected onsets (0 = off) */
#define EW_DET_HABITUATE_MAX_SCORE_Q8          96  /* ...rejected: every enabled class scored below 0.375 (Q0.8) */
#define EW_DET_HABITUATE_MARGIN_Q8             255  /* ...onsets up to 3.0 dB over them open no window (log2 Q8)... */
#define EW_DET_HABITUATE_BLOCKS                625  /* ...for 10.0 s after the last one (blocks) */
#define EW_DET_HABITUATE_RECHECKS              1  /* slow re-checks after this many clearly rejected in a row (0 = off)... */
#define EW_DET_HABITUATE_RECHECK_MAX_SCORE_Q8  128  /* ...rejected: every enabled class scored below 0.5 (Q0.8)... */
#define EW_DET_HABITUATE_RECHECK_BLOCKS        375  /* ...to one per 6.0 s (blocks) */
#define EW_DET_HOLDOFF_SAMPLES                 24000  /* 1500 ms merge/hold-off */
#define EW_DET_DEFAULT_THRESHOLD_Q8            154  /* score threshold 0.6 (Q0.8) */
#define EW_DET_CONTINUOUS_STRIDE               1  /* continuous mode: classify every N hops */
#define EW_QUANT_MULT                          263044  /* int8 input: scale 0.75 -> q = zp + (L*mult + 2^(shift-1)) >> shift */
#define EW_QUANT_SHIFT                         24  /* quantiser shift */
#define EW_QUANT_ZERO_POINT                    -128  /* int8 input zero point */

#define EW_CONFIG_HASH_STR "bc4ee5d86aff936b79f8f32e77e15a032a976114470e3c83be2fd4bae3e38cee"
#define EW_CONFIG_HASH8 { 0xbc, 0x4e, 0xe5, 0xd8, 0x6a, 0xff, 0x93, 0x6b }  /* first 8 bytes, as in HELLO */

extern const int16_t ew_hann_q15[EW_FRAME_SAMPLES];
extern const int32_t ew_twiddle_cos_q31[EW_FRAME_SAMPLES / 2];
extern const int32_t ew_twiddle_sin_q31[EW_FRAME_SAMPLES / 2];
extern const uint16_t ew_bitrev[EW_FRAME_SAMPLES / 2];

/** A symmetric decimation FIR, folded: sum_i coef[i] (x[off[i]] + x[n-1-off[i]]) + centre x[n/2]. */
typedef struct {
    uint8_t factor, n_taps, n_pairs;
    uint8_t off_step;          /* offsets are off[0] + i * off_step (0: irregular) */
    int16_t centre;            /* Q15, 0 for an even length */
    const uint8_t *off;
    const int16_t *coef;       /* Q15 */
} ew_decim_filter_t;
#define EW_N_DECIM_FILTERS 2
extern const ew_decim_filter_t ew_decim_filters[EW_N_DECIM_FILTERS];
extern const uint16_t ew_mel_start[EW_N_MELS];
extern const uint16_t ew_mel_len[EW_N_MELS];
extern const uint16_t ew_mel_weights_q15[EW_MEL_WEIGHTS];
extern const uint16_t ew_log2_lut_q14[(1 << EW_LOG2_LUT_BITS) + 1];

#endif /* EW_PARAMS_H */
