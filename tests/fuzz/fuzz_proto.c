/*
 * libFuzzer harness for the protocol codec (ew_proto_frame.c, ew_proto_msg.c, ew_cobs.c, ew_crc32.c).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *         -Ifirmware/lib/ewcore/include tests/fuzz/fuzz_proto.c firmware/lib/ewcore/src/ew_*.c -lm
 *   ./a.out -max_len=4096 new_corpus/ tests/fuzz/corpus/proto/
 *
 * (tests/test_protocol_fuzz.py does this.)  Every input is used four ways; each checks the
 * decoder's documented invariants and aborts on a violation:
 *  1. as a received byte stream: items are well formed (FRAME: payload <= max, magic, CRC
 *     over the body matches; LOG: text bytes only, no LF; ERROR: known reason, raw_len > 0),
 *     SEQ diagnostics precede a FRAME, counters equal the items seen, and every byte is
 *     accounted for (bytes_in == delimiters + frames + text + garbage + pending);
 *  2. the same stream in input-dependent chunks (and byte by byte): identical items;
 *  3. as a payload of type data[0]: typed unpack; when it succeeds, packing the result again
 *     reproduces the payload's leading bytes;
 *  4. as a frame to encode (type data[0], payload data[1..]): decodes back to exactly it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ew_proto.h"

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

typedef struct {
    uint32_t digest, items, frames, logs, errors, gaps, backs, resets;
    int diag_pending;           /* a SEQ/RESET item was seen and its FRAME must follow */
    int expect_type, expect_seq;
    const uint8_t *expect_payload;
    size_t expect_len;
} sink_t;

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void on_item(void *ctx, const ew_proto_item_t *it) {
    sink_t *s = (sink_t *)ctx;
    uint8_t rec[16];
    memset(rec, 0, sizeof rec);
    rec[0] = (uint8_t)it->kind;
    s->items++;
    if (it->kind != EW_PROTO_ITEM_FRAME) REQUIRE(!s->diag_pending);
    switch (it->kind) {
    case EW_PROTO_ITEM_FRAME:
        s->frames++;
        s->diag_pending = 0;
        REQUIRE(it->len <= EW_PROTO_MAX_PAYLOAD);
        REQUIRE(it->body_len == it->len + EW_PROTO_OVERHEAD && it->data == it->body + EW_PROTO_HEADER);
        REQUIRE(it->body[0] == EW_PROTO_MAGIC && it->body[1] == it->type);
        REQUIRE((uint16_t)(it->body[2] | (it->body[3] << 8)) == it->seq);
        REQUIRE(ew_crc32(it->body, it->body_len - 4) == le32(it->body + it->body_len - 4));
        REQUIRE(it->unknown_type == !ew_proto_type_known(it->type));
        if (s->expect_type >= 0) {
            REQUIRE(it->type == (uint8_t)s->expect_type && it->seq == (uint16_t)s->expect_seq);
            REQUIRE(it->len == s->expect_len && (it->len == 0 || memcmp(it->data, s->expect_payload, it->len) == 0));
        }
        rec[1] = it->type;
        rec[2] = (uint8_t)it->seq;
        rec[3] = (uint8_t)(it->seq >> 8);
        rec[4] = (uint8_t)it->len;
        rec[5] = (uint8_t)(it->len >> 8);
        s->digest = ew_crc32_update(s->digest, it->data, it->len);
        break;
    case EW_PROTO_ITEM_LOG:
        s->logs++;
        REQUIRE(it->len <= EW_PROTO_MAX_ENCODED);
        for (size_t i = 0; i < it->len; i++) {
            const uint8_t c = it->data[i];
            REQUIRE((c >= 0x20 && c <= 0x7E) || c == '\t' || c == '\r' || c == 0x1B);
        }
        rec[4] = (uint8_t)it->len;
        rec[5] = (uint8_t)(it->len >> 8);
        s->digest = ew_crc32_update(s->digest, it->data, it->len);
        break;
    case EW_PROTO_ITEM_ERROR:
        s->errors++;
        REQUIRE(it->error >= EW_PROTO_BAD_COBS && it->error <= EW_PROTO_BAD_CRC && it->raw_len > 0);
        rec[1] = (uint8_t)it->error;
        memcpy(rec + 4, &it->raw_len, sizeof it->raw_len);
        break;
    case EW_PROTO_ITEM_SEQ_GAP:
    case EW_PROTO_ITEM_SEQ_BACKWARD:
    case EW_PROTO_ITEM_RESET:
        if (it->kind == EW_PROTO_ITEM_SEQ_GAP) {
            s->gaps++;
            REQUIRE(it->count >= 1 && it->count <= 0x7FFF);
            REQUIRE((uint16_t)(it->expected + it->count) == it->seq);
        } else if (it->kind == EW_PROTO_ITEM_SEQ_BACKWARD) {
            s->backs++;
            REQUIRE(it->count >= 1 && it->count <= 0x8000);
            REQUIRE((uint16_t)(it->seq + it->count) == it->expected);
        } else {
            s->resets++;
        }
        s->diag_pending = 1;
        rec[1] = (uint8_t)it->expected;
        rec[2] = (uint8_t)it->seq;
        rec[3] = (uint8_t)it->count;
        break;
    default:
        abort();
    }
    s->digest = ew_crc32_update(s->digest, rec, sizeof rec);
}

static void check_stats(const ew_proto_decoder_t *d, const sink_t *s) {
    const ew_proto_stats_t *t = &d->stats;
    REQUIRE(t->bytes_in == t->delim_bytes + t->frame_bytes + t->text_bytes + t->garbage_bytes +
                               ew_proto_decoder_pending(d));
    REQUIRE(t->frames == s->frames && t->log_lines == s->logs && t->seq_gaps == s->gaps &&
            t->seq_backward == s->backs && t->resets == s->resets);
    REQUIRE(t->err_cobs + t->err_short + t->err_oversize + t->err_magic + t->err_crc == s->errors);
    REQUIRE(t->unknown_types <= t->frames);
    REQUIRE(d->len <= EW_PROTO_MAX_ENCODED);
    REQUIRE(!s->diag_pending);
}

static void sink_init(sink_t *s) {
    memset(s, 0, sizeof *s);
    s->expect_type = -1;
}

/* ---- 3: typed payloads ---------------------------------------------------------------- */

static uint8_t pk[EW_PROTO_MAX_PAYLOAD + 64];

static void check_repack(int n, const uint8_t *p, size_t len) {
    REQUIRE(n >= 0 && (size_t)n <= len && memcmp(pk, p, (size_t)n) == 0);
}

static void fuzz_typed(uint8_t type, const uint8_t *p, size_t len) {
    switch (type % 13) {
    case EW_MSG_HELLO: {
        ew_proto_hello_t m;
        if (ew_proto_unpack_hello(p, len, &m) == EW_PROTO_OK) {
            REQUIRE(m.board_len <= EW_PROTO_MAX_NAME && m.n_labels <= EW_PROTO_MAX_LABELS);
            check_repack(ew_proto_pack_hello(&m, pk, sizeof pk), p, len);
        }
        break;
    }
    case EW_MSG_EVENT: {
        ew_proto_event_t m;
        if (ew_proto_unpack_event(p, len, &m) == EW_PROTO_OK) check_repack(ew_proto_pack_event(&m, pk, sizeof pk), p, len);
        break;
    }
    case EW_MSG_STATUS: {
        ew_proto_status_t m;
        if (ew_proto_unpack_status(p, len, &m) == EW_PROTO_OK) check_repack(ew_proto_pack_status(&m, pk, sizeof pk), p, len);
        break;
    }
    case EW_MSG_AUDIO:
    case EW_MSG_INJECT: {
        ew_proto_pcm_t m;
        int16_t s[EW_PROTO_MAX_PCM];
        if (ew_proto_unpack_pcm(p, len, &m) == EW_PROTO_OK) {
            REQUIRE(m.n_samples <= EW_PROTO_MAX_PCM && 8u + 2u * m.n_samples == len);
            for (unsigned i = 0; i < m.n_samples; i++) s[i] = ew_proto_pcm_sample(&m, i);
            check_repack(ew_proto_pack_pcm(m.first_sample, s, m.n_samples, pk, sizeof pk), p, len);
        }
        break;
    }
    case EW_MSG_CREDIT: {
        ew_proto_credit_t m;
        if (ew_proto_unpack_credit(p, len, &m) == EW_PROTO_OK) check_repack(ew_proto_pack_credit(&m, pk, sizeof pk), p, len);
        break;
    }
    case EW_MSG_CONFIG_GET: {
        ew_proto_config_get_t m;
        if (ew_proto_unpack_config_get(p, len, &m) == EW_PROTO_OK) check_repack(ew_proto_pack_config_get(&m, pk, sizeof pk), p, len);
        break;
    }
    case EW_MSG_CONFIG_SET:
    case EW_MSG_CONFIG: {
        ew_proto_config_t m;
        if (ew_proto_unpack_config(p, len, &m) == EW_PROTO_OK) check_repack(ew_proto_pack_config(&m, pk, sizeof pk), p, len);
        break;
    }
    case EW_MSG_ACK: {
        ew_proto_ack_t m;
        if (ew_proto_unpack_ack(p, len, &m) == EW_PROTO_OK) check_repack(ew_proto_pack_ack(&m, pk, sizeof pk), p, len);
        break;
    }
    case EW_MSG_ERROR: {
        ew_proto_error_t m;
        if (ew_proto_unpack_error(p, len, &m) == EW_PROTO_OK) {
            REQUIRE(m.message_len <= EW_PROTO_MAX_ERROR_TEXT);
            check_repack(ew_proto_pack_error(&m, pk, sizeof pk), p, len);
        }
        break;
    }
    case EW_MSG_CMD: {
        ew_proto_cmd_t m;
        if (ew_proto_unpack_cmd(p, len, &m) == EW_PROTO_OK) check_repack(ew_proto_pack_cmd(&m, pk, sizeof pk), p, len);
        break;
    }
    default:
        break;
    }
}

/* ---------------------------------------------------------------------------------------- */

static ew_proto_decoder_t dec;
static uint8_t wire[EW_PROTO_MAX_WIRE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sink_t a, b;

    /* 1: the whole input as a stream */
    sink_init(&a);
    ew_proto_decoder_init(&dec);
    ew_proto_decoder_feed(&dec, data, size, on_item, &a);
    check_stats(&dec, &a);
    const ew_proto_stats_t ref = dec.stats;

    /* 2: in chunks whose sizes come from the input itself, then byte by byte */
    sink_init(&b);
    ew_proto_decoder_init(&dec);
    for (size_t i = 0, k = 0; i < size; i += k) {
        k = 1u + (size_t)(data[(i * 7u) % size] % 61u);
        if (k > size - i) k = size - i;
        ew_proto_decoder_feed(&dec, data + i, k, on_item, &b);
    }
    check_stats(&dec, &b);
    REQUIRE(a.digest == b.digest && a.items == b.items && memcmp(&ref, &dec.stats, sizeof ref) == 0);
    if (size <= 2048) {
        sink_init(&b);
        ew_proto_decoder_init(&dec);
        for (size_t i = 0; i < size; i++) ew_proto_decoder_feed(&dec, data + i, 1, on_item, &b);
        REQUIRE(a.digest == b.digest && a.items == b.items);
    }

    if (size == 0) return 0;
    const uint8_t type = data[0];
    const uint8_t *p = data + 1;
    const size_t len = size - 1;

    /* 3: typed payloads (type chosen by the first byte) */
    fuzz_typed(type, p, len);

    /* 4: encode the rest as a frame and decode it back (after some garbage: the input) */
    const size_t plen = len > EW_PROTO_MAX_PAYLOAD ? EW_PROTO_MAX_PAYLOAD : len;
    const uint16_t seq = (uint16_t)(size * 2654435761u);
    const size_t n = ew_proto_encode(type, seq, p, plen, wire, sizeof wire);
    REQUIRE(n >= 11 && n <= EW_PROTO_WIRE_SIZE(plen));
    REQUIRE(ew_proto_encode(type, seq, p, plen, wire, n - 1) == 0);
    REQUIRE(ew_proto_encode(type, seq, p, plen, wire, n) == n);
    REQUIRE(wire[0] == 0 && wire[n - 1] == 0 && memchr(wire + 1, 0, n - 2) == NULL);
    REQUIRE(wire[2] == EW_PROTO_MAGIC);
    sink_init(&b);
    ew_proto_decoder_init(&dec);
    ew_proto_decoder_feed(&dec, p, len, on_item, &b);     /* arbitrary preceding bytes... */
    ew_proto_decoder_feed(&dec, wire, 1, on_item, &b);    /* ...ended by a 0x00 */
    const uint32_t frames_before = b.frames;
    b.expect_type = type;
    b.expect_seq = seq;
    b.expect_payload = p;
    b.expect_len = plen;
    ew_proto_decoder_feed(&dec, wire, n, on_item, &b);
    REQUIRE(b.frames == frames_before + 1 && ew_proto_decoder_pending(&dec) == 0);
    check_stats(&dec, &b);
    return 0;
}
