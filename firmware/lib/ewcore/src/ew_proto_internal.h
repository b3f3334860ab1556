/* Little-endian byte helpers shared by the frame codec (ew_proto_frame.c) and the message
 * payloads (ew_proto_msg.c); not API. */
#ifndef EW_PROTO_INTERNAL_H
#define EW_PROTO_INTERNAL_H

#include <stdint.h>

/* no alignment assumptions, no implementation-defined conversions */

static inline void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static inline void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)((v >> (8 * i)) & 0xFFu);
}

static inline void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((v >> (8 * i)) & 0xFFu);
}

static inline uint16_t get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}

static inline uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

static inline int16_t get_i16(const uint8_t *p) {
    const uint16_t u = get_u16(p);
    return (int16_t)(u >= 0x8000u ? (int32_t)u - 0x10000 : (int32_t)u);
}

static inline int32_t get_i32(const uint8_t *p) {
    const uint32_t u = get_u32(p);
    return u >= 0x80000000u ? -(int32_t)(~u) - 1 : (int32_t)u;
}

/* Two's complement bit patterns; conversion of a negative value to unsigned is well defined. */
static inline void put_i16(uint8_t *p, int16_t v) { put_u16(p, (uint16_t)v); }
static inline void put_i32(uint8_t *p, int32_t v) { put_u32(p, (uint32_t)v); }

#endif /* EW_PROTO_INTERNAL_H */
