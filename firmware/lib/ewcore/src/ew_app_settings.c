/* Node application, settings: CONFIG keys <-> detector configuration (ranges from the generated
 * ew_settings table), factory reset, persistence.  Calls ew_app_input.c (detector restart) and
 * ew_app_tx.c (AUDIO resync) only (layers: see ew_app_tx.c). */
#include <string.h>

#include "ew_app_internal.h"

#define SAMPLES_PER_MS (EW_SAMPLE_RATE_HZ / 1000)
#define BLOB_MAGIC0 'E'
#define BLOB_MAGIC1 'W'
#define BLOB_MAGIC2 'C'
#define BLOB_VERSION 1u
#define BLOB_HEADER (4u + EW_PROTO_HASH_BYTES + 1u)
#define BLOB_RECORD 6u

/* ms <-> 16-ms blocks (HABITUATE_RECHECK_MS; ms <= its table max 60000: 24 bits) */
static uint32_t ms_to_blocks(uint32_t ms) {
    return (ms * SAMPLES_PER_MS + EW_HOP_SAMPLES / 2) / EW_HOP_SAMPLES;
}
static uint32_t blocks_to_ms(uint32_t blocks) { return blocks * EW_HOP_SAMPLES / SAMPLES_PER_MS; }

/* persisted keys besides the thresholds: the EW_SETTING_PERSISTED entries of ew_settings */
#define N_PERSISTED EW_N_PERSISTED_SETTINGS

#if EW_THRESHOLD_MAX_Q8 != EW_THRESHOLD_OFF
#error "ewcore.toml [setting_threshold] max must be EW_THRESHOLD_OFF"
#endif

#if BLOB_HEADER + (N_PERSISTED + EW_MAX_CLASSES) * BLOB_RECORD + 4u > EW_PORT_CONFIG_MAX
#error "EW_PORT_CONFIG_MAX too small for the persisted configuration"
#endif

/* ------------------------------------------------------------------------------------------ */
/* Units                                                                                        */

/* dB x 256 -> 256 log2 (mean square): / 3.0103 ~ * 21771 / 2^16 (rounded) */
static int32_t db_to_l2(int32_t db_q8) { return (int32_t)(((int64_t)db_q8 * 21771 + 32768) >> 16); }
/* 256 log2 -> dB x 256: * 3.0103 ~ * 197283 / 2^16 (rounded) */
static int32_t l2_to_db(int32_t l2_q8) {
    return (int32_t)(((int64_t)l2_q8 * 197283 + 32768) >> 16);
}

/* Linear Q16 gain of a dB x 256 gain (|gain| <= 48 dB): 2^(dB / 6.0206). */
static int32_t gain_q16(int32_t db_q8) {
    const int32_t l2 = (int32_t)(((int64_t)db_q8 * 43541) >> 10); /* log2 Q16 */
    const int32_t i = l2 >> 16;                                   /* floor, -8..7 */
    const int64_t f = l2 & 0xFFFF;                                /* Q16 in [0, 1) */
    /* 2^f ~ 1 + f (0.6957 + f (0.2251 + 0.0792 f)), max relative error ~1e-4 */
    const int64_t p = 65536 + ((f * (45593 + ((f * (14752 + ((f * 5190) >> 16))) >> 16))) >> 16);
    return (int32_t)(i >= 0 ? p << i : p >> -i);
}

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                                */

void ew_app__settings_default(ew_app_t *a) {
    ew_node_config_default(&a->ncfg, a->info.n_classes);
    a->ncfg.quant = a->info.quant;
    for (int c = 0; c < a->info.n_classes; c++)
        a->ncfg.thresholds_q8[c] =
            a->info.thresholds_q8 != NULL ? a->info.thresholds_q8[c] : EW_DET_DEFAULT_THRESHOLD_Q8;
    a->set.gain_db_q8 = 0;
    a->set.gain_q16 = 65536;
    a->set.status_period_ms = EW_APP_DEFAULT_STATUS_MS;
    a->set.baud = a->info.default_baud != 0 ? a->info.default_baud : EW_APP_DEFAULT_BAUD;
    a->set.audio_stream = EW_AUDIO_STREAM_OFF;
    a->set.alarm_ms = EW_APP_DEFAULT_ALARM_MS;
    a->set.alarm_classes = 0xFFFFu;
}

/* Restart the detector with ncfg, keeping the stream's sample indices. */
static void node_restart(ew_app_t *a) {
    a->node_base = a->st.samples;
    (void)ew_app__node_init(a); /* ncfg was validated key by key */
    a->status_blocks0 = a->status_open0 = 0;
}

/* Changes that the detector reads on every block: copy them in place. */
static void node_update(ew_app_t *a) {
    a->node.cfg = a->ncfg;
    a->node.gate.cfg = a->ncfg.gate;
}

int ew_app_config_get(const ew_app_t *a, uint16_t key, int32_t *value) {
    if (a == NULL || value == NULL) return EW_ERR_ARG;
    const ew_gate_config_t *g = &a->ncfg.gate;
    switch (key) {
    case EW_CFG_MODE: *value = a->ncfg.mode; break;
    case EW_CFG_GAIN_DB_Q8: *value = a->set.gain_db_q8; break;
    case EW_CFG_GATE_ONSET_MARGIN_Q8: *value = l2_to_db(g->onset_margin_q8); break;
    case EW_CFG_GATE_SPREAD_MAX_Q16: *value = (int32_t)g->spread_max_q16; break;
    case EW_CFG_GATE_STRONG_MARGIN_Q8: *value = l2_to_db(g->strong_margin_q8); break;
    case EW_CFG_GATE_SUSTAIN_MARGIN_Q8: *value = l2_to_db(g->sustain_margin_q8); break;
    case EW_CFG_GATE_FLOOR_Q8: *value = l2_to_db(g->floor_q8 - 30 * 256); break;
    case EW_CFG_HOLDOFF_MS: *value = (int32_t)(a->ncfg.holdoff_samples / SAMPLES_PER_MS); break;
    case EW_CFG_CONTINUOUS_STRIDE: *value = a->ncfg.continuous_stride; break;
    case EW_CFG_STATUS_PERIOD_MS: *value = (int32_t)a->set.status_period_ms; break;
    case EW_CFG_BAUD: *value = (int32_t)a->set.baud; break;
    case EW_CFG_AUDIO_STREAM: *value = a->set.audio_stream; break;
    case EW_CFG_ALARM_MS: *value = (int32_t)a->set.alarm_ms; break;
    case EW_CFG_ALARM_CLASSES: *value = (int32_t)a->set.alarm_classes; break;
    case EW_CFG_GATE_PEAK_MARGIN_Q8: *value = l2_to_db(g->peak_margin_q8); break;
    case EW_CFG_GATE_TONAL_MARGIN_Q8: *value = l2_to_db(g->tonal_margin_q8); break;
    case EW_CFG_EARLY_PREROLL_FRAMES: *value = a->ncfg.early_preroll_frames; break;
    case EW_CFG_EARLY_CONTINUE_MARGIN_Q8:
        *value = l2_to_db(a->ncfg.early_continue_margin_q8);
        break;
    case EW_CFG_HABITUATE_ONSETS: *value = a->ncfg.habituate_onsets; break;
    case EW_CFG_HABITUATE_MARGIN_Q8: *value = l2_to_db(a->ncfg.habituate_margin_q8); break;
    case EW_CFG_HABITUATE_RECHECKS: *value = a->ncfg.habituate_rechecks; break;
    case EW_CFG_HABITUATE_RECHECK_MS:
        *value = (int32_t)blocks_to_ms(a->ncfg.habituate_recheck_blocks);
        break;
    case EW_CFG_HABITUATE_MAX_SCORE_Q8: *value = a->ncfg.habituate_max_score_q8; break;
    default:
        if (key >= EW_CFG_THRESHOLD_BASE && key <= EW_CFG_THRESHOLD_LAST &&
            key - EW_CFG_THRESHOLD_BASE < a->info.n_classes) {
            *value = a->ncfg.thresholds_q8[key - EW_CFG_THRESHOLD_BASE];
            break;
        }
        return EW_APP_ERR_KEY;
    }
    return EW_OK;
}

static int in_range(int32_t v, int32_t lo, int32_t hi) { return v >= lo && v <= hi; }

/* The table entry of a key (NULL: a threshold or unknown key). */
static const ew_setting_t *setting_find(uint16_t key) {
    for (uint32_t i = 0; i < EW_N_SETTINGS; i++)
        if (ew_settings[i].key == key) return &ew_settings[i];
    return NULL;
}

/* The i-th persisted key of the table (i < N_PERSISTED). */
static uint16_t persisted_key(uint32_t i) {
    for (uint32_t k = 0; k < EW_N_SETTINGS; k++)
        if ((ew_settings[k].flags & EW_SETTING_PERSISTED) != 0u && i-- == 0u)
            return ew_settings[k].key;
    return 0;
}

/* Apply without persisting: the range of ew_settings, then the checks that depend on other
 * settings; a RESTART setting that changed restarts the detector. */
int ew_app__config_set(ew_app_t *a, uint16_t key, int32_t v, int32_t *applied) {
    ew_gate_config_t *g = &a->ncfg.gate;
    const ew_setting_t *s = setting_find(key);
    int32_t before = 0;
    if (s != NULL) {
        const int off = (s->flags & EW_SETTING_ZERO_OFF) != 0u && v == 0;
        if (!off && !in_range(v, s->min, s->max)) return EW_APP_ERR_VALUE;
        if ((s->flags & EW_SETTING_RESTART) != 0u) (void)ew_app_config_get(a, key, &before);
    }
    switch (key) {
    case EW_CFG_MODE: a->ncfg.mode = (uint8_t)v; break;
    case EW_CFG_GAIN_DB_Q8:
        a->set.gain_db_q8 = v;
        a->set.gain_q16 = gain_q16(v);
        break;
    case EW_CFG_GATE_ONSET_MARGIN_Q8: g->onset_margin_q8 = db_to_l2(v); break;
    case EW_CFG_GATE_SPREAD_MAX_Q16: g->spread_max_q16 = (uint32_t)v; break;
    case EW_CFG_GATE_STRONG_MARGIN_Q8: g->strong_margin_q8 = db_to_l2(v); break;
    case EW_CFG_GATE_SUSTAIN_MARGIN_Q8: g->sustain_margin_q8 = db_to_l2(v); break;
    case EW_CFG_GATE_FLOOR_Q8: g->floor_q8 = 30 * 256 + db_to_l2(v); break;
    case EW_CFG_HOLDOFF_MS: a->ncfg.holdoff_samples = (uint32_t)v * SAMPLES_PER_MS; break;
    case EW_CFG_CONTINUOUS_STRIDE: a->ncfg.continuous_stride = (uint16_t)v; break;
    case EW_CFG_STATUS_PERIOD_MS: a->set.status_period_ms = (uint32_t)v; break;
    case EW_CFG_BAUD: a->set.baud = (uint32_t)v; break;
    case EW_CFG_AUDIO_STREAM:
        if (a->set.audio_stream != (uint8_t)v) {
            a->set.audio_stream = (uint8_t)v;
            ew_app__audio_resync(a); /* start at the live position */
        }
        break;
    case EW_CFG_ALARM_MS: a->set.alarm_ms = (uint32_t)v; break;
    case EW_CFG_ALARM_CLASSES: a->set.alarm_classes = (uint32_t)v; break;
    case EW_CFG_GATE_PEAK_MARGIN_Q8: g->peak_margin_q8 = db_to_l2(v); break;
    case EW_CFG_GATE_TONAL_MARGIN_Q8: g->tonal_margin_q8 = db_to_l2(v); break;
    case EW_CFG_EARLY_PREROLL_FRAMES:
        /* the table allows 0 or 1..EW_FRAMES_PER_WINDOW - 1; it must also follow the pre-roll */
        if (v != 0 && v <= (int32_t)a->ncfg.preroll_frames) return EW_APP_ERR_VALUE;
        a->ncfg.early_preroll_frames = (uint8_t)v;
        break;
    case EW_CFG_EARLY_CONTINUE_MARGIN_Q8: a->ncfg.early_continue_margin_q8 = db_to_l2(v); break;
    case EW_CFG_HABITUATE_ONSETS:
        a->ncfg.habituate_onsets = (uint8_t)v;
        a->node.hab.count = 0; /* a new rule starts a new episode */
        break;
    case EW_CFG_HABITUATE_MARGIN_Q8: a->ncfg.habituate_margin_q8 = db_to_l2(v); break;
    case EW_CFG_HABITUATE_RECHECKS:
        a->ncfg.habituate_rechecks = (uint8_t)v;
        a->node.hab.rechecks = 0; /* a new rule starts a new episode */
        break;
    case EW_CFG_HABITUATE_RECHECK_MS: {
        const uint32_t blocks = ms_to_blocks((uint32_t)v);
        if (blocks < a->ncfg.gate.recheck_blocks)
            return EW_APP_ERR_VALUE; /* faster than the gate's own period */
        a->ncfg.habituate_recheck_blocks = (uint16_t)blocks;
        break;
    }
    case EW_CFG_HABITUATE_MAX_SCORE_Q8:
        a->ncfg.habituate_max_score_q8 = (uint8_t)v;
        a->node.hab.count = 0; /* a new rule starts a new episode */
        break;
    default:
        if (key >= EW_CFG_THRESHOLD_BASE && key <= EW_CFG_THRESHOLD_LAST &&
            key - EW_CFG_THRESHOLD_BASE < a->info.n_classes) {
            if (!in_range(v, 0, EW_THRESHOLD_MAX_Q8)) return EW_APP_ERR_VALUE;
            a->ncfg.thresholds_q8[key - EW_CFG_THRESHOLD_BASE] = (uint16_t)v;
            break;
        }
        return EW_APP_ERR_KEY;
    }
    node_update(a);
    if (s != NULL && (s->flags & EW_SETTING_RESTART) != 0u) {
        int32_t after = 0;
        (void)ew_app_config_get(a, key, &after);
        if (after != before) node_restart(a); /* pending windows are laid out for the old value */
    }
    return applied != NULL ? ew_app_config_get(a, key, applied) : EW_OK;
}

int ew_app_config_set(ew_app_t *a, uint16_t key, int32_t value, int32_t *applied) {
    if (a == NULL) return EW_ERR_ARG;
    const int rc = ew_app__config_set(a, key, value, applied);
    if (rc == EW_OK) ew_app__persist(a);
    return rc;
}

void ew_app_factory_reset(ew_app_t *a) {
    if (a == NULL) return;
    const uint8_t stream = a->set.audio_stream;
    ew_app__settings_default(a);
    node_restart(a);
    if (a->set.audio_stream != stream) ew_app__audio_resync(a);
    ew_app__persist(a);
}

/* ------------------------------------------------------------------------------------------ */
/* Persistence                                                                                  */

static void put_record(uint8_t *p, uint16_t key, int32_t v) {
    const uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)(key & 0xFFu);
    p[1] = (uint8_t)(key >> 8);
    for (int i = 0; i < 4; i++) p[2 + i] = (uint8_t)((u >> (8 * i)) & 0xFFu);
}

static uint32_t get_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int ew_app_config_blob(const ew_app_t *a, uint8_t *out, size_t cap) {
    if (a == NULL || out == NULL) return EW_ERR_ARG;
    const size_t n_rec = N_PERSISTED + a->info.n_classes;
    const size_t len = BLOB_HEADER + n_rec * BLOB_RECORD + 4u;
    if (cap < len) return EW_APP_ERR_VALUE;
    out[0] = BLOB_MAGIC0;
    out[1] = BLOB_MAGIC1;
    out[2] = BLOB_MAGIC2;
    out[3] = BLOB_VERSION;
    memcpy(&out[4], a->info.model_hash, EW_PROTO_HASH_BYTES);
    out[4 + EW_PROTO_HASH_BYTES] = (uint8_t)n_rec;
    uint8_t *p = &out[BLOB_HEADER];
    for (size_t i = 0; i < n_rec; i++, p += BLOB_RECORD) {
        const uint16_t key = i < N_PERSISTED
                                 ? persisted_key((uint32_t)i)
                                 : (uint16_t)(EW_CFG_THRESHOLD_BASE + (i - N_PERSISTED));
        int32_t v = 0;
        (void)ew_app_config_get(a, key, &v);
        put_record(p, key, v);
    }
    const uint32_t crc = ew_crc32(out, (size_t)(p - out));
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)((crc >> (8 * i)) & 0xFFu);
    return (int)len;
}

void ew_app__persist(ew_app_t *a) {
    uint8_t blob[EW_PORT_CONFIG_MAX];
    if (a->loading || a->port.config_save == NULL) return;
    const int len = ew_app_config_blob(a, blob, sizeof(blob));
    if (len < 0 || a->port.config_save(a->port.ctx, blob, (size_t)len) < 0) a->st.persist_errors++;
}

/* Apply a persisted blob; returns the number of records applied (or -1 if it is invalid). */
int ew_app__load_blob(ew_app_t *a, const uint8_t *b, size_t len) {
    if (len < BLOB_HEADER + 4u || b[0] != BLOB_MAGIC0 || b[1] != BLOB_MAGIC1 ||
        b[2] != BLOB_MAGIC2 || b[3] != BLOB_VERSION)
        return -1;
    const size_t n_rec = b[4 + EW_PROTO_HASH_BYTES];
    const size_t body = BLOB_HEADER + n_rec * BLOB_RECORD;
    if (len < body + 4u || get_u32le(&b[body]) != ew_crc32(b, body)) return -1;
    const int same_model = memcmp(&b[4], a->info.model_hash, EW_PROTO_HASH_BYTES) == 0;
    int applied = 0;
    for (size_t i = 0; i < n_rec; i++) {
        const uint8_t *p = &b[BLOB_HEADER + i * BLOB_RECORD];
        const uint16_t key = (uint16_t)(p[0] | (p[1] << 8));
        const int32_t v = (int32_t)get_u32le(&p[2]);
        if (key >= EW_CFG_THRESHOLD_BASE && key <= EW_CFG_THRESHOLD_LAST && !same_model) continue;
        if (ew_app__config_set(a, key, v, NULL) == EW_OK) applied++;
    }
    return applied;
}
