/**
 * @file ew_spsc.h
 * @brief Lock-free single-producer / single-consumer ring of 16-bit ADC codes.
 *
 * The capture task (producer, core 0) pushes the codes of each DMA conversion frame; the
 * processing task (consumer, core 1 on dual-core chips) drains them.  Neither side ever
 * blocks or takes a lock: when the ring is full the producer keeps what fits and returns
 * the rest as dropped (counted by the caller as overrun samples), so the DMA is never held
 * up by a slow consumer.
 *
 * Indices are free-running uint32 counters (wrap modulo 2^32); the capacity is a power of
 * two, so `head - tail` is the fill level even across the wrap.  Each index has exactly one
 * writer.  The producer publishes `head` with release semantics after copying the data, the
 * consumer reads it with acquire semantics before copying (and vice versa for `tail`), which
 * is what the two cores of an ESP32 / ESP32-S3 need; on the single-core ESP32-C3 the same
 * code is correct and the fences are cheap.  Aligned 32-bit loads and stores are atomic on
 * Xtensa LX6/LX7 and RV32, so no read-modify-write atomics (absent on rv32imc) are used.
 *
 * Header-only and free of ESP-IDF dependencies: tests/test_firmware_compile_stubs.py runs it on the host
 * with a producer and a consumer thread.
 */
#ifndef EW_SPSC_H
#define EW_SPSC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint16_t *buf; /**< cap elements, provided by the caller */
    uint32_t mask; /**< cap - 1 (cap a power of two) */
    uint32_t head; /**< written only by the producer: elements pushed so far */
    uint32_t tail; /**< written only by the consumer: elements popped so far */
} ew_spsc_t;

/** Initialise over buf[cap]; cap must be a power of two >= 2.  Returns 0, or -1 if not. */
static inline int ew_spsc_init(ew_spsc_t *r, uint16_t *buf, uint32_t cap) {
    if (r == NULL || buf == NULL || cap < 2u || (cap & (cap - 1u)) != 0u) {
        return -1;
    }
    r->buf = buf;
    r->mask = cap - 1u;
    r->head = 0u;
    r->tail = 0u;
    return 0;
}

/** Elements currently stored (either side may call it; the value may be stale). */
static inline uint32_t ew_spsc_level(const ew_spsc_t *r) {
    uint32_t h = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    uint32_t t = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    return h - t;
}

/**
 * Producer: append up to n codes.  Never blocks.
 * @return number of codes stored (< n when the ring was full: the rest are dropped).
 */
static inline size_t ew_spsc_push(ew_spsc_t *r, const uint16_t *src, size_t n) {
    uint32_t h = r->head;                                     /* own index */
    uint32_t t = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE); /* consumer's */
    uint32_t room = (r->mask + 1u) - (h - t);
    size_t k = n < room ? n : room;
    for (size_t i = 0; i < k; i++) {
        r->buf[(h + (uint32_t)i) & r->mask] = src[i];
    }
    __atomic_store_n(&r->head, h + (uint32_t)k, __ATOMIC_RELEASE);
    return k;
}

/**
 * Consumer: remove up to max codes into dst.  Never blocks.
 * @return number of codes copied (0 when empty).
 */
static inline size_t ew_spsc_pop(ew_spsc_t *r, uint16_t *dst, size_t max) {
    uint32_t t = r->tail;                                     /* own index */
    uint32_t h = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE); /* producer's */
    uint32_t avail = h - t;
    size_t k = max < avail ? max : avail;
    for (size_t i = 0; i < k; i++) {
        dst[i] = r->buf[(t + (uint32_t)i) & r->mask];
    }
    __atomic_store_n(&r->tail, t + (uint32_t)k, __ATOMIC_RELEASE);
    return k;
}

#ifdef __cplusplus
}
#endif
#endif /* EW_SPSC_H */
