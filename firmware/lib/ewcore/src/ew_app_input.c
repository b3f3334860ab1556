/* Node application, audio input: detector callbacks (classifier hand-off, EVENT, alarm), the
 * sample path (gain, audio ring, detector), microphone / ADC feeds, overruns, stream reset.
 * Calls ew_app_tx.c only (layers: see ew_app_tx.c). */
#include <string.h>

#include "ew_app_internal.h"

#define RING EW_APP_AUDIO_RING_SAMPLES
#define AFRAME EW_APP_AUDIO_FRAME_SAMPLES

static const int16_t zeros[AFRAME];

/* ------------------------------------------------------------------------------------------ */
/* Detector callbacks                                                                         */

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
                             ? m.onset_sample - EW_APP_EVENT_PREROLL_SAMPLES
                             : 0;
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

/* ------------------------------------------------------------------------------------------ */
/* Sample path                                                                                */

static int any_event_open(const ew_app_t *a) {
    for (int c = 0; c < a->ncfg.n_classes; c++)
        if (a->node.active[c].active) return 1;
    return 0;
}

/* 16 kHz samples into the audio ring and the detector.  gain: apply GAIN_DB_Q8 (microphone). */
void ew_app__process(ew_app_t *a, const int16_t *x, size_t n, int gain) {
    const int32_t g = a->set.gain_q16;
    while (n > 0) {
        const size_t take = n < AFRAME ? n : AFRAME;
        const int16_t *src = x;
        if (gain && g != 65536) {
            for (size_t i = 0; i < take; i++) {
                const int64_t y = ((int64_t)x[i] * g + 32768) >> 16; /* 16 + 24 bits */
                a->work[i] = (int16_t)(y > 32767 ? 32767 : (y < -32768 ? -32768 : y));
            }
            src = a->work;
        }
        ew_app__audio_push(a, src, take);
        ew_node_process(&a->node, src, take);
        a->st.samples += take;
        if (a->set.audio_stream == EW_AUDIO_STREAM_EVENTS && any_event_open(a)) {
            const uint64_t stop = a->a_written + EW_APP_EVENT_POSTROLL_SAMPLES;
            if (stop > a->a_stop) a->a_stop = stop;
        }
        ew_app__audio_send(a, EW_APP_AUDIO_BURST, 0);
        x += take;
        n -= take;
    }
}

/* n samples of silence (INJECT position gaps, overrun holes). */
void ew_app__process_silence(ew_app_t *a, uint64_t n) {
    while (n > 0) {
        const size_t take = n < AFRAME ? (size_t)n : AFRAME;
        ew_app__process(a, zeros, take, 0);
        n -= take;
    }
}

/* n samples of silence standing for lost input: processed, kept out of AUDIO. */
static void process_hole(ew_app_t *a, uint64_t n) {
    a->a_hole_start = a->a_written;
    a->a_hole_end = a->a_written + n;
    ew_app__process_silence(a, n);
}

int ew_app_feed_pcm16(ew_app_t *a, const int16_t *pcm, size_t n) {
    if (a == NULL || (pcm == NULL && n > 0)) return EW_ERR_ARG;
    if (a->rebooting || a->input != EW_APP_INPUT_MIC) return EW_APP_ERR_STATE;
    a->feed_factor = 1;
    ew_app__process(a, pcm, n, 1);
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
        ew_app__process(a, a->dec_out, m, 1);
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
    ew_app_msg_t msg = { { 0 }, 0 };
    ew_app__msg_str(&msg, "input overrun: ");
    ew_app__msg_u64(&msg, lost);
    ew_app__msg_str(&msg, " samples lost at sample ");
    ew_app__msg_u64(&msg, a->st.samples);
    ew_app__send_error(a, EW_ERRC_OVERRUN, 0, msg.buf);
    process_hole(a, lost);
}
