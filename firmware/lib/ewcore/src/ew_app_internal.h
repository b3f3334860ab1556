/* Functions shared by the ew_app_*.c files; not API.  The files form layers, each calling only
 * the ones before it (no cycles):
 *   ew_app_tx.c        transmit: frames out, AUDIO stream from the audio ring
 *   ew_app_input.c     audio input: detector callbacks, sample path, mic / ADC feeds, overruns
 *   ew_app_settings.c  settings: CONFIG get / set (ew_settings table), factory reset, persistence
 *   ew_app_inject.c    INJECT queue, credits, stream start / end
 *   ew_app.c           frame dispatch, poll, statistics, init */
#ifndef EW_APP_INTERNAL_H
#define EW_APP_INTERNAL_H

#include "ew_app.h"

/* small text builder for ERROR messages (no stdio in the core) */
typedef struct {
    char buf[EW_PROTO_MAX_ERROR_TEXT + 1];
    uint8_t len;
} ew_app_msg_t;

/* ew_app_tx.c */
void ew_app__send(ew_app_t *a, uint8_t type, const uint8_t *payload, size_t len);
void ew_app__send_error(ew_app_t *a, uint16_t code, uint16_t ref_seq, const char *msg);
void ew_app__send_ack(ew_app_t *a, uint16_t seq, uint8_t type);
void ew_app__send_credit(ew_app_t *a, uint32_t n);
void ew_app__send_config(ew_app_t *a, uint16_t key, int32_t value);
void ew_app__msg_str(ew_app_msg_t *m, const char *s);
void ew_app__msg_u64(ew_app_msg_t *m, uint64_t v);
void ew_app__audio_resync(ew_app_t *a);
/* Send pending AUDIO frames: at most `burst`; partial frames only when `final`. */
void ew_app__audio_send(ew_app_t *a, uint32_t burst, int final);
void ew_app__audio_push(ew_app_t *a, const int16_t *x, size_t n);

/* ew_app_input.c */
int ew_app__node_init(ew_app_t *a);
void ew_app__new_stream(ew_app_t *a);
/* 16 kHz samples into the audio ring and the detector; gain: apply GAIN_DB_Q8 (microphone). */
void ew_app__process(ew_app_t *a, const int16_t *x, size_t n, int gain);
void ew_app__process_silence(ew_app_t *a, uint64_t n);

/* ew_app_settings.c */
void ew_app__settings_default(ew_app_t *a);
int ew_app__config_set(ew_app_t *a, uint16_t key, int32_t value, int32_t *applied);
void ew_app__persist(ew_app_t *a);
/* Apply a persisted blob; returns the number of records applied (or -1 if it is invalid). */
int ew_app__load_blob(ew_app_t *a, const uint8_t *b, size_t len);

/* ew_app_inject.c */
void ew_app__inject_drain(ew_app_t *a, uint32_t max);
void ew_app__grant(ew_app_t *a);
void ew_app__report_seq_gap(ew_app_t *a, uint16_t ref_seq, uint64_t gap_samples);
void ew_app__handle_inject(ew_app_t *a, uint16_t seq, const uint8_t *p, size_t len);
void ew_app__end_stream(ew_app_t *a);
void ew_app__start_stream(ew_app_t *a, uint8_t input);

#endif /* EW_APP_INTERNAL_H */
