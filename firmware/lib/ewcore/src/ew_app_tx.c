/* Node application, transmit (lowest layer): frames out (HELLO, STATUS, ERROR, ACK, CREDIT,
 * CONFIG answers) and the AUDIO stream from the audio ring.  Calls only the protocol codec.
 * Layers: ew_app_tx.c <- ew_app_input.c <- ew_app_settings.c, ew_app_inject.c <- ew_app.c. */
#include <string.h>

#include "ew_app_internal.h"

#define RING EW_APP_AUDIO_RING_SAMPLES
#define AFRAME EW_APP_AUDIO_FRAME_SAMPLES
#define FULL_SCALE_Q8 (30 * 256) /* log2 Q8 of a full-scale mean square (2^30) */

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                     */

void ew_app__send(ew_app_t *a, uint8_t type, const uint8_t *payload, size_t len) {
    const size_t n = ew_proto_encode(type, a->tx_seq, payload, len, a->wire, sizeof(a->wire));
    a->tx_seq++;
    if (n == 0) { /* cannot happen with the app's own payloads */
        a->st.tx_errors++;
        return;
    }
    if (a->port.write(a->port.ctx, a->wire, n) < 0) {
        a->st.tx_errors++;
        return;
    }
    a->st.tx_frames++;
    a->st.tx_bytes += (uint32_t)n;
}

void ew_app__msg_str(ew_app_msg_t *m, const char *s) {
    while (*s != '\0' && m->len < EW_PROTO_MAX_ERROR_TEXT) m->buf[m->len++] = *s++;
    m->buf[m->len] = '\0';
}

void ew_app__msg_u64(ew_app_msg_t *m, uint64_t v) {
    char tmp[21];
    int i = 20;
    tmp[i] = '\0';
    do {
        tmp[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0);
    ew_app__msg_str(m, &tmp[i]);
}

void ew_app__send_error(ew_app_t *a, uint16_t code, uint16_t ref_seq, const char *msg) {
    ew_proto_error_t e;
    e.code = code;
    e.ref_seq = ref_seq;
    const size_t n = msg == NULL ? 0 : strlen(msg);
    e.message = msg;
    e.message_len = (uint8_t)(n > EW_PROTO_MAX_ERROR_TEXT ? EW_PROTO_MAX_ERROR_TEXT : n);
    const int len = ew_proto_pack_error(&e, a->payload, sizeof(a->payload));
    if (len >= 0) ew_app__send(a, EW_MSG_ERROR, a->payload, (size_t)len);
}

void ew_app_send_error(ew_app_t *a, uint16_t code, uint16_t ref_seq, const char *message) {
    if (a == NULL || a->rebooting) return;
    ew_app__send_error(a, code, ref_seq, message);
}

void ew_app__send_ack(ew_app_t *a, uint16_t seq, uint8_t type) {
    const ew_proto_ack_t m = { seq, type };
    const int len = ew_proto_pack_ack(&m, a->payload, sizeof(a->payload));
    if (len >= 0) ew_app__send(a, EW_MSG_ACK, a->payload, (size_t)len);
}

void ew_app__send_credit(ew_app_t *a, uint32_t n) {
    const ew_proto_credit_t m = { n };
    const int len = ew_proto_pack_credit(&m, a->payload, sizeof(a->payload));
    a->st.credits += n;
    if (len >= 0) ew_app__send(a, EW_MSG_CREDIT, a->payload, (size_t)len);
}

void ew_app__send_config(ew_app_t *a, uint16_t key, int32_t value) {
    const ew_proto_config_t m = { key, value };
    const int len = ew_proto_pack_config(&m, a->payload, sizeof(a->payload));
    if (len >= 0) ew_app__send(a, EW_MSG_CONFIG, a->payload, (size_t)len);
}

/* dBFS x 256 of a log2 Q8 mean-square level: (L - 7680) * 3.0103, 3.0103 ~ 3083 / 1024. */
static int16_t level_dbfs_q8(int32_t level_q8) {
    const int32_t v = ((level_q8 - FULL_SCALE_Q8) * 3083 + 512) >> 10;
    return (int16_t)(v < -32768 ? -32768 : (v > 32767 ? 32767 : v));
}

void ew_app_send_status(ew_app_t *a) {
    if (a == NULL || a->rebooting) return;
    ew_proto_status_t s;
    const ew_node_stats_t *ns = &a->node.stats;
    const uint64_t blocks = ns->blocks - a->status_blocks0;
    const uint64_t open = ns->gate_open_blocks - a->status_open0;
    s.sample_index = a->st.samples;
    s.level_dbfs_q8 = level_dbfs_q8(a->node.gate.level_q8);
    s.noise_floor_dbfs_q8 = level_dbfs_q8(a->node.gate.nf_q16 >> 8);
    s.gate_duty_q16 = (uint16_t)(blocks == 0 ? 0 : (open * 65535u) / blocks);
    s.inference_count = a->st.inference_count;
    s.inference_us_last = a->st.inference_us_last;
    s.inference_us_max = a->inf_us_max_period;
    s.dropped_samples = a->st.dropped_samples;
    s.mode = a->ncfg.mode;
    s.credits = a->st.credits;
    const int len = ew_proto_pack_status(&s, a->payload, sizeof(a->payload));
    if (len >= 0) ew_app__send(a, EW_MSG_STATUS, a->payload, (size_t)len);
    a->st.status_frames++;
    a->status_blocks0 = ns->blocks;
    a->status_open0 = ns->gate_open_blocks;
    a->inf_us_max_period = 0;
    a->status_t0_us = a->port.time_us(a->port.ctx);
}

void ew_app_send_hello(ew_app_t *a) {
    if (a == NULL || a->rebooting) return;
    ew_proto_hello_t h;
    memset(&h, 0, sizeof(h));
    h.proto_version = EW_PROTO_VERSION;
    h.fw_major = a->info.fw_major;
    h.fw_minor = a->info.fw_minor;
    h.fw_patch = a->info.fw_patch;
    h.reset_reason = a->info.reset_reason;
    h.sample_rate_hz = EW_SAMPLE_RATE_HZ;
    memcpy(h.model_hash, a->info.model_hash, EW_PROTO_HASH_BYTES);
    memcpy(h.config_hash, a->info.config_hash, EW_PROTO_HASH_BYTES);
    memcpy(h.node_id, a->info.node_id, EW_PROTO_NODE_ID_BYTES);
    h.board = a->info.board;
    h.board_len = (uint8_t)strlen(a->info.board);
    h.n_labels = a->info.n_classes;
    for (int i = 0; i < a->info.n_classes; i++) {
        h.labels[i] = a->info.labels[i];
        h.label_lens[i] = (uint8_t)strlen(a->info.labels[i]);
    }
    const int len = ew_proto_pack_hello(&h, a->payload, sizeof(a->payload));
    if (len >= 0) ew_app__send(a, EW_MSG_HELLO, a->payload, (size_t)len);
}

/* ------------------------------------------------------------------------------------------ */
/* AUDIO frames from the audio ring                                                           */

void ew_app__audio_resync(ew_app_t *a) {
    a->a_next = a->a_written;
    a->a_stop = a->a_written;
}

/* Send pending AUDIO frames: at most `burst` frames; partial frames only when `final`, at the
 * end of an event segment or before an overrun hole. */
void ew_app__audio_send(ew_app_t *a, uint32_t burst, int final) {
    const uint8_t mode = a->set.audio_stream;
    if (mode == EW_AUDIO_STREAM_OFF) {
        a->a_next = a->a_written;
        return;
    }
    for (uint32_t sent = 0; sent < burst;) {
        uint64_t limit = a->a_written;
        int partial = final;
        if (mode == EW_AUDIO_STREAM_EVENTS && a->a_stop <= limit) {
            limit = a->a_stop;
            partial = 1;
        }
        if (limit <= a->a_next) return;
        const uint64_t oldest = a->a_written > RING ? a->a_written - RING : 0;
        if (a->a_next < oldest) { /* overwritten before it could be sent */
            a->st.audio_skipped_samples += (uint32_t)(oldest - a->a_next);
            a->a_next = oldest;
            continue;
        }
        if (a->a_next >= a->a_hole_start && a->a_next < a->a_hole_end) {
            a->a_next = a->a_hole_end; /* overrun zero fill: not real audio */
            continue;
        }
        if (a->a_next < a->a_hole_start && a->a_hole_start < limit) {
            limit = a->a_hole_start;
            partial = 1;
        }
        uint64_t n = limit - a->a_next;
        if (n < AFRAME && !partial) return;
        if (n > AFRAME) n = AFRAME;
        /* pack straight from the ring (at most two pieces) */
        int16_t *buf = a->work;
        const uint32_t at = (uint32_t)(a->a_next % RING);
        const uint32_t first = (uint32_t)n <= RING - at ? (uint32_t)n : RING - at;
        memcpy(buf, &a->aring[at], first * sizeof(int16_t));
        memcpy(&buf[first], a->aring, ((uint32_t)n - first) * sizeof(int16_t));
        const int len =
            ew_proto_pack_pcm(a->a_next, buf, (size_t)n, a->payload, sizeof(a->payload));
        if (len >= 0) ew_app__send(a, EW_MSG_AUDIO, a->payload, (size_t)len);
        a->st.audio_frames++;
        a->a_next += n;
        sent++;
    }
}

void ew_app__audio_push(ew_app_t *a, const int16_t *x, size_t n) {
    while (n > 0) {
        const uint32_t at = (uint32_t)(a->a_written % RING);
        const size_t take = n < (size_t)(RING - at) ? n : (size_t)(RING - at);
        memcpy(&a->aring[at], x, take * sizeof(int16_t));
        a->a_written += take;
        x += take;
        n -= take;
    }
}
