/*
 * Protocol codec tests: built-in unit checks, then the vectors that tests/test_protocol.py
 * generates into a second source file (proto_vectors.c, see below).  Runs on the host and on
 * rv32imc under QEMU (no stdin there: the input is compiled in).
 *
 * Output (compared line by line by the Python tests):
 *   "FAIL <what>"                      a built-in or self-consistency check failed (exit 1)
 *   "V <i> <wire ok> <decode ok>"      frame vector i: C encoder == golden wire, decoder round trip
 *   "T <i> <rc> <fields>"              typed unpack of frame vector i (known types only)
 *   "P <i> <rc>"                       typed unpack of bad-payload vector i
 *   "S <i>" + item lines + "stats ..." stream i fed in one call; also re-fed byte by byte and
 *                                      in uneven chunks, which must give the same items
 * Item lines: "F type seq unknown len crc32(payload)", "L hex(text)", "E reason raw_len",
 *             "G expected got missing", "B expected got behind", "R expected got".
 */
#include <stdio.h>
#include <string.h>

#include "ew_proto.h"

/* ---- vectors (defined by the generated proto_vectors.c; these typedefs are repeated there) */
typedef struct { uint8_t type; uint16_t seq; uint32_t payload_off, payload_len, wire_off, wire_len; } tv_frame_t;
typedef struct { uint32_t off, len; } tv_stream_t;
typedef struct { uint8_t type; uint32_t off, len; } tv_payload_t;
extern const unsigned char tv_bytes[];
extern const tv_frame_t tv_frames[];
extern const unsigned tv_n_frames;
extern const tv_stream_t tv_streams[];
extern const unsigned tv_n_streams;
extern const tv_payload_t tv_payloads[];
extern const unsigned tv_n_payloads;

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static void print_hex(const uint8_t *p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        putchar(digits[p[i] >> 4]);
        putchar(digits[p[i] & 15]);
    }
}

/* portable u64 printing (no reliance on %llu support in small libcs) */
static void print_u64(uint64_t v) {
    char tmp[21];
    int i = 20;
    tmp[i] = 0;
    do {
        tmp[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0);
    fputs(tmp + i, stdout);
}

/* ---------------------------------------------------------------------------------------- */
/* Item formatting: into a line buffer, so that the same text can be printed or digested    */

typedef struct {
    char line[64 + 2 * EW_PROTO_MAX_ENCODED];
    size_t n;
} linebuf_t;

static void lb_str(linebuf_t *b, const char *s) {
    while (*s && b->n + 1 < sizeof b->line) b->line[b->n++] = *s++;
    b->line[b->n] = 0;
}

static void lb_u32(linebuf_t *b, uint32_t v) {
    char tmp[11];
    int i = 10;
    tmp[i] = 0;
    do {
        tmp[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0);
    lb_str(b, tmp + i);
}

static void lb_hex(linebuf_t *b, const uint8_t *p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n && b->n + 3 < sizeof b->line; i++) {
        b->line[b->n++] = digits[p[i] >> 4];
        b->line[b->n++] = digits[p[i] & 15];
    }
    b->line[b->n] = 0;
}

static void format_item(linebuf_t *b, const ew_proto_item_t *it) {
    b->n = 0;
    b->line[0] = 0;
    switch (it->kind) {
    case EW_PROTO_ITEM_FRAME:
        lb_str(b, "F ");
        lb_u32(b, it->type);
        lb_str(b, " ");
        lb_u32(b, it->seq);
        lb_str(b, it->unknown_type ? " 1 " : " 0 ");
        lb_u32(b, (uint32_t)it->len);
        lb_str(b, " ");
        {
            uint8_t crc[4];
            const uint32_t c = ew_crc32(it->data, it->len);
            for (int i = 0; i < 4; i++) crc[i] = (uint8_t)(c >> (24 - 8 * i));
            lb_hex(b, crc, 4);
        }
        break;
    case EW_PROTO_ITEM_LOG:
        lb_str(b, "L ");
        lb_hex(b, it->data, it->len);
        break;
    case EW_PROTO_ITEM_ERROR:
        lb_str(b, "E ");
        lb_str(b, ew_proto_bad_name(it->error));
        lb_str(b, " ");
        lb_u32(b, it->raw_len);
        break;
    case EW_PROTO_ITEM_SEQ_GAP:
    case EW_PROTO_ITEM_SEQ_BACKWARD:
        lb_str(b, it->kind == EW_PROTO_ITEM_SEQ_GAP ? "G " : "B ");
        lb_u32(b, it->expected);
        lb_str(b, " ");
        lb_u32(b, it->seq);
        lb_str(b, " ");
        lb_u32(b, it->count);
        break;
    case EW_PROTO_ITEM_RESET:
        lb_str(b, "R ");
        lb_u32(b, it->expected);
        lb_str(b, " ");
        lb_u32(b, it->seq);
        break;
    }
}

/* Collector: prints items and/or folds them into a digest; checks frame invariants. */
typedef struct {
    int print;
    uint32_t digest;
    uint32_t count;
    uint32_t frames, logs, errors;
    linebuf_t lb;
} collect_t;

static void collect(void *ctx, const ew_proto_item_t *it) {
    collect_t *c = (collect_t *)ctx;
    format_item(&c->lb, it);
    c->lb.line[c->lb.n] = '\n';
    c->digest = ew_crc32_update(c->digest, (const uint8_t *)c->lb.line, c->lb.n + 1);
    c->lb.line[c->lb.n] = 0;
    c->count++;
    if (it->kind == EW_PROTO_ITEM_FRAME) {
        c->frames++;
        CHECK(it->len <= EW_PROTO_MAX_PAYLOAD);
        CHECK(it->body_len == it->len + EW_PROTO_OVERHEAD);
        CHECK(it->body[0] == EW_PROTO_MAGIC && it->data == it->body + EW_PROTO_HEADER);
        const uint8_t *t = it->body + it->body_len - 4;
        const uint32_t crc = (uint32_t)t[0] | ((uint32_t)t[1] << 8) | ((uint32_t)t[2] << 16) | ((uint32_t)t[3] << 24);
        CHECK(ew_crc32(it->body, it->body_len - 4) == crc);
    } else if (it->kind == EW_PROTO_ITEM_LOG) {
        c->logs++;
        for (size_t i = 0; i < it->len; i++) {
            const uint8_t ch = it->data[i];
            CHECK((ch >= 0x20 && ch <= 0x7E) || ch == '\t' || ch == '\r' || ch == 0x1B);
        }
    } else if (it->kind == EW_PROTO_ITEM_ERROR) {
        c->errors++;
    }
    if (c->print) puts(c->lb.line);
}

static void print_stats(const ew_proto_decoder_t *d) {
    const ew_proto_stats_t *s = &d->stats;
    printf("stats bytes_in=%lu delim_bytes=%lu frame_bytes=%lu text_bytes=%lu garbage_bytes=%lu "
           "frames=%lu unknown_types=%lu log_lines=%lu err_cobs=%lu err_short=%lu "
           "err_oversize=%lu err_magic=%lu err_crc=%lu seq_gaps=%lu frames_missed=%lu "
           "seq_backward=%lu resets=%lu pending=%lu\n",
           (unsigned long)s->bytes_in, (unsigned long)s->delim_bytes, (unsigned long)s->frame_bytes,
           (unsigned long)s->text_bytes, (unsigned long)s->garbage_bytes, (unsigned long)s->frames,
           (unsigned long)s->unknown_types, (unsigned long)s->log_lines, (unsigned long)s->err_cobs,
           (unsigned long)s->err_short, (unsigned long)s->err_oversize, (unsigned long)s->err_magic,
           (unsigned long)s->err_crc, (unsigned long)s->seq_gaps, (unsigned long)s->frames_missed,
           (unsigned long)s->seq_backward, (unsigned long)s->resets,
           (unsigned long)ew_proto_decoder_pending(d));
}

static void check_accounting(const ew_proto_decoder_t *d, const collect_t *c) {
    const ew_proto_stats_t *s = &d->stats;
    CHECK(s->bytes_in == s->delim_bytes + s->frame_bytes + s->text_bytes + s->garbage_bytes +
                             ew_proto_decoder_pending(d));
    CHECK(s->frames == c->frames && s->log_lines == c->logs);
    CHECK(s->err_cobs + s->err_short + s->err_oversize + s->err_magic + s->err_crc == c->errors);
}

/* Feed data in pieces: step 0 = all at once, 1 = byte by byte, else pseudo-random 1..step. */
static void feed_split(ew_proto_decoder_t *d, const uint8_t *p, size_t n, size_t step, collect_t *c) {
    uint32_t rng = 12345u;
    size_t i = 0;
    while (i < n) {
        size_t k = n - i;
        if (step == 1) {
            k = 1;
        } else if (step > 1) {
            rng = rng * 1103515245u + 12345u;
            const size_t r = 1u + (size_t)((rng >> 16) % step);
            if (r < k) k = r;
        }
        ew_proto_decoder_feed(d, p + i, k, collect, c);
        i += k;
    }
    ew_proto_decoder_feed(d, NULL, 0, collect, c);   /* empty feed is a no-op */
}

/* ---------------------------------------------------------------------------------------- */
/* Typed payload printing (same field order and names as the Python dataclasses)            */

static void print_str(const char *name, const char *s, size_t n) {
    printf(" %s=", name);
    print_hex((const uint8_t *)s, n);
}

static int print_typed(uint8_t type, const uint8_t *p, size_t len) {
    int rc = EW_PROTO_OK;
    switch (type) {
    case EW_MSG_HELLO: {
        if (len == 0) return EW_PROTO_OK;             /* request: no fields */
        ew_proto_hello_t m;
        rc = ew_proto_unpack_hello(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        printf(" proto_version=%u fw_major=%u fw_minor=%u fw_patch=%u reset_reason=%u "
               "sample_rate_hz=%lu model_hash=", m.proto_version, m.fw_major, m.fw_minor,
               m.fw_patch, m.reset_reason, (unsigned long)m.sample_rate_hz);
        print_hex(m.model_hash, sizeof m.model_hash);
        fputs(" config_hash=", stdout);
        print_hex(m.config_hash, sizeof m.config_hash);
        fputs(" node_id=", stdout);
        print_hex(m.node_id, sizeof m.node_id);
        print_str("board", m.board, m.board_len);
        fputs(" labels=", stdout);
        for (unsigned i = 0; i < m.n_labels; i++) {
            if (i) putchar(',');
            print_hex((const uint8_t *)m.labels[i], m.label_lens[i]);
        }
        break;
    }
    case EW_MSG_EVENT: {
        ew_proto_event_t m;
        rc = ew_proto_unpack_event(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        fputs(" onset_sample=", stdout);
        print_u64(m.onset_sample);
        printf(" duration_samples=%lu class_index=%u score=%u kind=%u hits=%u",
               (unsigned long)m.duration_samples, m.class_index, m.score, m.kind, m.hits);
        break;
    }
    case EW_MSG_STATUS: {
        ew_proto_status_t m;
        rc = ew_proto_unpack_status(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        fputs(" sample_index=", stdout);
        print_u64(m.sample_index);
        printf(" level_dbfs_q8=%d noise_floor_dbfs_q8=%d gate_duty_q16=%u inference_count=%lu "
               "inference_us_last=%lu inference_us_max=%lu dropped_samples=%lu mode=%u credits=%lu",
               m.level_dbfs_q8, m.noise_floor_dbfs_q8, m.gate_duty_q16,
               (unsigned long)m.inference_count, (unsigned long)m.inference_us_last,
               (unsigned long)m.inference_us_max, (unsigned long)m.dropped_samples, m.mode,
               (unsigned long)m.credits);
        break;
    }
    case EW_MSG_AUDIO:
    case EW_MSG_INJECT: {
        ew_proto_pcm_t m;
        rc = ew_proto_unpack_pcm(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        fputs(" first_sample=", stdout);
        print_u64(m.first_sample);
        fputs(" samples=", stdout);
        for (unsigned i = 0; i < m.n_samples; i++) printf(i ? ",%d" : "%d", ew_proto_pcm_sample(&m, i));
        break;
    }
    case EW_MSG_CREDIT: {
        ew_proto_credit_t m;
        rc = ew_proto_unpack_credit(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        printf(" credits_samples=%lu", (unsigned long)m.credits_samples);
        break;
    }
    case EW_MSG_CONFIG_GET: {
        ew_proto_config_get_t m;
        rc = ew_proto_unpack_config_get(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        printf(" key=%u", m.key);
        break;
    }
    case EW_MSG_CONFIG_SET:
    case EW_MSG_CONFIG: {
        ew_proto_config_t m;
        rc = ew_proto_unpack_config(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        printf(" key=%u value=%ld", m.key, (long)m.value);
        break;
    }
    case EW_MSG_ACK: {
        ew_proto_ack_t m;
        rc = ew_proto_unpack_ack(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        printf(" acked_seq=%u acked_type=%u", m.acked_seq, m.acked_type);
        break;
    }
    case EW_MSG_ERROR: {
        ew_proto_error_t m;
        rc = ew_proto_unpack_error(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        printf(" code=%u ref_seq=%u", m.code, m.ref_seq);
        print_str("message", m.message, m.message_len);
        break;
    }
    case EW_MSG_CMD: {
        ew_proto_cmd_t m;
        rc = ew_proto_unpack_cmd(p, len, &m);
        if (rc != EW_PROTO_OK) return rc;
        printf(" command=%u arg=%lu", m.command, (unsigned long)m.arg);
        break;
    }
    default:
        break;
    }
    return rc;
}

/* Unpack then pack again: must reproduce the payload's message bytes (trailing extras aside). */
static int repack(uint8_t type, const uint8_t *p, size_t len, uint8_t *out, size_t cap) {
    switch (type) {
    case EW_MSG_HELLO: { ew_proto_hello_t m; if (ew_proto_unpack_hello(p, len, &m)) return -100; return ew_proto_pack_hello(&m, out, cap); }
    case EW_MSG_EVENT: { ew_proto_event_t m; if (ew_proto_unpack_event(p, len, &m)) return -100; return ew_proto_pack_event(&m, out, cap); }
    case EW_MSG_STATUS: { ew_proto_status_t m; if (ew_proto_unpack_status(p, len, &m)) return -100; return ew_proto_pack_status(&m, out, cap); }
    case EW_MSG_AUDIO:
    case EW_MSG_INJECT: {
        ew_proto_pcm_t m;
        int16_t s[EW_PROTO_MAX_PCM];
        if (ew_proto_unpack_pcm(p, len, &m)) return -100;
        for (unsigned i = 0; i < m.n_samples; i++) s[i] = ew_proto_pcm_sample(&m, i);
        return ew_proto_pack_pcm(m.first_sample, s, m.n_samples, out, cap);
    }
    case EW_MSG_CREDIT: { ew_proto_credit_t m; if (ew_proto_unpack_credit(p, len, &m)) return -100; return ew_proto_pack_credit(&m, out, cap); }
    case EW_MSG_CONFIG_GET: { ew_proto_config_get_t m; if (ew_proto_unpack_config_get(p, len, &m)) return -100; return ew_proto_pack_config_get(&m, out, cap); }
    case EW_MSG_CONFIG_SET:
    case EW_MSG_CONFIG: { ew_proto_config_t m; if (ew_proto_unpack_config(p, len, &m)) return -100; return ew_proto_pack_config(&m, out, cap); }
    case EW_MSG_ACK: { ew_proto_ack_t m; if (ew_proto_unpack_ack(p, len, &m)) return -100; return ew_proto_pack_ack(&m, out, cap); }
    case EW_MSG_ERROR: { ew_proto_error_t m; if (ew_proto_unpack_error(p, len, &m)) return -100; return ew_proto_pack_error(&m, out, cap); }
    case EW_MSG_CMD: { ew_proto_cmd_t m; if (ew_proto_unpack_cmd(p, len, &m)) return -100; return ew_proto_pack_cmd(&m, out, cap); }
    default: return -100;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Built-in unit checks                                                                      */

static uint8_t big_a[4 * EW_PROTO_MAX_WIRE], big_b[4 * EW_PROTO_MAX_WIRE];

static void test_crc_cobs(void) {
    CHECK(ew_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u);
    CHECK(ew_crc32(NULL, 0) == 0);
    const size_t lens[] = {0, 1, 2, 253, 254, 255, 507, 508, 509, 1288};
    for (unsigned li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        for (int pattern = 0; pattern < 3; pattern++) {
            const size_t n = lens[li];
            for (size_t i = 0; i < n; i++)
                big_a[i] = (uint8_t)(pattern == 0 ? 0x5A : pattern == 1 ? 0 : (i * 7 + 1) % 251);
            const size_t e = ew_cobs_encode(big_a, n, big_b, sizeof big_b);
            CHECK(e >= n + 1 && e <= EW_COBS_MAX_ENCODED(n));
            CHECK(ew_cobs_encode(big_a, n, big_b, e - 1) == 0);   /* one byte short: refused */
            CHECK(memchr(big_b, 0, e) == NULL);
            size_t d = 0;
            CHECK(ew_cobs_decode_inplace(big_b, e, &d) == 0 && d == n && memcmp(big_a, big_b, n) == 0);
        }
    }
    /* non-canonical: final 0xFF piece without its 0x01 decodes to the same bytes */
    memset(big_b, 0x11, 255);
    big_b[0] = 0xFF;
    size_t d = 0;
    CHECK(ew_cobs_decode_inplace(big_b, 255, &d) == 0 && d == 254);
    const uint8_t bad1[] = {0x05, 1, 2}, bad2[] = {0x02, 1, 0x03, 1};
    uint8_t tmp[8];
    memcpy(tmp, bad1, sizeof bad1);
    CHECK(ew_cobs_decode_inplace(tmp, sizeof bad1, &d) == -1);
    memcpy(tmp, bad2, sizeof bad2);
    CHECK(ew_cobs_decode_inplace(tmp, sizeof bad2, &d) == -1);
    tmp[0] = 0;
    CHECK(ew_cobs_decode_inplace(tmp, 1, &d) == -1);
}

static void test_encode(void) {
    uint8_t pl[EW_PROTO_MAX_PAYLOAD + 1];
    for (size_t i = 0; i < sizeof pl; i++) pl[i] = (uint8_t)(i + 1);   /* few zeros: worst case */
    CHECK(ew_proto_encode(1, 0, pl, EW_PROTO_MAX_PAYLOAD + 1, big_a, sizeof big_a) == 0);
    CHECK(ew_proto_encode(1, 0, NULL, 1, big_a, sizeof big_a) == 0);
    CHECK(ew_proto_encode(1, 0, pl, 1, NULL, 100) == 0);
    const size_t n = ew_proto_encode(1, 0, pl, EW_PROTO_MAX_PAYLOAD, big_a, EW_PROTO_MAX_WIRE);
    CHECK(n > 0 && n <= EW_PROTO_MAX_WIRE);
    CHECK(big_a[0] == 0 && big_a[n - 1] == 0 && memchr(big_a + 1, 0, n - 2) == NULL);
    /* every capacity below the frame's size is refused, the exact size accepted */
    for (size_t len = 0; len < 300; len += 37) {
        const size_t need = ew_proto_encode(0x42, (uint16_t)len, pl, len, big_a, sizeof big_a);
        CHECK(need >= 11 && need <= EW_PROTO_WIRE_SIZE(len));
        for (size_t cap = 0; cap < need; cap++) CHECK(ew_proto_encode(0x42, 0, pl, len, big_b, cap) == 0);
        CHECK(ew_proto_encode(0x42, (uint16_t)len, pl, len, big_b, need) == need);
        CHECK(memcmp(big_a, big_b, need) == 0);
    }
    CHECK(ew_proto_encode(7, 9, NULL, 0, big_a, sizeof big_a) == 11);   /* empty payload */
}

static void test_decoder_limits(void) {
    ew_proto_decoder_t d;
    collect_t c;
    memset(&c, 0, sizeof c);
    ew_proto_decoder_init(&d);
    /* oversize binary chunk: one error with the full length, then a frame decodes */
    memset(big_a, 0xFF, 5000);
    ew_proto_decoder_feed(&d, big_a, 5000, collect, &c);
    CHECK(c.count == 0 && ew_proto_decoder_pending(&d) == 5000);
    const uint8_t pl[3] = {1, 2, 3};
    size_t n = ew_proto_encode(0x0C, 7, pl, 3, big_b, sizeof big_b);
    ew_proto_decoder_feed(&d, big_b, n, collect, &c);
    CHECK(d.stats.err_oversize == 1 && d.stats.garbage_bytes == 5000 && d.stats.frames == 1);
    check_accounting(&d, &c);
    /* 3000 text bytes without LF: split into lines of EW_PROTO_MAX_ENCODED */
    ew_proto_decoder_init(&d);
    memset(&c, 0, sizeof c);
    memset(big_a, 'x', 3000);
    ew_proto_decoder_feed(&d, big_a, 3000, collect, &c);
    CHECK(c.logs == 2 && d.stats.text_bytes == 2 * EW_PROTO_MAX_ENCODED);
    CHECK(ew_proto_decoder_pending(&d) == 3000 - 2 * EW_PROTO_MAX_ENCODED);
    ew_proto_decoder_feed(&d, (const uint8_t *)"\n", 1, collect, &c);
    CHECK(c.logs == 3 && ew_proto_decoder_pending(&d) == 0);
    check_accounting(&d, &c);
    /* a chunk of exactly EW_PROTO_MAX_ENCODED binary bytes is tried as a frame, one more is not */
    for (int extra = 0; extra < 2; extra++) {
        ew_proto_decoder_init(&d);
        memset(&c, 0, sizeof c);
        memset(big_a, 0x01, EW_PROTO_MAX_ENCODED + 1);     /* COBS: 0x01 0x01 ... = zeros */
        big_a[0] = 0x80;                                    /* non-text */
        big_a[EW_PROTO_MAX_ENCODED + (size_t)extra] = 0;
        ew_proto_decoder_feed(&d, big_a, EW_PROTO_MAX_ENCODED + (size_t)extra + 1, collect, &c);
        CHECK(c.errors == 1 && d.stats.err_oversize == 1);
        CHECK(d.stats.garbage_bytes == EW_PROTO_MAX_ENCODED + (uint32_t)extra);
        if (extra == 0) CHECK(d.stats.err_cobs == 0);    /* decoded: body too long */
    }
}

static void test_seq(void) {
    ew_proto_decoder_t d;
    collect_t c;
    memset(&c, 0, sizeof c);
    ew_proto_decoder_init(&d);
    const uint16_t seqs[] = {65534, 65535, 0, 2, 2, 1, 5, 65535, 1};
    const uint32_t gaps[] = {0, 0, 0, 1, 1, 1, 2, 2, 3};
    const uint32_t missed[] = {0, 0, 0, 1, 1, 1, 4, 4, 5};
    const uint32_t back[] = {0, 0, 0, 0, 1, 2, 2, 3, 3};
    for (unsigned i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        const size_t n = ew_proto_encode(EW_MSG_CREDIT, seqs[i], (const uint8_t *)"abcd", 4, big_a, sizeof big_a);
        ew_proto_decoder_feed(&d, big_a, n, collect, &c);
        CHECK(d.stats.seq_gaps == gaps[i] && d.stats.frames_missed == missed[i] && d.stats.seq_backward == back[i]);
    }
    /* HELLO: reset, not a gap */
    size_t n = ew_proto_encode(EW_MSG_HELLO, 40000, NULL, 0, big_a, sizeof big_a);
    ew_proto_decoder_feed(&d, big_a, n, collect, &c);
    CHECK(d.stats.resets == 1 && d.stats.seq_gaps == 3 && d.stats.seq_backward == 3);
    n = ew_proto_encode(EW_MSG_EVENT, 40001, NULL, 0, big_a, sizeof big_a);
    ew_proto_decoder_feed(&d, big_a, n, collect, &c);
    CHECK(d.stats.resets == 1 && d.stats.seq_gaps == 3 && d.stats.frames == 11 && d.stats.unknown_types == 0);
}

static void test_typed(void) {
    uint8_t out[EW_PROTO_MAX_PAYLOAD + 16];
    int n;
    /* HELLO */
    ew_proto_hello_t h, h2;
    memset(&h, 0, sizeof h);
    h.proto_version = EW_PROTO_VERSION;
    h.sample_rate_hz = 16000;
    h.board = "esp32dev";
    h.board_len = 8;
    static const char *labs[EW_PROTO_MAX_LABELS + 1];
    static const char long_label[] = "0123456789abcdef0123456789abcdefX";   /* 33 bytes */
    for (unsigned i = 0; i <= EW_PROTO_MAX_LABELS; i++) labs[i] = long_label;
    h.n_labels = EW_PROTO_MAX_LABELS;
    for (unsigned i = 0; i < EW_PROTO_MAX_LABELS; i++) {
        h.labels[i] = labs[i];
        h.label_lens[i] = EW_PROTO_MAX_NAME;
    }
    n = ew_proto_pack_hello(&h, out, sizeof out);
    CHECK(n == (int)(EW_PROTO_HELLO_MIN_SIZE + 8 + EW_PROTO_MAX_LABELS * (1 + EW_PROTO_MAX_NAME)));
    CHECK(n <= (int)EW_PROTO_MAX_PAYLOAD);
    CHECK(ew_proto_pack_hello(&h, out, (size_t)n - 1) == EW_PROTO_ERR_SPACE);
    CHECK(ew_proto_unpack_hello(out, (size_t)n, &h2) == EW_PROTO_OK && h2.n_labels == EW_PROTO_MAX_LABELS);
    CHECK(h2.board_len == 8 && memcmp(h2.board, "esp32dev", 8) == 0 && h2.sample_rate_hz == 16000);
    for (int k = 0; k < n; k++) CHECK(ew_proto_unpack_hello(out, (size_t)k, &h2) == EW_PROTO_ERR_SHORT);
    CHECK(ew_proto_unpack_hello(out, (size_t)n + 5, &h2) == EW_PROTO_OK);   /* trailing ignored */
    h.label_lens[3] = EW_PROTO_MAX_NAME + 1;
    CHECK(ew_proto_pack_hello(&h, out, sizeof out) == EW_PROTO_ERR_RANGE);
    h.label_lens[3] = EW_PROTO_MAX_NAME;
    h.n_labels = EW_PROTO_MAX_LABELS + 1;
    CHECK(ew_proto_pack_hello(&h, out, sizeof out) == EW_PROTO_ERR_RANGE);
    h.n_labels = 0;
    h.board_len = EW_PROTO_MAX_NAME + 1;
    CHECK(ew_proto_pack_hello(&h, out, sizeof out) == EW_PROTO_ERR_RANGE);
    h.board_len = 1;
    h.board = NULL;
    CHECK(ew_proto_pack_hello(&h, out, sizeof out) == EW_PROTO_ERR_ARG);
    h.board_len = 0;
    CHECK(ew_proto_pack_hello(&h, out, sizeof out) == (int)EW_PROTO_HELLO_MIN_SIZE);
    out[31] = EW_PROTO_MAX_NAME + 1;                                    /* board length byte */
    CHECK(ew_proto_unpack_hello(out, sizeof out, &h2) == EW_PROTO_ERR_RANGE);
    out[31] = 0;
    out[32] = EW_PROTO_MAX_LABELS + 1;                                  /* label count */
    CHECK(ew_proto_unpack_hello(out, sizeof out, &h2) == EW_PROTO_ERR_RANGE);
    CHECK(ew_proto_pack_hello(NULL, out, sizeof out) == EW_PROTO_ERR_ARG);
    CHECK(ew_proto_unpack_hello(NULL, 3, &h2) == EW_PROTO_ERR_ARG);

    /* fixed-size messages: SPACE below the size, SHORT below the size, round trip */
    ew_proto_event_t ev = {0x0123456789ABCDEFull, 0xFEDCBA98u, 3, 200, 1, 0xBEEF}, ev2;
    n = ew_proto_pack_event(&ev, out, sizeof out);
    CHECK(n == (int)EW_PROTO_EVENT_SIZE && ew_proto_pack_event(&ev, out, (size_t)n - 1) == EW_PROTO_ERR_SPACE);
    CHECK(ew_proto_unpack_event(out, (size_t)n - 1, &ev2) == EW_PROTO_ERR_SHORT);
    CHECK(ew_proto_unpack_event(out, (size_t)n, &ev2) == EW_PROTO_OK && ev2.onset_sample == ev.onset_sample &&
          ev2.duration_samples == ev.duration_samples && ev2.hits == ev.hits && ev2.score == 200);
    ew_proto_status_t st = {1u, -32768, 32767, 65535, 1, 2, 3, 4, 1, 0xFFFFFFFFu}, st2;
    n = ew_proto_pack_status(&st, out, sizeof out);
    CHECK(n == (int)EW_PROTO_STATUS_SIZE && ew_proto_pack_status(&st, out, (size_t)n - 1) == EW_PROTO_ERR_SPACE);
    CHECK(ew_proto_unpack_status(out, (size_t)n - 1, &st2) == EW_PROTO_ERR_SHORT);
    CHECK(ew_proto_unpack_status(out, (size_t)n, &st2) == EW_PROTO_OK && st2.level_dbfs_q8 == -32768 &&
          st2.noise_floor_dbfs_q8 == 32767 && st2.credits == 0xFFFFFFFFu);
    ew_proto_config_t cf = {EW_CFG_THRESHOLD_BASE + 3, -2147483647 - 1}, cf2;
    n = ew_proto_pack_config(&cf, out, sizeof out);
    CHECK(n == 6 && ew_proto_unpack_config(out, 6, &cf2) == EW_PROTO_OK && cf2.value == cf.value && cf2.key == cf.key);
    CHECK(ew_proto_unpack_config(out, 5, &cf2) == EW_PROTO_ERR_SHORT);

    /* PCM */
    int16_t pcm[EW_PROTO_MAX_PCM + 1];
    for (unsigned i = 0; i <= EW_PROTO_MAX_PCM; i++) pcm[i] = (int16_t)((int)(i * 331u % 65536u) - 32768);
    n = ew_proto_pack_pcm(99, pcm, EW_PROTO_MAX_PCM, out, sizeof out);
    CHECK(n == (int)(8 + 2 * EW_PROTO_MAX_PCM));
    CHECK(ew_proto_pack_pcm(99, pcm, EW_PROTO_MAX_PCM + 1, out, sizeof out) == EW_PROTO_ERR_RANGE);
    CHECK(ew_proto_pack_pcm(99, pcm, 10, out, 27) == EW_PROTO_ERR_SPACE);
    CHECK(ew_proto_pack_pcm(99, NULL, 10, out, sizeof out) == EW_PROTO_ERR_ARG);
    ew_proto_pcm_t pm;
    CHECK(ew_proto_unpack_pcm(out, (size_t)n, &pm) == EW_PROTO_OK && pm.n_samples == EW_PROTO_MAX_PCM && pm.first_sample == 99);
    for (unsigned i = 0; i < EW_PROTO_MAX_PCM; i++) CHECK(ew_proto_pcm_sample(&pm, i) == pcm[i]);
    CHECK(ew_proto_unpack_pcm(out, (size_t)n - 1, &pm) == EW_PROTO_ERR_RANGE);   /* odd */
    CHECK(ew_proto_unpack_pcm(out, (size_t)n + 2, &pm) == EW_PROTO_ERR_RANGE);   /* 513 samples */
    CHECK(ew_proto_unpack_pcm(out, 7, &pm) == EW_PROTO_ERR_SHORT);
    CHECK(ew_proto_unpack_pcm(out, 8, &pm) == EW_PROTO_OK && pm.n_samples == 0);

    /* ERROR */
    ew_proto_error_t er = {EW_ERRC_NO_CREDIT, 77, 5, "hello"}, er2;
    n = ew_proto_pack_error(&er, out, sizeof out);
    CHECK(n == 10 && ew_proto_pack_error(&er, out, 9) == EW_PROTO_ERR_SPACE);
    CHECK(ew_proto_unpack_error(out, 10, &er2) == EW_PROTO_OK && er2.message_len == 5 && memcmp(er2.message, "hello", 5) == 0);
    for (size_t k = 0; k < 10; k++) CHECK(ew_proto_unpack_error(out, k, &er2) == EW_PROTO_ERR_SHORT);
    er.message_len = EW_PROTO_MAX_ERROR_TEXT + 1;
    CHECK(ew_proto_pack_error(&er, out, sizeof out) == EW_PROTO_ERR_RANGE);
    out[4] = EW_PROTO_MAX_ERROR_TEXT + 1;
    CHECK(ew_proto_unpack_error(out, sizeof out, &er2) == EW_PROTO_ERR_RANGE);

    /* small ones */
    ew_proto_credit_t cr = {4096}, cr2;
    CHECK(ew_proto_pack_credit(&cr, out, 3) == EW_PROTO_ERR_SPACE && ew_proto_pack_credit(&cr, out, 4) == 4);
    CHECK(ew_proto_unpack_credit(out, 3, &cr2) == EW_PROTO_ERR_SHORT && ew_proto_unpack_credit(out, 4, &cr2) == 0 && cr2.credits_samples == 4096);
    ew_proto_ack_t ak = {65535, 0x0B}, ak2;
    CHECK(ew_proto_pack_ack(&ak, out, 2) == EW_PROTO_ERR_SPACE && ew_proto_pack_ack(&ak, out, 3) == 3);
    CHECK(ew_proto_unpack_ack(out, 2, &ak2) == EW_PROTO_ERR_SHORT && ew_proto_unpack_ack(out, 3, &ak2) == 0 && ak2.acked_seq == 65535 && ak2.acked_type == 0x0B);
    ew_proto_cmd_t cm = {EW_CMD_START_STREAM, 123456}, cm2;
    CHECK(ew_proto_pack_cmd(&cm, out, 4) == EW_PROTO_ERR_SPACE && ew_proto_pack_cmd(&cm, out, 5) == 5);
    CHECK(ew_proto_unpack_cmd(out, 4, &cm2) == EW_PROTO_ERR_SHORT && ew_proto_unpack_cmd(out, 5, &cm2) == 0 && cm2.arg == 123456);
    ew_proto_config_get_t cg = {EW_CFG_BAUD}, cg2;
    CHECK(ew_proto_pack_config_get(&cg, out, 1) == EW_PROTO_ERR_SPACE && ew_proto_pack_config_get(&cg, out, 2) == 2);
    CHECK(ew_proto_unpack_config_get(out, 1, &cg2) == EW_PROTO_ERR_SHORT && ew_proto_unpack_config_get(out, 2, &cg2) == 0 && cg2.key == EW_CFG_BAUD);
    CHECK(ew_proto_pack_event(NULL, out, sizeof out) == EW_PROTO_ERR_ARG);
    CHECK(ew_proto_unpack_status(out, 35, NULL) == EW_PROTO_ERR_ARG);
}

/* ---------------------------------------------------------------------------------------- */

static ew_proto_decoder_t dec;

static void run_frame_vectors(void) {
    static uint8_t wire[EW_PROTO_MAX_WIRE], pk[EW_PROTO_MAX_PAYLOAD];
    for (unsigned i = 0; i < tv_n_frames; i++) {
        const tv_frame_t *v = &tv_frames[i];
        const uint8_t *pl = tv_bytes + v->payload_off, *gw = tv_bytes + v->wire_off;
        const size_t n = ew_proto_encode(v->type, v->seq, pl, v->payload_len, wire, sizeof wire);
        const int enc_ok = n == v->wire_len && memcmp(wire, gw, n) == 0;
        collect_t c;
        memset(&c, 0, sizeof c);
        ew_proto_decoder_init(&dec);
        ew_proto_decoder_feed(&dec, gw, v->wire_len, collect, &c);
        const int dec_ok = c.count == 1 && c.frames == 1 && dec.stats.frames == 1 &&
                           dec.stats.delim_bytes == 2 && ew_proto_decoder_pending(&dec) == 0;
        printf("V %u %d %d\n", i, enc_ok, dec_ok);
        if (ew_proto_type_known(v->type)) {
            printf("T %u", i);
            const int rc = print_typed(v->type, pl, v->payload_len);
            printf(" rc=%d\n", rc);
            if (rc == EW_PROTO_OK && v->payload_len > 0) {
                const int r = repack(v->type, pl, v->payload_len, pk, sizeof pk);
                CHECK(r > 0 && (size_t)r <= v->payload_len && memcmp(pk, pl, (size_t)r) == 0);
            }
        }
    }
    for (unsigned i = 0; i < tv_n_payloads; i++) {
        const tv_payload_t *v = &tv_payloads[i];
        printf("P %u", i);
        const int rc = print_typed(v->type, tv_bytes + v->off, v->len);
        printf(" rc=%d\n", rc);
    }
}

static void run_streams(void) {
    static const size_t steps[] = {1, 7, 300};
    for (unsigned i = 0; i < tv_n_streams; i++) {
        const uint8_t *p = tv_bytes + tv_streams[i].off;
        const size_t n = tv_streams[i].len;
        collect_t c;
        memset(&c, 0, sizeof c);
        c.print = 1;
        printf("S %u\n", i);
        ew_proto_decoder_init(&dec);
        feed_split(&dec, p, n, 0, &c);
        check_accounting(&dec, &c);
        print_stats(&dec);
        const ew_proto_stats_t ref = dec.stats;
        for (unsigned k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            collect_t c2;
            memset(&c2, 0, sizeof c2);
            ew_proto_decoder_init(&dec);
            feed_split(&dec, p, n, steps[k], &c2);
            check_accounting(&dec, &c2);
            if (c2.digest != c.digest || c2.count != c.count || memcmp(&ref, &dec.stats, sizeof ref) != 0) {
                printf("FAIL stream %u: items differ when fed in steps of %u\n", i, (unsigned)steps[k]);
                failures++;
            }
        }
    }
}

int main(void) {
    test_crc_cobs();
    test_encode();
    test_decoder_limits();
    test_seq();
    test_typed();
    printf("unit failures=%d\n", failures);
    run_frame_vectors();
    run_streams();
    printf("done failures=%d\n", failures);
    return failures != 0;
}
