/* Serial protocol, frame codec: frame encoder (magic, type, seq, payload, CRC-32, COBS) and
 * the streaming decoder (log text, frames, sequence tracking).  See ew_proto.h and
 * docs/protocol.md; the payloads are in ew_proto_msg.c. */
#include "ew_proto.h"

#include <string.h>

#include "ew_proto_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Encoder                                                                                      */

size_t ew_proto_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, uint8_t *out,
                       size_t out_cap) {
    if (out == NULL || len > EW_PROTO_MAX_PAYLOAD || (payload == NULL && len > 0)) return 0;
    if (out_cap < 2u + 1u + EW_PROTO_OVERHEAD) return 0; /* < any frame */
    uint8_t hdr[EW_PROTO_HEADER], tail[4];
    hdr[0] = (uint8_t)EW_PROTO_MAGIC;
    hdr[1] = type;
    put_u16(hdr + 2, seq);
    uint32_t crc = ew_crc32_update(EW_CRC32_INIT, hdr, sizeof hdr);
    crc = ew_crc32_final(ew_crc32_update(crc, payload, len));
    put_u32(tail, crc);

    out[0] = 0;
    ew_cobs_encoder_t e;
    ew_cobs_encoder_begin(&e, out + 1, out_cap - 2u); /* room for the closing 0x00 */
    ew_cobs_encoder_put(&e, hdr, sizeof hdr);
    ew_cobs_encoder_put(&e, payload, len);
    ew_cobs_encoder_put(&e, tail, sizeof tail);
    const size_t n = ew_cobs_encoder_end(&e);
    if (n == 0) return 0;
    out[1 + n] = 0;
    return n + 2u;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoder                                                                                      */

/* Log text: printable ASCII, TAB, CR, LF and ESC (ANSI colour codes in ESP-IDF logs). */
static int is_text(uint8_t b) {
    return (b >= 0x20u && b <= 0x7Eu) || b == '\t' || b == '\r' || b == '\n' || b == 0x1Bu;
}

int ew_proto_type_known(uint8_t type) { return type >= 1u && type <= EW_MSG_MAX_KNOWN; }

const char *ew_proto_bad_name(ew_proto_bad_t e) {
    switch (e) {
    case EW_PROTO_BAD_NONE: return "none";
    case EW_PROTO_BAD_COBS: return "cobs";
    case EW_PROTO_BAD_SHORT: return "short";
    case EW_PROTO_BAD_OVERSIZE: return "oversize";
    case EW_PROTO_BAD_MAGIC: return "magic";
    case EW_PROTO_BAD_CRC: return "crc";
    }
    return "?";
}

void ew_proto_decoder_init(ew_proto_decoder_t *d) {
    memset(d, 0, sizeof *d);
    d->all_text = 1;
}

uint32_t ew_proto_decoder_pending(const ew_proto_decoder_t *d) {
    return d->discarding ? d->discard_len : (uint32_t)d->len;
}

static void emit(const ew_proto_item_t *it, ew_proto_item_fn cb, void *ctx) {
    if (cb != NULL) cb(ctx, it);
}

static void clear_chunk(ew_proto_decoder_t *d) {
    d->len = 0;
    d->all_text = 1;
    d->discarding = 0;
    d->discard_len = 0;
}

/* Deliver buf[0..len) (all text) as a log line without its trailing CR / LF bytes. */
static void emit_text(ew_proto_decoder_t *d, ew_proto_item_fn cb, void *ctx) {
    size_t n = d->len;
    while (n > 0 && (d->buf[n - 1] == '\n' || d->buf[n - 1] == '\r')) n--;
    ew_proto_item_t it;
    memset(&it, 0, sizeof it);
    it.kind = EW_PROTO_ITEM_LOG;
    it.data = d->buf;
    it.len = n;
    d->stats.text_bytes += d->len;
    d->stats.log_lines++;
    emit(&it, cb, ctx);
    clear_chunk(d);
}

static void emit_error(ew_proto_decoder_t *d, ew_proto_bad_t why, uint32_t raw_len,
                       ew_proto_item_fn cb, void *ctx) {
    ew_proto_item_t it;
    memset(&it, 0, sizeof it);
    it.kind = EW_PROTO_ITEM_ERROR;
    it.error = why;
    it.raw_len = raw_len;
    d->stats.garbage_bytes += raw_len;
    switch (why) {
    case EW_PROTO_BAD_COBS: d->stats.err_cobs++; break;
    case EW_PROTO_BAD_SHORT: d->stats.err_short++; break;
    case EW_PROTO_BAD_OVERSIZE: d->stats.err_oversize++; break;
    case EW_PROTO_BAD_MAGIC: d->stats.err_magic++; break;
    case EW_PROTO_BAD_CRC: d->stats.err_crc++; break;
    case EW_PROTO_BAD_NONE: break;
    }
    emit(&it, cb, ctx);
}

/* Sequence diagnostics for a valid frame, delivered before the frame itself. */
static void track_seq(ew_proto_decoder_t *d, uint8_t type, uint16_t seq, ew_proto_item_fn cb,
                      void *ctx) {
    ew_proto_item_t it;
    memset(&it, 0, sizeof it);
    it.seq = seq;
    it.expected = d->expected_seq;
    if (d->has_seq) {
        const uint16_t diff = (uint16_t)(seq - d->expected_seq); /* mod 2^16 */
        if (type == EW_MSG_HELLO) {
            it.kind = EW_PROTO_ITEM_RESET;
            d->stats.resets++;
            emit(&it, cb, ctx);
        } else if (diff != 0 && diff < 0x8000u) {
            it.kind = EW_PROTO_ITEM_SEQ_GAP;
            it.count = diff;
            d->stats.seq_gaps++;
            d->stats.frames_missed += diff;
            emit(&it, cb, ctx);
        } else if (diff != 0) {
            it.kind = EW_PROTO_ITEM_SEQ_BACKWARD;
            it.count = (uint16_t)(0x10000u - diff);
            d->stats.seq_backward++;
            emit(&it, cb, ctx);
        }
    }
    d->has_seq = 1;
    d->expected_seq = (uint16_t)(seq + 1u);
}

/* A 0x00 ended the current chunk: classify it. */
static void end_chunk(ew_proto_decoder_t *d, ew_proto_item_fn cb, void *ctx) {
    if (d->discarding) {
        emit_error(d, EW_PROTO_BAD_OVERSIZE, d->discard_len, cb, ctx);
        clear_chunk(d);
        return;
    }
    if (d->len == 0) return;
    if (d->all_text) { /* byte 1 of an encoded frame is 0xE7: a frame is never text */
        emit_text(d, cb, ctx);
        return;
    }
    const uint32_t raw = d->len;
    size_t n = 0;
    ew_proto_bad_t why = EW_PROTO_BAD_NONE;
    if (ew_cobs_decode_inplace(d->buf, d->len, &n) != 0) why = EW_PROTO_BAD_COBS;
    else if (n < EW_PROTO_OVERHEAD) why = EW_PROTO_BAD_SHORT;
    else if (n > EW_PROTO_MAX_BODY) why = EW_PROTO_BAD_OVERSIZE;
    else if (d->buf[0] != EW_PROTO_MAGIC) why = EW_PROTO_BAD_MAGIC;
    else if (ew_crc32(d->buf, n - 4u) != get_u32(d->buf + n - 4u)) why = EW_PROTO_BAD_CRC;
    if (why != EW_PROTO_BAD_NONE) {
        emit_error(d, why, raw, cb, ctx);
        clear_chunk(d);
        return;
    }
    /* Valid frame: 8 <= n <= EW_PROTO_MAX_BODY, so the payload fits EW_PROTO_MAX_PAYLOAD. */
    const uint8_t type = d->buf[1];
    const uint16_t seq = get_u16(d->buf + 2);
    track_seq(d, type, seq, cb, ctx);
    ew_proto_item_t it;
    memset(&it, 0, sizeof it);
    it.kind = EW_PROTO_ITEM_FRAME;
    it.type = type;
    it.seq = seq;
    it.unknown_type = (uint8_t)!ew_proto_type_known(type);
    it.data = d->buf + EW_PROTO_HEADER;
    it.len = n - EW_PROTO_OVERHEAD;
    it.body = d->buf;
    it.body_len = n;
    d->stats.frames++;
    d->stats.frame_bytes += raw;
    if (it.unknown_type) d->stats.unknown_types++;
    emit(&it, cb, ctx);
    clear_chunk(d);
}

void ew_proto_decoder_feed(ew_proto_decoder_t *d, const uint8_t *data, size_t n,
                           ew_proto_item_fn cb, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t b = data[i];
        d->stats.bytes_in++;
        if (b == 0) {
            d->stats.delim_bytes++;
            end_chunk(d, cb, ctx);
            continue;
        }
        if (d->discarding) {
            d->discard_len++;
            continue;
        }
        const int text = is_text(b);
        /* A lone LF held at the start of the chunk: text after it means it was a line. */
        if (d->len == 1 && d->buf[0] == '\n' && text) emit_text(d, cb, ctx);
        if (d->len == EW_PROTO_MAX_ENCODED) { /* chunk full */
            if (d->all_text) {
                emit_text(d, cb, ctx); /* an over-long text line: split it */
            } else {
                d->discarding = 1;
                d->discard_len = (uint32_t)d->len + 1u;
                d->len = 0;
                continue;
            }
        }
        /* Invariant: d->len < EW_PROTO_MAX_ENCODED here. */
        d->buf[d->len++] = b;
        if (!text) d->all_text = 0;
        if (b == '\n' && d->all_text && d->len > 1) emit_text(d, cb, ctx);
    }
}
