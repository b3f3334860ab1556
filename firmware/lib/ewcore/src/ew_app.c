/* Node application hot path: frame dispatch, input paths, INJECT credits, AUDIO streaming,
 * EVENT / STATUS generation (see ew_app.h; configuration and init in ew_app_util.c). */
#include <string.h>

#include "ew_app_internal.h"

#define RING EW_APP_AUDIO_RING_SAMPLES
#define INJ EW_APP_INJECT_SAMPLES
#define AFRAME EW_APP_AUDIO_FRAME_SAMPLES
#define MAX_GAP_SAMPLES EW_SAMPLE_RATE_HZ  /* larger INJECT position jumps (> 1 s) are refused:
                                               credit bounds a legitimate gap by the buffer */
#define FULL_SCALE_Q8 (30 * 256)                   /* log2 Q8 of a full-scale mean square (2^30) */

static const int16_t zeros[AFRAME];

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                       */

void ew_app__send(ew_app_t *a, uint8_t type, const uint8_t *payload, size_t len) {
    const size_t n = ew_proto_encode(type, a->tx_seq, payload, len, a->wire, sizeof(a->wire));
    a->tx_seq++;
    if (n == 0) {               /* cannot happen with the app's own payloads */
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

static void send_ack(ew_app_t *a, uint16_t seq, uint8_t type) {
    const ew_proto_ack_t m = {seq, type};
    const int len = ew_proto_pack_ack(&m, a->payload, sizeof(a->payload));
    if (len >= 0) ew_app__send(a, EW_MSG_ACK, a->payload, (size_t)len);
}

static void send_credit(ew_app_t *a, uint32_t n) {
    const ew_proto_credit_t m = {n};
    const int len = ew_proto_pack_credit(&m, a->payload, sizeof(a->payload));
    a->st.credits += n;
    if (len >= 0) ew_app__send(a, EW_MSG_CREDIT, a->payload, (size_t)len);
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

/* ------------------------------------------------------------------------------------------ */
/* AUDIO frames from the audio ring                                                             */

void ew_app__audio_resync(ew_app_t *a) {
    a->a_next = a->a_written;
    a->a_stop = a->a_written;
}

/* Send pending AUDIO frames: at most `burst` frames; partial frames only when `final`, at the
 * end of an event segment or before an overrun hole. */
static void audio_send(ew_app_t *a, uint32_t burst, int final) {
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
        if (a->a_next < oldest) {                    /* overwritten before it could be sent */
            a->st.audio_skipped_samples += (uint32_t)(oldest - a->a_next);
            a->a_next = oldest;
            continue;
        }
        if (a->a_next >= a->a_hole_start && a->a_next < a->a_hole_end) {
            a->a_next = a->a_hole_end;               /* overrun zero fill: not real audio */
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
        const int len = ew_proto_pack_pcm(a->a_next, buf, (size_t)n, a->payload, sizeof(a->payload));
        if (len >= 0) ew_app__send(a, EW_MSG_AUDIO, a->payload, (size_t)len);
        a->st.audio_frames++;
        a->a_next += n;
        sent++;
    }
}

static void audio_push(ew_app_t *a, const int16_t *x, size_t n) {
    while (n > 0) {
        const uint32_t at = (uint32_t)(a->a_written % RING);
        const size_t take = n < (size_t)(RING - at) ? n : (size_t)(RING - at);
        memcpy(&a->aring[at], x, take * sizeof(int16_t));
        a->a_written += take;
        x += take;
        n -= take;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Detector callbacks                                                                           */

static int on_classify(void *ctx, const ew_window_t *w, const int8_t *features, uint8_t *scores) {
    ew_app_t *a = (ew_app_t *)ctx;
    uint64_t (*clock)(void *) = a->port.perf_us != NULL ? a->port.perf_us : a->port.time_us;
    ew_window_t win = *w;
    win.start_sample += a->node_base;
    win.trigger_sample += a->node_base;
    const uint64_t t0 = clock(a->port.ctx);
    const int rc = a->port.classify(a->port.ctx, &win, features, scores, a->info.n_classes);
    const uint64_t dt = clock(a->port.ctx) - t0;
    const uint32_t us = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    a->st.inference_count++;
    a->st.inference_us_last = us;
    if (us > a->st.inference_us_max) a->st.inference_us_max = us;
    if (us > a->inf_us_max_period) a->inf_us_max_period = us;
    return rc;
}

static void on_event(void *ctx, const ew_event_t *ev) {
    ew_app_t *a = (ew_app_t *)ctx;
    ew_proto_event_t m;
    m.onset_sample = ev->onset_sample + a->node_base;
    m.duration_samples = ev->duration_samples;
    m.class_index = ev->class_index;
    m.score = ev->score;
    m.kind = ev->kind;
    m.hits = ev->hits;
    const int len = ew_proto_pack_event(&m, a->payload, sizeof(a->payload));
    if (len >= 0) ew_app__send(a, EW_MSG_EVENT, a->payload, (size_t)len);
    a->st.events++;
    if (ev->kind != EW_EVENT_ONSET) return;
    if (a->port.alarm != NULL && a->set.alarm_ms > 0 && ev->class_index < 32 &&
        ((a->set.alarm_classes >> ev->class_index) & 1u))
        a->port.alarm(a->port.ctx, ev->class_index, a->set.alarm_ms);
    if (a->set.audio_stream == EW_AUDIO_STREAM_EVENTS && a->a_next >= a->a_stop) {
        /* a new segment: pre-roll from the ring, never repeating the previous segment */
        uint64_t start = m.onset_sample > EW_APP_EVENT_PREROLL_SAMPLES
                             ? m.onset_sample - EW_APP_EVENT_PREROLL_SAMPLES : 0;
        const uint64_t oldest = a->a_written > RING ? a->a_written - RING : 0;
        if (start < oldest) start = oldest;
        if (start < a->a_stop) start = a->a_stop;
        a->a_next = start;
    }
    const uint64_t stop = m.onset_sample + m.duration_samples + EW_APP_EVENT_POSTROLL_SAMPLES;
    if (stop > a->a_stop) a->a_stop = stop;
}

int ew_app__node_init(ew_app_t *a) {
    return ew_node_init(&a->node, &a->ncfg, on_classify, on_event, NULL, a);
}

/* ------------------------------------------------------------------------------------------ */
/* Sample path                                                                                  */

static int any_event_open(const ew_app_t *a) {
    for (int c = 0; c < a->ncfg.n_classes; c++)
        if (a->node.active[c].active) return 1;
    return 0;
}

/* 16 kHz samples into the audio ring and the detector.  gain: apply GAIN_DB_Q8 (microphone). */
static void process(ew_app_t *a, const int16_t *x, size_t n, int gain) {
    const int32_t g = a->set.gain_q16;
    while (n > 0) {
        const size_t take = n < AFRAME ? n : AFRAME;
        const int16_t *src = x;
        if (gain && g != 65536) {
            for (size_t i = 0; i < take; i++) {
                const int64_t y = ((int64_t)x[i] * g + 32768) >> 16;   /* 16 + 24 bits */
                a->work[i] = (int16_t)(y > 32767 ? 32767 : (y < -32768 ? -32768 : y));
            }
            src = a->work;
        }
        audio_push(a, src, take);
        ew_node_process(&a->node, src, take);
        a->st.samples += take;
        if (a->set.audio_stream == EW_AUDIO_STREAM_EVENTS && any_event_open(a)) {
            const uint64_t stop = a->a_written + EW_APP_EVENT_POSTROLL_SAMPLES;
            if (stop > a->a_stop) a->a_stop = stop;
        }
        audio_send(a, EW_APP_AUDIO_BURST, 0);
        x += take;
        n -= take;
    }
}

/* n samples of silence standing for lost input: processed, kept out of AUDIO. */
static void process_hole(ew_app_t *a, uint64_t n) {
    a->a_hole_start = a->a_written;
    a->a_hole_end = a->a_written + n;
    while (n > 0) {
        const size_t take = n < AFRAME ? (size_t)n : AFRAME;
        process(a, zeros, take, 0);
        n -= take;
    }
}

int ew_app_feed_pcm16(ew_app_t *a, const int16_t *pcm, size_t n) {
    if (a == NULL || (pcm == NULL && n > 0)) return EW_ERR_ARG;
    if (a->rebooting || a->input != EW_APP_INPUT_MIC) return EW_APP_ERR_STATE;
    a->feed_factor = 1;
    process(a, pcm, n, 1);
    return EW_OK;
}

int ew_app_feed_adc(ew_app_t *a, const uint16_t *codes, size_t n) {
    if (a == NULL || (codes == NULL && n > 0)) return EW_ERR_ARG;
    if (!a->has_adc) return EW_ERR_FACTOR;
    if (a->rebooting || a->input != EW_APP_INPUT_MIC) return EW_APP_ERR_STATE;
    a->feed_factor = a->decim.factor;
    while (n > 0) {
        const size_t take = n < AFRAME ? n : AFRAME;
        ew_adc_to_pcm(codes, a->work, take);
        const size_t m = ew_decim_process(&a->decim, a->work, take, a->dec_out);
        process(a, a->dec_out, m, 1);
        codes += take;
        n -= take;
    }
    return EW_OK;
}

void ew_app_note_overrun(ew_app_t *a, uint32_t n) {
    if (a == NULL || a->rebooting || a->input != EW_APP_INPUT_MIC || n == 0) return;
    const uint32_t f = a->feed_factor ? a->feed_factor : 1u;
    const uint64_t total = (uint64_t)a->overrun_rem + n;
    const uint64_t lost = total / f;
    a->overrun_rem = (uint32_t)(total % f);
    a->st.dropped_samples += (uint32_t)lost;
    ew_app_msg_t msg = {{0}, 0};
    ew_app__msg_str(&msg, "input overrun: ");
    ew_app__msg_u64(&msg, lost);
    ew_app__msg_str(&msg, " samples lost at sample ");
    ew_app__msg_u64(&msg, a->st.samples);
    ew_app__send_error(a, EW_ERRC_OVERRUN, 0, msg.buf);
    process_hole(a, lost);
}

/* ------------------------------------------------------------------------------------------ */
/* INJECT                                                                                       */

/* Process every queued INJECT sample (in ring order). */
static void inject_drain(ew_app_t *a, uint32_t max) {
    while (a->inj_count > 0 && max > 0) {
        uint32_t take = a->inj_count < INJ - a->inj_head ? a->inj_count : INJ - a->inj_head;
        if (take > max) take = max;
        process(a, &a->inj[a->inj_head], take, 0);
        a->inj_head = (a->inj_head + take) % INJ;
        a->inj_count -= take;
        max -= take;
    }
}

/* Grant credit: G never exceeds the free space; grants come in steps. */
static void grant(ew_app_t *a) {
    if (a->input != EW_APP_INPUT_INJECT) return;
    const uint32_t free_space = INJ - a->inj_count;
    if (free_space <= a->st.credits) return;
    const uint32_t g = free_space - a->st.credits;
    if (g >= EW_APP_CREDIT_STEP || a->inj_count == 0) send_credit(a, g);
}

static void report_seq_gap(ew_app_t *a, uint16_t ref_seq, uint64_t gap_samples) {
    ew_app_msg_t msg = {{0}, 0};
    if (a->pending_seq_gap > 0) {
        ew_app__msg_u64(&msg, a->pending_seq_gap);
        ew_app__msg_str(&msg, " host frames missing");
        if (gap_samples > 0) ew_app__msg_str(&msg, "; ");
    }
    if (gap_samples > 0) {
        ew_app__msg_str(&msg, "INJECT position gap: ");
        ew_app__msg_u64(&msg, gap_samples);
        ew_app__msg_str(&msg, " samples zero-filled");
    }
    a->pending_seq_gap = 0;
    ew_app__send_error(a, EW_ERRC_SEQ_GAP, ref_seq, msg.buf);
}

static void handle_inject(ew_app_t *a, uint16_t seq, const uint8_t *p, size_t len) {
    ew_proto_pcm_t m;
    if (ew_proto_unpack_pcm(p, len, &m) != EW_PROTO_OK) {
        a->st.rx_bad_payload++;
        ew_app__send_error(a, EW_ERRC_BAD_PAYLOAD, seq, "INJECT: bad payload");
        return;
    }
    if (a->input != EW_APP_INPUT_INJECT) {
        a->st.inject_no_credit++;
        ew_app__send_error(a, EW_ERRC_NO_CREDIT, seq, "INJECT: input is not INJECT (START_STREAM 1)");
        return;
    }
    const uint32_t n = m.n_samples;
    if (n > a->st.credits) {
        if (a->pending_seq_gap > 0) report_seq_gap(a, seq, 0);
        a->st.inject_no_credit++;
        ew_app_msg_t msg = {{0}, 0};
        ew_app__msg_str(&msg, "INJECT of ");
        ew_app__msg_u64(&msg, n);
        ew_app__msg_str(&msg, " samples, credit ");
        ew_app__msg_u64(&msg, a->st.credits);
        ew_app__msg_str(&msg, ": dropped");
        ew_app__send_error(a, EW_ERRC_NO_CREDIT, seq, msg.buf);
        return;
    }
    uint64_t gap = 0;
    if (m.first_sample > a->inj_pos) {
        gap = m.first_sample - a->inj_pos;
        if (gap > MAX_GAP_SAMPLES) {
            ew_app__send_error(a, EW_ERRC_BAD_VALUE, seq, "INJECT: first_sample jumps > 1 s ahead");
            return;
        }
    }
    a->st.credits -= n;
    if (gap > 0) {
        inject_drain(a, UINT32_MAX);       /* keep the order: queued samples, zeros, new ones */
        uint64_t left = gap;
        while (left > 0) {
            const size_t take = left < AFRAME ? (size_t)left : AFRAME;
            process(a, zeros, take, 0);
            left -= take;
        }
        a->st.inject_gap_samples += (uint32_t)gap;
        a->st.credits -= gap < a->st.credits ? (uint32_t)gap : a->st.credits;
        a->inj_pos = m.first_sample;
        report_seq_gap(a, seq, gap);
    } else if (a->pending_seq_gap > 0) {
        report_seq_gap(a, seq, 0);
    }
    uint32_t skip = 0;
    if (m.first_sample < a->inj_pos) {
        const uint64_t behind = a->inj_pos - m.first_sample;
        skip = behind < n ? (uint32_t)behind : n;
        a->st.inject_overlap_samples += skip;
    }
    if (a->inj_count + (n - skip) > INJ) inject_drain(a, UINT32_MAX);  /* host ignored credit */
    for (uint32_t i = skip; i < n; i++) {
        a->inj[(a->inj_head + a->inj_count) % INJ] = ew_proto_pcm_sample(&m, i);
        a->inj_count++;
    }
    a->st.inject_samples += n - skip;
    if (m.first_sample + n > a->inj_pos) a->inj_pos = m.first_sample + n;
}

/* ------------------------------------------------------------------------------------------ */
/* Streams                                                                                      */

void ew_app__new_stream(ew_app_t *a) {
    ew_node_reset(&a->node);
    if (a->has_adc) ew_decim_reset(&a->decim);
    a->node_base = 0;
    a->st.samples = 0;
    a->st.credits = 0;
    a->inj_head = a->inj_count = 0;
    a->inj_pos = 0;
    a->a_written = a->a_next = a->a_stop = 0;
    a->a_hole_start = a->a_hole_end = 0;
    a->status_blocks0 = a->status_open0 = 0;
    a->overrun_rem = 0;
}

/* End the current stream: queued INJECT audio, pending windows, open events, last AUDIO. */
static void end_stream(ew_app_t *a) {
    if (a->input == EW_APP_INPUT_STOPPED) return;
    inject_drain(a, UINT32_MAX);
    ew_node_flush(&a->node);
    if (a->set.audio_stream == EW_AUDIO_STREAM_EVENTS && a->a_stop > a->a_written)
        a->a_stop = a->a_written;
    audio_send(a, UINT32_MAX, 1);
    a->st.credits = 0;
    a->input = EW_APP_INPUT_STOPPED;
}

static void start_stream(ew_app_t *a, uint8_t input) {
    ew_app__new_stream(a);
    a->input = input;
    if (input == EW_APP_INPUT_INJECT) grant(a);
}

int ew_app_set_input(ew_app_t *a, uint8_t input) {
    if (a == NULL || input > EW_APP_INPUT_STOPPED) return EW_ERR_ARG;
    if (a->rebooting) return EW_APP_ERR_STATE;
    end_stream(a);
    if (input != EW_APP_INPUT_STOPPED) start_stream(a, input);
    return EW_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Frame dispatch                                                                               */

static void handle_cmd(ew_app_t *a, uint16_t seq, const uint8_t *p, size_t len) {
    ew_proto_cmd_t m;
    if (ew_proto_unpack_cmd(p, len, &m) != EW_PROTO_OK) {
        a->st.rx_bad_payload++;
        ew_app__send_error(a, EW_ERRC_BAD_PAYLOAD, seq, "CMD: payload shorter than 5 bytes");
        return;
    }
    switch (m.command) {
    case EW_CMD_HELLO:
        ew_app_send_hello(a);
        break;
    case EW_CMD_REBOOT:
        if (a->port.reboot == NULL) {
            ew_app__send_error(a, EW_ERRC_UNSUPPORTED, seq, "REBOOT: not supported by this port");
            break;
        }
        send_ack(a, seq, EW_MSG_CMD);
        a->rebooting = 1;
        a->port.reboot(a->port.ctx);
        break;
    case EW_CMD_STATUS:
        ew_app_send_status(a);
        break;
    case EW_CMD_START_STREAM:
        if (m.arg > 1) {
            ew_app__send_error(a, EW_ERRC_BAD_VALUE, seq, "START_STREAM: arg is 0 (mic) or 1 (inject)");
            break;
        }
        end_stream(a);                     /* the old stream's last EVENTs precede the ACK */
        send_ack(a, seq, EW_MSG_CMD);
        start_stream(a, m.arg == 1 ? EW_APP_INPUT_INJECT : EW_APP_INPUT_MIC);
        break;
    case EW_CMD_STOP_STREAM:
        end_stream(a);
        send_ack(a, seq, EW_MSG_CMD);
        break;
    case EW_CMD_FACTORY_RESET:
        ew_app_factory_reset(a);
        send_ack(a, seq, EW_MSG_CMD);
        break;
    default:
        ew_app__send_error(a, EW_ERRC_BAD_VALUE, seq, "CMD: unknown command");
        break;
    }
}

static void send_config(ew_app_t *a, uint16_t key, int32_t value) {
    const ew_proto_config_t m = {key, value};
    const int len = ew_proto_pack_config(&m, a->payload, sizeof(a->payload));
    if (len >= 0) ew_app__send(a, EW_MSG_CONFIG, a->payload, (size_t)len);
}

static void handle_config(ew_app_t *a, uint8_t type, uint16_t seq, const uint8_t *p, size_t len) {
    int32_t value = 0;
    int rc;
    uint16_t key;
    if (type == EW_MSG_CONFIG_GET) {
        ew_proto_config_get_t m;
        if (ew_proto_unpack_config_get(p, len, &m) != EW_PROTO_OK) {
            a->st.rx_bad_payload++;
            ew_app__send_error(a, EW_ERRC_BAD_PAYLOAD, seq, "CONFIG_GET: payload shorter than 2 bytes");
            return;
        }
        key = m.key;
        rc = ew_app_config_get(a, key, &value);
    } else {
        ew_proto_config_t m;
        if (ew_proto_unpack_config(p, len, &m) != EW_PROTO_OK) {
            a->st.rx_bad_payload++;
            ew_app__send_error(a, EW_ERRC_BAD_PAYLOAD, seq, "CONFIG_SET: payload shorter than 6 bytes");
            return;
        }
        key = m.key;
        rc = ew_app_config_set(a, key, m.value, &value);
    }
    if (rc == EW_APP_ERR_KEY) {
        ew_app__send_error(a, EW_ERRC_BAD_CONFIG_KEY, seq, "unknown CONFIG key");
        return;
    }
    if (rc != EW_OK) {
        ew_app__send_error(a, EW_ERRC_BAD_VALUE, seq, "CONFIG value out of range");
        return;
    }
    send_config(a, key, value);
    if (type == EW_MSG_CONFIG_SET && key == EW_CFG_BAUD && a->port.set_baud != NULL &&
        a->port.set_baud(a->port.ctx, a->set.baud) < 0)
        a->st.persist_errors++;
}

static void on_item(void *ctx, const ew_proto_item_t *it) {
    ew_app_t *a = (ew_app_t *)ctx;
    if (a->rebooting) return;
    switch (it->kind) {
    case EW_PROTO_ITEM_FRAME:
        break;
    case EW_PROTO_ITEM_SEQ_GAP:
        a->st.rx_seq_gaps++;
        a->pending_seq_gap += it->count;
        return;
    case EW_PROTO_ITEM_ERROR: {
        a->st.rx_bad_frames++;
        ew_app_msg_t msg = {{0}, 0};
        ew_app__msg_str(&msg, "bad frame: ");
        ew_app__msg_str(&msg, ew_proto_bad_name(it->error));
        ew_app__msg_str(&msg, ", ");
        ew_app__msg_u64(&msg, it->raw_len);
        ew_app__msg_str(&msg, " bytes");
        ew_app__send_error(a, EW_ERRC_BAD_FRAME, 0, msg.buf);
        return;
    }
    default:                                   /* log text, backward seq, host reset */
        return;
    }
    a->st.rx_frames++;
    if (a->pending_seq_gap > 0 && it->type != EW_MSG_INJECT) report_seq_gap(a, it->seq, 0);
    switch (it->type) {
    case EW_MSG_HELLO:
        ew_app_send_hello(a);
        break;
    case EW_MSG_CMD:
        handle_cmd(a, it->seq, it->data, it->len);
        break;
    case EW_MSG_CONFIG_GET:
    case EW_MSG_CONFIG_SET:
        handle_config(a, it->type, it->seq, it->data, it->len);
        break;
    case EW_MSG_INJECT:
        handle_inject(a, it->seq, it->data, it->len);
        break;
    case EW_MSG_ACK:
    case EW_MSG_ERROR:                         /* a host's ACK / ERROR needs no answer */
        break;
    default: {                                 /* unknown, or a node->host type */
        a->st.rx_unknown++;
        ew_app_msg_t msg = {{0}, 0};
        ew_app__msg_str(&msg, "type ");
        ew_app__msg_u64(&msg, it->type);
        ew_app__msg_str(&msg, it->unknown_type ? " is unknown" : " is not handled by the node");
        ew_app__send_error(a, EW_ERRC_UNKNOWN_TYPE, it->seq, msg.buf);
        break;
    }
    }
}

void ew_app_rx(ew_app_t *a, const uint8_t *data, size_t n) {
    if (a == NULL || a->rebooting || (data == NULL && n > 0)) return;
    ew_proto_decoder_feed(&a->dec, data, n, on_item, a);
}

void ew_app_poll(ew_app_t *a) {
    if (a == NULL || a->rebooting) return;
    if (a->input == EW_APP_INPUT_INJECT) {
        inject_drain(a, INJ);
        grant(a);
    }
    audio_send(a, EW_APP_AUDIO_BURST, 0);
    if (a->set.status_period_ms > 0) {
        const uint64_t now = a->port.time_us(a->port.ctx);
        if (now - a->status_t0_us >= (uint64_t)a->set.status_period_ms * 1000u) ew_app_send_status(a);
    }
}

void ew_app_get_stats(const ew_app_t *a, ew_app_stats_t *out) {
    *out = a->st;
    out->input = a->input;
    out->inject_queued = a->inj_count;
}
