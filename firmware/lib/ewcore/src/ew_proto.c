/* Serial protocol: frame encoder, streaming decoder, typed payloads.  See ew_proto.h and
 * docs/protocol.md. */
#include "ew_proto.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Little-endian helpers (no alignment assumptions, no implementation-defined conversions)      */

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)((v >> (8 * i)) & 0xFFu);
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((v >> (8 * i)) & 0xFFu);
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

static int16_t get_i16(const uint8_t *p) {
    const uint16_t u = get_u16(p);
    return (int16_t)(u >= 0x8000u ? (int32_t)u - 0x10000 : (int32_t)u);
}

static int32_t get_i32(const uint8_t *p) {
    const uint32_t u = get_u32(p);
    return u >= 0x80000000u ? -(int32_t)(~u) - 1 : (int32_t)u;
}

/* Two's complement bit patterns; conversion of a negative value to unsigned is well defined. */
static void put_i16(uint8_t *p, int16_t v) { put_u16(p, (uint16_t)v); }
static void put_i32(uint8_t *p, int32_t v) { put_u32(p, (uint32_t)v); }

/* ------------------------------------------------------------------------------------------ */
/* Encoder                                                                                      */

size_t ew_proto_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len,
                       uint8_t *out, size_t out_cap) {
    if (out == NULL || len > EW_PROTO_MAX_PAYLOAD || (payload == NULL && len > 0)) return 0;
    if (out_cap < 2u + 1u + EW_PROTO_OVERHEAD) return 0;     /* < any frame */
    uint8_t hdr[EW_PROTO_HEADER], tail[4];
    hdr[0] = (uint8_t)EW_PROTO_MAGIC;
    hdr[1] = type;
    put_u16(hdr + 2, seq);
    uint32_t crc = ew_crc32_update(EW_CRC32_INIT, hdr, sizeof hdr);
    crc = ew_crc32_final(ew_crc32_update(crc, payload, len));
    put_u32(tail, crc);

    out[0] = 0;
    ew_cobs_encoder_t e;
    ew_cobs_encoder_begin(&e, out + 1, out_cap - 2u);       /* room for the closing 0x00 */
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
        const uint16_t diff = (uint16_t)(seq - d->expected_seq);   /* mod 2^16 */
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
    if (d->all_text) {          /* byte 1 of an encoded frame is 0xE7: a frame is never text */
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
        if (d->len == EW_PROTO_MAX_ENCODED) {       /* chunk full */
            if (d->all_text) {
                emit_text(d, cb, ctx);               /* an over-long text line: split it */
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

/* ------------------------------------------------------------------------------------------ */
/* Typed payloads                                                                               */

int ew_proto_pack_hello(const ew_proto_hello_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL || (m->board == NULL && m->board_len > 0)) return EW_PROTO_ERR_ARG;
    if (m->board_len > EW_PROTO_MAX_NAME || m->n_labels > EW_PROTO_MAX_LABELS) return EW_PROTO_ERR_RANGE;
    size_t need = EW_PROTO_HELLO_MIN_SIZE + m->board_len;
    for (unsigned i = 0; i < m->n_labels; i++) {
        if (m->labels[i] == NULL && m->label_lens[i] > 0) return EW_PROTO_ERR_ARG;
        if (m->label_lens[i] > EW_PROTO_MAX_NAME) return EW_PROTO_ERR_RANGE;
        need += 1u + m->label_lens[i];
    }
    if (cap < need) return EW_PROTO_ERR_SPACE;
    uint8_t *p = out;
    *p++ = m->proto_version;
    *p++ = m->fw_major;
    *p++ = m->fw_minor;
    *p++ = m->fw_patch;
    *p++ = m->reset_reason;
    put_u32(p, m->sample_rate_hz);
    p += 4;
    memcpy(p, m->model_hash, EW_PROTO_HASH_BYTES);
    p += EW_PROTO_HASH_BYTES;
    memcpy(p, m->config_hash, EW_PROTO_HASH_BYTES);
    p += EW_PROTO_HASH_BYTES;
    memcpy(p, m->node_id, EW_PROTO_NODE_ID_BYTES);
    p += EW_PROTO_NODE_ID_BYTES;
    *p++ = m->board_len;
    if (m->board_len > 0) memcpy(p, m->board, m->board_len);
    p += m->board_len;
    *p++ = m->n_labels;
    for (unsigned i = 0; i < m->n_labels; i++) {
        *p++ = m->label_lens[i];
        if (m->label_lens[i] > 0) memcpy(p, m->labels[i], m->label_lens[i]);
        p += m->label_lens[i];
    }
    return (int)(p - out);
}

/* Read a u8-length-prefixed string at p[*pos]; on success *pos moves past it. */
static int get_string(const uint8_t *p, size_t len, size_t *pos, size_t max, uint8_t *out_len,
                      const char **out) {
    if (*pos >= len) return EW_PROTO_ERR_SHORT;
    const uint8_t n = p[*pos];
    if (n > max) return EW_PROTO_ERR_RANGE;
    if (len - *pos - 1u < n) return EW_PROTO_ERR_SHORT;
    *out_len = n;
    *out = (const char *)(p + *pos + 1u);
    *pos += 1u + n;
    return EW_PROTO_OK;
}

int ew_proto_unpack_hello(const uint8_t *p, size_t len, ew_proto_hello_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    const size_t fixed = EW_PROTO_HELLO_MIN_SIZE - 2u;          /* up to node_id */
    if (len < fixed) return EW_PROTO_ERR_SHORT;
    memset(m, 0, sizeof *m);
    m->proto_version = p[0];
    m->fw_major = p[1];
    m->fw_minor = p[2];
    m->fw_patch = p[3];
    m->reset_reason = p[4];
    m->sample_rate_hz = get_u32(p + 5);
    memcpy(m->model_hash, p + 9, EW_PROTO_HASH_BYTES);
    memcpy(m->config_hash, p + 17, EW_PROTO_HASH_BYTES);
    memcpy(m->node_id, p + 25, EW_PROTO_NODE_ID_BYTES);
    size_t pos = fixed;
    int rc = get_string(p, len, &pos, EW_PROTO_MAX_NAME, &m->board_len, &m->board);
    if (rc != EW_PROTO_OK) return rc;
    if (pos >= len) return EW_PROTO_ERR_SHORT;
    const uint8_t count = p[pos++];
    if (count > EW_PROTO_MAX_LABELS) return EW_PROTO_ERR_RANGE;
    for (unsigned i = 0; i < count; i++) {
        rc = get_string(p, len, &pos, EW_PROTO_MAX_NAME, &m->label_lens[i], &m->labels[i]);
        if (rc != EW_PROTO_OK) return rc;
    }
    m->n_labels = count;
    return EW_PROTO_OK;
}

int ew_proto_pack_event(const ew_proto_event_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL) return EW_PROTO_ERR_ARG;
    if (cap < EW_PROTO_EVENT_SIZE) return EW_PROTO_ERR_SPACE;
    put_u64(out, m->onset_sample);
    put_u32(out + 8, m->duration_samples);
    out[12] = m->class_index;
    out[13] = m->score;
    out[14] = m->kind;
    put_u16(out + 15, m->hits);
    return (int)EW_PROTO_EVENT_SIZE;
}

int ew_proto_unpack_event(const uint8_t *p, size_t len, ew_proto_event_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < EW_PROTO_EVENT_SIZE) return EW_PROTO_ERR_SHORT;
    m->onset_sample = get_u64(p);
    m->duration_samples = get_u32(p + 8);
    m->class_index = p[12];
    m->score = p[13];
    m->kind = p[14];
    m->hits = get_u16(p + 15);
    return EW_PROTO_OK;
}

int ew_proto_pack_status(const ew_proto_status_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL) return EW_PROTO_ERR_ARG;
    if (cap < EW_PROTO_STATUS_SIZE) return EW_PROTO_ERR_SPACE;
    put_u64(out, m->sample_index);
    put_i16(out + 8, m->level_dbfs_q8);
    put_i16(out + 10, m->noise_floor_dbfs_q8);
    put_u16(out + 12, m->gate_duty_q16);
    put_u32(out + 14, m->inference_count);
    put_u32(out + 18, m->inference_us_last);
    put_u32(out + 22, m->inference_us_max);
    put_u32(out + 26, m->dropped_samples);
    out[30] = m->mode;
    put_u32(out + 31, m->credits);
    return (int)EW_PROTO_STATUS_SIZE;
}

int ew_proto_unpack_status(const uint8_t *p, size_t len, ew_proto_status_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < EW_PROTO_STATUS_SIZE) return EW_PROTO_ERR_SHORT;
    m->sample_index = get_u64(p);
    m->level_dbfs_q8 = get_i16(p + 8);
    m->noise_floor_dbfs_q8 = get_i16(p + 10);
    m->gate_duty_q16 = get_u16(p + 12);
    m->inference_count = get_u32(p + 14);
    m->inference_us_last = get_u32(p + 18);
    m->inference_us_max = get_u32(p + 22);
    m->dropped_samples = get_u32(p + 26);
    m->mode = p[30];
    m->credits = get_u32(p + 31);
    return EW_PROTO_OK;
}

int ew_proto_pack_pcm(uint64_t first_sample, const int16_t *samples, size_t n, uint8_t *out,
                      size_t cap) {
    if (out == NULL || (samples == NULL && n > 0)) return EW_PROTO_ERR_ARG;
    if (n > EW_PROTO_MAX_PCM) return EW_PROTO_ERR_RANGE;
    if (cap < EW_PROTO_PCM_HEADER + 2u * n) return EW_PROTO_ERR_SPACE;
    put_u64(out, first_sample);
    for (size_t i = 0; i < n; i++) put_i16(out + EW_PROTO_PCM_HEADER + 2u * i, samples[i]);
    return (int)(EW_PROTO_PCM_HEADER + 2u * n);
}

int ew_proto_unpack_pcm(const uint8_t *p, size_t len, ew_proto_pcm_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < EW_PROTO_PCM_HEADER) return EW_PROTO_ERR_SHORT;
    const size_t bytes = len - EW_PROTO_PCM_HEADER;
    if (bytes % 2u != 0 || bytes / 2u > EW_PROTO_MAX_PCM) return EW_PROTO_ERR_RANGE;
    m->first_sample = get_u64(p);
    m->n_samples = (uint16_t)(bytes / 2u);
    m->pcm_le = p + EW_PROTO_PCM_HEADER;
    return EW_PROTO_OK;
}

int16_t ew_proto_pcm_sample(const ew_proto_pcm_t *m, size_t i) { return get_i16(m->pcm_le + 2u * i); }

int ew_proto_pack_credit(const ew_proto_credit_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL) return EW_PROTO_ERR_ARG;
    if (cap < 4u) return EW_PROTO_ERR_SPACE;
    put_u32(out, m->credits_samples);
    return 4;
}

int ew_proto_unpack_credit(const uint8_t *p, size_t len, ew_proto_credit_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < 4u) return EW_PROTO_ERR_SHORT;
    m->credits_samples = get_u32(p);
    return EW_PROTO_OK;
}

int ew_proto_pack_config_get(const ew_proto_config_get_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL) return EW_PROTO_ERR_ARG;
    if (cap < 2u) return EW_PROTO_ERR_SPACE;
    put_u16(out, m->key);
    return 2;
}

int ew_proto_unpack_config_get(const uint8_t *p, size_t len, ew_proto_config_get_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < 2u) return EW_PROTO_ERR_SHORT;
    m->key = get_u16(p);
    return EW_PROTO_OK;
}

int ew_proto_pack_config(const ew_proto_config_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL) return EW_PROTO_ERR_ARG;
    if (cap < 6u) return EW_PROTO_ERR_SPACE;
    put_u16(out, m->key);
    put_i32(out + 2, m->value);
    return 6;
}

int ew_proto_unpack_config(const uint8_t *p, size_t len, ew_proto_config_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < 6u) return EW_PROTO_ERR_SHORT;
    m->key = get_u16(p);
    m->value = get_i32(p + 2);
    return EW_PROTO_OK;
}

int ew_proto_pack_ack(const ew_proto_ack_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL) return EW_PROTO_ERR_ARG;
    if (cap < 3u) return EW_PROTO_ERR_SPACE;
    put_u16(out, m->acked_seq);
    out[2] = m->acked_type;
    return 3;
}

int ew_proto_unpack_ack(const uint8_t *p, size_t len, ew_proto_ack_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < 3u) return EW_PROTO_ERR_SHORT;
    m->acked_seq = get_u16(p);
    m->acked_type = p[2];
    return EW_PROTO_OK;
}

int ew_proto_pack_error(const ew_proto_error_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL || (m->message == NULL && m->message_len > 0)) return EW_PROTO_ERR_ARG;
    if (m->message_len > EW_PROTO_MAX_ERROR_TEXT) return EW_PROTO_ERR_RANGE;
    if (cap < 5u + (size_t)m->message_len) return EW_PROTO_ERR_SPACE;
    put_u16(out, m->code);
    put_u16(out + 2, m->ref_seq);
    out[4] = m->message_len;
    if (m->message_len > 0) memcpy(out + 5, m->message, m->message_len);
    return 5 + (int)m->message_len;
}

int ew_proto_unpack_error(const uint8_t *p, size_t len, ew_proto_error_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < 4u) return EW_PROTO_ERR_SHORT;
    m->code = get_u16(p);
    m->ref_seq = get_u16(p + 2);
    size_t pos = 4;
    return get_string(p, len, &pos, EW_PROTO_MAX_ERROR_TEXT, &m->message_len, &m->message);
}

int ew_proto_pack_cmd(const ew_proto_cmd_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL) return EW_PROTO_ERR_ARG;
    if (cap < 5u) return EW_PROTO_ERR_SPACE;
    out[0] = m->command;
    put_u32(out + 1, m->arg);
    return 5;
}

int ew_proto_unpack_cmd(const uint8_t *p, size_t len, ew_proto_cmd_t *m) {
    if (m == NULL || (p == NULL && len > 0)) return EW_PROTO_ERR_ARG;
    if (len < 5u) return EW_PROTO_ERR_SHORT;
    m->command = p[0];
    m->arg = get_u32(p + 1);
    return EW_PROTO_OK;
}
