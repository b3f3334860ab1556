/* Node application, INJECT and streams: the INJECT queue, credits, host sequence gaps, stream
 * start / end (ew_app_set_input, START_STREAM / STOP_STREAM).  Calls ew_app_input.c and
 * ew_app_tx.c (layers: see ew_app_tx.c). */
#include "ew_app_internal.h"

#define INJ EW_APP_INJECT_SAMPLES
#define MAX_GAP_SAMPLES \
    EW_SAMPLE_RATE_HZ /* larger INJECT position jumps (> 1 s) are refused:
                                               credit bounds a legitimate gap by the buffer */

/* ------------------------------------------------------------------------------------------ */
/* INJECT                                                                                     */

/* Process every queued INJECT sample (in ring order). */
void ew_app__inject_drain(ew_app_t *a, uint32_t max) {
    while (a->inj_count > 0 && max > 0) {
        uint32_t take = a->inj_count < INJ - a->inj_head ? a->inj_count : INJ - a->inj_head;
        if (take > max) take = max;
        ew_app__process(a, &a->inj[a->inj_head], take, 0);
        a->inj_head = (a->inj_head + take) % INJ;
        a->inj_count -= take;
        max -= take;
    }
}

/* Grant credit: G never exceeds the free space; grants come in steps. */
void ew_app__grant(ew_app_t *a) {
    if (a->input != EW_APP_INPUT_INJECT) return;
    const uint32_t free_space = INJ - a->inj_count;
    if (free_space <= a->st.credits) return;
    const uint32_t g = free_space - a->st.credits;
    if (g >= EW_APP_CREDIT_STEP || a->inj_count == 0) ew_app__send_credit(a, g);
}

void ew_app__report_seq_gap(ew_app_t *a, uint16_t ref_seq, uint64_t gap_samples) {
    ew_app_msg_t msg = { { 0 }, 0 };
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

void ew_app__handle_inject(ew_app_t *a, uint16_t seq, const uint8_t *p, size_t len) {
    ew_proto_pcm_t m;
    if (ew_proto_unpack_pcm(p, len, &m) != EW_PROTO_OK) {
        a->st.rx_bad_payload++;
        ew_app__send_error(a, EW_ERRC_BAD_PAYLOAD, seq, "INJECT: bad payload");
        return;
    }
    if (a->input != EW_APP_INPUT_INJECT) {
        a->st.inject_no_credit++;
        ew_app__send_error(a, EW_ERRC_NO_CREDIT, seq,
                           "INJECT: input is not INJECT (START_STREAM 1)");
        return;
    }
    const uint32_t n = m.n_samples;
    if (n > a->st.credits) {
        if (a->pending_seq_gap > 0) ew_app__report_seq_gap(a, seq, 0);
        a->st.inject_no_credit++;
        ew_app_msg_t msg = { { 0 }, 0 };
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
        ew_app__inject_drain(a, UINT32_MAX); /* keep the order: queued samples, zeros, new ones */
        ew_app__process_silence(a, gap);
        a->st.inject_gap_samples += (uint32_t)gap;
        a->st.credits -= gap < a->st.credits ? (uint32_t)gap : a->st.credits;
        a->inj_pos = m.first_sample;
        ew_app__report_seq_gap(a, seq, gap);
    } else if (a->pending_seq_gap > 0) {
        ew_app__report_seq_gap(a, seq, 0);
    }
    uint32_t skip = 0;
    if (m.first_sample < a->inj_pos) {
        const uint64_t behind = a->inj_pos - m.first_sample;
        skip = behind < n ? (uint32_t)behind : n;
        a->st.inject_overlap_samples += skip;
    }
    if (a->inj_count + (n - skip) > INJ)
        ew_app__inject_drain(a, UINT32_MAX); /* host ignored credit */
    for (uint32_t i = skip; i < n; i++) {
        a->inj[(a->inj_head + a->inj_count) % INJ] = ew_proto_pcm_sample(&m, i);
        a->inj_count++;
    }
    a->st.inject_samples += n - skip;
    if (m.first_sample + n > a->inj_pos) a->inj_pos = m.first_sample + n;
}

/* ------------------------------------------------------------------------------------------ */
/* Streams                                                                                    */

/* End the current stream: queued INJECT audio, pending windows, open events, last AUDIO. */
void ew_app__end_stream(ew_app_t *a) {
    if (a->input == EW_APP_INPUT_STOPPED) return;
    ew_app__inject_drain(a, UINT32_MAX);
    ew_node_flush(&a->node);
    if (a->set.audio_stream == EW_AUDIO_STREAM_EVENTS && a->a_stop > a->a_written)
        a->a_stop = a->a_written;
    ew_app__audio_send(a, UINT32_MAX, 1);
    a->st.credits = 0;
    a->input = EW_APP_INPUT_STOPPED;
}

void ew_app__start_stream(ew_app_t *a, uint8_t input) {
    ew_app__new_stream(a);
    a->input = input;
    if (input == EW_APP_INPUT_INJECT) ew_app__grant(a);
}

int ew_app_set_input(ew_app_t *a, uint8_t input) {
    if (a == NULL || input > EW_APP_INPUT_STOPPED) return EW_ERR_ARG;
    if (a->rebooting) return EW_APP_ERR_STATE;
    ew_app__end_stream(a);
    if (input != EW_APP_INPUT_STOPPED) ew_app__start_stream(a, input);
    return EW_OK;
}
