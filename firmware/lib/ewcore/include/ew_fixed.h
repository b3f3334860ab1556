/**
 * @file ew_fixed.h
 * @brief Integer helpers shared by every stage of the earwitness core.
 *
 * Conventions used throughout the core:
 *  - Samples are int16 at EW_SAMPLE_RATE_HZ ("Q15 full scale": -32768..32767).
 *  - Powers are mean squares of int16 samples: 0..2^30 (uint32).
 *  - "log2 Q8" values are 256 * log2(x): 1 LSB = 3.0103/256 dB = 0.01176 dB of power.
 *  - Right shifts of negative signed values are arithmetic (floor).  C99 leaves this
 *    implementation-defined; GCC and Clang define it as arithmetic on every target we build
 *    (x86-64, Xtensa, RISC-V), and the NumPy reference uses the same floor semantics.
 */
#ifndef EW_FIXED_H
#define EW_FIXED_H

#include <stddef.h>
#include <stdint.h>

#include "ew_params.h"

#if EW_PARAMS_SCHEMA_VERSION != 1
#error "ew_params.h was generated for another schema: run `python -m tools.gen_params`"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Error codes returned by the core's init/config functions (hot paths cannot fail). */
enum {
    EW_OK = 0,
    EW_ERR_ARG = -1,    /**< NULL pointer or value out of range */
    EW_ERR_FACTOR = -2, /**< unsupported decimation factor */
    EW_ERR_CONFIG = -3, /**< inconsistent configuration */
};

/** Saturate a 32-bit value to int16. */
static inline int16_t ew_sat16(int32_t v) {
    return (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
}

/** Number of significant bits of v (0 for v == 0). */
int ew_bitlen_u64(uint64_t v);

/**
 * @brief 256 * log2(v) for v >= 1, 0 for v == 0.
 *
 * Integer part from the bit length, fraction from a 129-entry Q14 table of log2(1 + i/128)
 * with linear interpolation over the next 8 mantissa bits.  Max error vs exact log2: < 1 LSB.
 * Result range 0..16383 (v < 2^64).
 */
uint32_t ew_log2_q8_u64(uint64_t v);

#ifdef __cplusplus
}
#endif
#endif /* EW_FIXED_H */
