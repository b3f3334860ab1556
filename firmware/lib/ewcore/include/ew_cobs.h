/**
 * @file ew_cobs.h
 * @brief Consistent Overhead Byte Stuffing (Cheshire & Baker 1999): removes every 0x00 from a
 *        block so that 0x00 can delimit frames on a byte stream.
 *
 * Encoding: the block plus a phantom trailing 0x00 is split at each 0x00; each piece becomes a
 * code byte (piece length + 1) followed by the piece.  A piece of 254 non-zero bytes gets code
 * 0xFF and no implied zero.  The encoder always emits the canonical form, whose length is
 * n + 1 + floor(n / 254) in the worst case (no zeros), at least n + 1.  The decoder also
 * accepts the variant that omits a final 0x01 after a trailing 0xFF piece (same decoded bytes).
 *
 * No allocation; the caller provides every buffer.
 */
#ifndef EW_COBS_H
#define EW_COBS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Worst-case encoded size of n input bytes (excluding any 0x00 delimiter). */
#define EW_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)

/** Incremental encoder state: feed the block in pieces without assembling it first. */
typedef struct {
    uint8_t *out;     /**< destination (caller's) */
    size_t cap;       /**< its capacity */
    size_t pos;       /**< next write position */
    size_t code_pos;  /**< where the current piece's code byte goes */
    uint8_t code;     /**< current piece length + 1 */
    uint8_t overflow; /**< set once anything did not fit; the output is then unusable */
} ew_cobs_encoder_t;

/**
 * @brief Start encoding into out[0..cap).
 * A zero cap (or NULL out) is allowed and simply makes ew_cobs_encoder_end() return 0.
 */
void ew_cobs_encoder_begin(ew_cobs_encoder_t *e, uint8_t *out, size_t cap);

/** @brief Encode n more bytes of the block (data may be NULL when n is 0). */
void ew_cobs_encoder_put(ew_cobs_encoder_t *e, const uint8_t *data, size_t n);

/**
 * @brief Finish the block.
 * @return the encoded length (>= 1); 0 if the output did not fit in cap.
 */
size_t ew_cobs_encoder_end(ew_cobs_encoder_t *e);

/**
 * @brief Encode n bytes in one call.
 * @return the encoded length (1 .. EW_COBS_MAX_ENCODED(n)); 0 if out is NULL or cap is too small.
 *         in may be NULL when n is 0.  in and out must not overlap.
 */
size_t ew_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/**
 * @brief Decode a COBS block in place.
 *
 * The block must not contain 0x00 (it is what lies between two delimiters).  Decoded bytes
 * are written from buf[0]; the write position never passes the read position, so in-place
 * decoding is safe, and nothing outside buf[0..n) is read or written.
 *
 * @param buf    the encoded block, overwritten with the decoded bytes
 * @param n      its length (0 decodes to 0 bytes)
 * @param out_n  receives the decoded length (< n) on success
 * @return 0 on success; -1 if a code byte is 0x00 or announces more bytes than remain.
 */
int ew_cobs_decode_inplace(uint8_t *buf, size_t n, size_t *out_n);

#ifdef __cplusplus
}
#endif
#endif /* EW_COBS_H */
