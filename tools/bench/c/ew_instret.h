/* Retired-instruction counter for the rv32 benchmarks (tools/bench/c/bench_*.c): the minstret CSR,
 * exact under qemu-system-riscv32 -icount shift=0; 0 on other targets. */
#ifndef EW_INSTRET_H
#define EW_INSTRET_H

#include <stdint.h>

static inline uint64_t instret(void) {
#if defined(__riscv) && __riscv_xlen == 32
    uint32_t lo, hi, hi2;
    do {
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi));
        __asm__ volatile("csrr %0, minstret" : "=r"(lo));
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
#else
    return 0;
#endif
}

#endif /* EW_INSTRET_H */
