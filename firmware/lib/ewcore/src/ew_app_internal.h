/* Functions shared by ew_app.c (hot path) and ew_app_util.c (init, configuration); not API. */
#ifndef EW_APP_INTERNAL_H
#define EW_APP_INTERNAL_H

#include "ew_app.h"

/* ew_app.c */
void ew_app__send(ew_app_t *a, uint8_t type, const uint8_t *payload, size_t len);
void ew_app__send_error(ew_app_t *a, uint16_t code, uint16_t ref_seq, const char *msg);
void ew_app__new_stream(ew_app_t *a);
int ew_app__node_init(ew_app_t *a);
void ew_app__audio_resync(ew_app_t *a);

/* ew_app_util.c */
int ew_app__config_set(ew_app_t *a, uint16_t key, int32_t value, int32_t *applied);
void ew_app__persist(ew_app_t *a);

/* small text builder for ERROR messages (no stdio in the core) */
typedef struct {
    char buf[EW_PROTO_MAX_ERROR_TEXT + 1];
    uint8_t len;
} ew_app_msg_t;

void ew_app__msg_str(ew_app_msg_t *m, const char *s);
void ew_app__msg_u64(ew_app_msg_t *m, uint64_t v);

#endif /* EW_APP_INTERNAL_H */
