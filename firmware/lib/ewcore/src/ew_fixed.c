/* Integer log2 and bit-length helpers (see ew_fixed.h). */
#include "ew_fixed.h"

int ew_bitlen_u64(uint64_t v) {
    int n = 0;
    if (v >> 32) {
        n += 32;
        v >>= 32;
    }
    if (v >> 16) {
        n += 16;
        v >>= 16;
    }
    if (v >> 8) {
        n += 8;
        v >>= 8;
    }
    if (v >> 4) {
        n += 4;
        v >>= 4;
    }
    if (v >> 2) {
        n += 2;
        v >>= 2;
    }
    if (v >> 1) {
        n += 1;
        v >>= 1;
    }
    return n + (int)v;
}

uint32_t ew_log2_q8_u64(uint64_t v) {
    if (v == 0) return 0;
    const int n = ew_bitlen_u64(v) - 1; /* integer part, 0..63 */
    uint32_t m;                         /* 15-bit mantissa fraction */
    if (n >= 15) m = (uint32_t)(v >> (n - 15)) & 0x7FFFu;
    else m = (uint32_t)(v << (15 - n)) & 0x7FFFu;
    const uint32_t i = m >> 8;    /* table segment, 7 bits */
    const uint32_t r = m & 0xFFu; /* position in the segment, 8 bits */
    const uint32_t y0 = ew_log2_lut_q14[i];
    const uint32_t y1 = ew_log2_lut_q14[i + 1];
    const uint32_t y = y0 + (((y1 - y0) * r + 128u) >> 8); /* Q14 fraction, <= 16384 */
    return ((uint32_t)n << 8) + ((y + 32u) >> 6);          /* Q8 */
}
