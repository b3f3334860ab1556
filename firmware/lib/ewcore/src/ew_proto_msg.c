/* Serial protocol, message payloads: pack / unpack of each message type.  See ew_proto.h and
 * docs/protocol.md; the frame codec is in ew_proto_frame.c. */
#include "ew_proto.h"

#include <string.h>

#include "ew_proto_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Typed payloads                                                                               */

int ew_proto_pack_hello(const ew_proto_hello_t *m, uint8_t *out, size_t cap) {
    if (m == NULL || out == NULL || (m->board == NULL && m->board_len > 0)) return EW_PROTO_ERR_ARG;
    if (m->board_len > EW_PROTO_MAX_NAME || m->n_labels > EW_PROTO_MAX_LABELS)
        return EW_PROTO_ERR_RANGE;
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
    const size_t fixed = EW_PROTO_HELLO_MIN_SIZE - 2u; /* up to node_id */
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

int16_t ew_proto_pcm_sample(const ew_proto_pcm_t *m, size_t i) {
    return get_i16(m->pcm_le + 2u * i);
}

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
    if (m == NULL || out == NULL || (m->message == NULL && m->message_len > 0))
        return EW_PROTO_ERR_ARG;
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
