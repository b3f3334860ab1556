/*
 * Node application tests: ew_app driven through a fake port (frames captured with the real
 * decoder), on the host and on rv32imc under QEMU.  Prints "FAIL ..." lines and "OK <n checks>";
 * exit status 1 on any failure.
 *
 * Covered: HELLO at init and on request, CONFIG get/set/round trip/persistence across re-init,
 * errors (unknown type, bad payload, bad key, bad value), INJECT credits (the node's
 * outstanding credit plus its queue never exceed its buffer; NO_CREDIT), position gaps
 * zero-filled with SEQ_GAP, STOP_STREAM flushing events before its ACK, events identical to the
 * detector run directly on the same audio, record mode AUDIO indices, overrun holes, reboot.
 */
#include <stdio.h>
#include <string.h>

#include "ew_app.h"

static int failures, checks;

#define CHECK(cond)                                                            \
    do {                                                                       \
        checks++;                                                              \
        if (!(cond)) {                                                         \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
            failures++;                                                        \
        }                                                                      \
    } while (0)

/* ---- captured node output ------------------------------------------------------------------ */

#define MAX_FRAMES 4096
#define MAX_BYTES (1u << 20)
typedef struct { uint8_t type; uint16_t seq; uint32_t off, len; } frame_t;
static frame_t frames[MAX_FRAMES];
static uint8_t bytes[MAX_BYTES];
static unsigned n_frames, n_bytes;
static ew_proto_decoder_t out_dec;

static void on_out_item(void *ctx, const ew_proto_item_t *it) {
    (void)ctx;
    if (it->kind != EW_PROTO_ITEM_FRAME || n_frames >= MAX_FRAMES || n_bytes + it->len > MAX_BYTES) return;
    frames[n_frames].type = it->type;
    frames[n_frames].seq = it->seq;
    frames[n_frames].off = n_bytes;
    frames[n_frames].len = (uint32_t)it->len;
    memcpy(&bytes[n_bytes], it->data, it->len);
    n_bytes += (uint32_t)it->len;
    n_frames++;
}

static void clear_frames(void) { n_frames = n_bytes = 0; }

static const uint8_t *payload(unsigned i) { return &bytes[frames[i].off]; }

/* index of the first frame of `type` at or after `from`, or -1 */
static int find(uint8_t type, unsigned from) {
    for (unsigned i = from; i < n_frames; i++)
        if (frames[i].type == type) return (int)i;
    return -1;
}

static unsigned count(uint8_t type) {
    unsigned n = 0;
    for (unsigned i = 0; i < n_frames; i++) n += frames[i].type == type;
    return n;
}

/* ---- fake port ----------------------------------------------------------------------------- */

static uint64_t now_us;
static uint8_t saved[EW_PORT_CONFIG_MAX];
static int saved_len, saves, reboots, alarms, classifies;

static int p_write(void *ctx, const uint8_t *d, size_t n) {
    (void)ctx;
    ew_proto_decoder_feed(&out_dec, d, n, on_out_item, NULL);
    return (int)n;
}
static uint64_t p_time(void *ctx) { (void)ctx; return now_us; }
/* class 0 scores high for loud windows (any feature above -128 + 150), class 1 never */
static int p_classify(void *ctx, const ew_window_t *w, const int8_t *f, uint8_t *scores, uint8_t n) {
    (void)ctx;
    (void)w;
    int loud = 0;
    for (int i = 0; i < EW_WINDOW_FEATURES; i++) loud |= f[i] > 22;
    memset(scores, 0, n);
    scores[0] = loud ? 230 : 10;
    classifies++;
    return 0;
}
static int p_load(void *ctx, uint8_t *buf, size_t cap) {
    (void)ctx;
    if (saved_len <= 0 || (size_t)saved_len > cap) return 0;
    memcpy(buf, saved, (size_t)saved_len);
    return saved_len;
}
static int p_save(void *ctx, const uint8_t *b, size_t n) {
    (void)ctx;
    memcpy(saved, b, n);
    saved_len = (int)n;
    saves++;
    return 0;
}
static void p_alarm(void *ctx, uint8_t c, uint32_t ms) { (void)ctx; (void)c; (void)ms; alarms++; }
static void p_reboot(void *ctx) { (void)ctx; reboots++; }

static const char *const labels[] = {"gunshot", "other"};
static const uint16_t thresholds[] = {128, EW_THRESHOLD_OFF};

static ew_app_info_t info(void) {
    ew_app_info_t i;
    memset(&i, 0, sizeof(i));
    i.board = "test-board";
    i.fw_major = 0;
    i.fw_minor = 3;
    i.fw_patch = 1;
    i.reset_reason = EW_RESET_POWERON;
    for (int k = 0; k < 8; k++) i.model_hash[k] = (uint8_t)(0xA0 + k);
    for (int k = 0; k < 8; k++) i.config_hash[k] = (uint8_t)(0x10 + k);
    for (int k = 0; k < 6; k++) i.node_id[k] = (uint8_t)k;
    i.n_classes = 2;
    i.labels = labels;
    i.thresholds_q8 = thresholds;
    ew_quant_default(&i.quant);
    i.adc_rate_hz = 32000;
    return i;
}

static ew_port_t port(void) {
    ew_port_t p;
    memset(&p, 0, sizeof(p));
    p.write = p_write;
    p.time_us = p_time;
    p.classify = p_classify;
    p.config_load = p_load;
    p.config_save = p_save;
    p.alarm = p_alarm;
    p.reboot = p_reboot;
    return p;
}

static ew_app_t app;      /* 75 KB: static, as on the device */
static uint16_t host_seq;

static void host_send(uint8_t type, const uint8_t *p, size_t n) {
    static uint8_t wire[EW_PROTO_MAX_WIRE];
    const size_t w = ew_proto_encode(type, host_seq++, p, n, wire, sizeof(wire));
    ew_app_rx(&app, wire, w);
}

static void host_cmd(uint8_t cmd, uint32_t arg) {
    uint8_t p[8];
    const ew_proto_cmd_t m = {cmd, arg};
    host_send(EW_MSG_CMD, p, (size_t)ew_proto_pack_cmd(&m, p, sizeof(p)));
}

static void host_set(uint16_t key, int32_t v) {
    uint8_t p[8];
    const ew_proto_config_t m = {key, v};
    host_send(EW_MSG_CONFIG_SET, p, (size_t)ew_proto_pack_config(&m, p, sizeof(p)));
}

static void host_get(uint16_t key) {
    uint8_t p[4];
    const ew_proto_config_get_t m = {key};
    host_send(EW_MSG_CONFIG_GET, p, (size_t)ew_proto_pack_config_get(&m, p, sizeof(p)));
}

static uint8_t inj_payload[EW_PROTO_MAX_PAYLOAD];
static void host_inject(uint64_t first, const int16_t *x, size_t n) {
    const int len = ew_proto_pack_pcm(first, x, n, inj_payload, sizeof(inj_payload));
    host_send(EW_MSG_INJECT, inj_payload, (size_t)len);
}

/* last CONFIG answer: (key, value); last ERROR code */
static int last_config(uint16_t *key, int32_t *value) {
    for (unsigned i = n_frames; i-- > 0;)
        if (frames[i].type == EW_MSG_CONFIG) {
            ew_proto_config_t m;
            ew_proto_unpack_config(payload(i), frames[i].len, &m);
            *key = m.key;
            *value = m.value;
            return 1;
        }
    return 0;
}

static int last_error(void) {
    for (unsigned i = n_frames; i-- > 0;)
        if (frames[i].type == EW_MSG_ERROR) {
            ew_proto_error_t e;
            ew_proto_unpack_error(payload(i), frames[i].len, &e);
            return e.code;
        }
    return -1;
}

/* ---- test signal: quiet noise with impulses (deterministic LCG) ---------------------------- */

#define SIG_N (16000 * 6)
static int16_t sig[SIG_N];

static void make_signal(void) {
    uint32_t s = 12345;
    for (int i = 0; i < SIG_N; i++) {
        s = s * 1103515245u + 12345u;
        int32_t v = (int32_t)((s >> 16) & 0x7FF) - 1024;             /* ~-36 dBFS noise */
        const int t = i % 32000;
        if (i > 16000 && t >= 8000 && t < 8000 + 2400)                /* 150 ms bursts */
            v *= 24 - (t - 8000) / 110;
        sig[i] = (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
    }
}

/* ---- reference: the detector alone ---------------------------------------------------------- */

#define MAX_EV 64
static ew_event_t ref_ev[MAX_EV];
static unsigned n_ref;
static void ref_on_event(void *ctx, const ew_event_t *e) {
    (void)ctx;
    if (n_ref < MAX_EV) ref_ev[n_ref++] = *e;
}
static int ref_classify(void *ctx, const ew_window_t *w, const int8_t *f, uint8_t *scores) {
    return p_classify(ctx, w, f, scores, 2);
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_hello(void) {
    ew_app_info_t i = info();
    ew_port_t p = port();
    clear_frames();
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    CHECK(n_frames == 1 && frames[0].type == EW_MSG_HELLO && frames[0].seq == 0);
    ew_proto_hello_t h;
    CHECK(ew_proto_unpack_hello(payload(0), frames[0].len, &h) == EW_PROTO_OK);
    CHECK(h.proto_version == EW_PROTO_VERSION && h.fw_minor == 3 && h.sample_rate_hz == 16000);
    CHECK(h.n_labels == 2 && h.label_lens[0] == 7 && memcmp(h.labels[0], "gunshot", 7) == 0);
    CHECK(memcmp(h.model_hash, i.model_hash, 8) == 0 && h.board_len == 10);
    clear_frames();
    host_send(EW_MSG_HELLO, NULL, 0);
    host_cmd(EW_CMD_HELLO, 0);
    CHECK(n_frames == 2 && count(EW_MSG_HELLO) == 2 && frames[1].seq == 2);

    /* init errors */
    ew_app_info_t bad = info();
    bad.n_classes = 0;
    CHECK(ew_app_init(&app, &bad, &p) == EW_ERR_CONFIG);
    bad = info();
    bad.adc_rate_hz = 44100;
    CHECK(ew_app_init(&app, &bad, &p) == EW_ERR_FACTOR);
    bad = info();
    bad.adc_rate_hz = 80000;
    CHECK(ew_app_init(&app, &bad, &p) == EW_ERR_FACTOR);
    ew_port_t badp = port();
    badp.classify = NULL;
    CHECK(ew_app_init(&app, &i, &badp) == EW_ERR_ARG);
    CHECK(ew_app_init(&app, NULL, &p) == EW_ERR_ARG);
}

static void test_config(void) {
    ew_app_info_t i = info();
    ew_port_t p = port();
    saved_len = 0;
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    clear_frames();
    uint16_t k;
    int32_t v;
    host_get(EW_CFG_THRESHOLD_BASE + 0);
    CHECK(last_config(&k, &v) && k == EW_CFG_THRESHOLD_BASE && v == 128);
    host_set(EW_CFG_THRESHOLD_BASE + 0, 100);
    CHECK(last_config(&k, &v) && k == EW_CFG_THRESHOLD_BASE && v == 100);
    CHECK(app.node.cfg.thresholds_q8[0] == 100);
    host_set(EW_CFG_GATE_ONSET_MARGIN_Q8, 9 * 256);
    CHECK(last_config(&k, &v) && v == 2303);                      /* nearest representable */
    host_set(EW_CFG_GATE_FLOOR_Q8, -60 * 256);
    CHECK(last_config(&k, &v) && v >= -60 * 256 - 2 && v <= -60 * 256 + 2);
    host_set(EW_CFG_GAIN_DB_Q8, 6 * 256);
    CHECK(last_config(&k, &v) && v == 6 * 256);
    CHECK(app.set.gain_q16 > 130000 && app.set.gain_q16 < 131500);  /* 2.0 x 65536 */
    host_set(EW_CFG_GATE_PEAK_MARGIN_Q8, 4 * 256);
    CHECK(last_config(&k, &v) && v == 1024 && app.node.gate.cfg.peak_margin_q8 == 340);
    host_set(EW_CFG_EARLY_PREROLL_FRAMES, 30);
    CHECK(last_config(&k, &v) && v == 30 && app.node.cfg.early_preroll_frames == 30);
    host_set(EW_CFG_HABITUATE_ONSETS, 2);
    CHECK(last_config(&k, &v) && v == 2 && app.node.cfg.habituate_onsets == 2);
    host_set(EW_CFG_HABITUATE_MARGIN_Q8, 6 * 256);
    CHECK(last_config(&k, &v) && v == 1535 && app.node.cfg.habituate_margin_q8 == 510);
    host_set(EW_CFG_HABITUATE_RECHECKS, 3);
    CHECK(last_config(&k, &v) && v == 3 && app.node.cfg.habituate_rechecks == 3);
    host_set(EW_CFG_HABITUATE_RECHECK_MS, 5000);            /* 312.5 blocks: rounds to 313 */
    CHECK(last_config(&k, &v) && v == 5008 && app.node.cfg.habituate_recheck_blocks == 313);
    host_set(EW_CFG_HABITUATE_MAX_SCORE_Q8, 32);
    CHECK(last_config(&k, &v) && v == 32 && app.node.cfg.habituate_max_score_q8 == 32);
    host_set(EW_CFG_HOLDOFF_MS, 700);
    host_set(EW_CFG_AUDIO_STREAM, 2);
    host_set(EW_CFG_ALARM_MS, 0);
    host_set(EW_CFG_BAUD, 460800);
    host_set(EW_CFG_MODE, 1);
    CHECK(last_config(&k, &v) && k == EW_CFG_MODE && v == 1 && app.node.cfg.mode == 1);
    CHECK(count(EW_MSG_ERROR) == 0 && saves >= 9);
    clear_frames();
    host_set(0x0777, 1);
    CHECK(last_error() == EW_ERRC_BAD_CONFIG_KEY);
    host_set(EW_CFG_THRESHOLD_BASE + 2, 1);                       /* only 2 classes */
    CHECK(last_error() == EW_ERRC_BAD_CONFIG_KEY);
    host_set(EW_CFG_THRESHOLD_BASE + 0, 257);
    CHECK(last_error() == EW_ERRC_BAD_VALUE);
    host_set(EW_CFG_MODE, 5);
    CHECK(last_error() == EW_ERRC_BAD_VALUE);
    host_set(EW_CFG_EARLY_PREROLL_FRAMES, EW_FRAMES_PER_WINDOW);
    CHECK(last_error() == EW_ERRC_BAD_VALUE && app.node.cfg.early_preroll_frames == 30);
    host_set(EW_CFG_HABITUATE_ONSETS, 256);
    CHECK(last_error() == EW_ERRC_BAD_VALUE && app.node.cfg.habituate_onsets == 2);
    host_set(EW_CFG_HABITUATE_MARGIN_Q8, -1);
    CHECK(last_error() == EW_ERRC_BAD_VALUE && app.node.cfg.habituate_margin_q8 == 510);
    host_set(EW_CFG_HABITUATE_RECHECKS, -1);
    CHECK(last_error() == EW_ERRC_BAD_VALUE && app.node.cfg.habituate_rechecks == 3);
    host_set(EW_CFG_HABITUATE_RECHECK_MS, 500);             /* faster than the gate's re-check period */
    CHECK(last_error() == EW_ERRC_BAD_VALUE && app.node.cfg.habituate_recheck_blocks == 313);
    host_set(EW_CFG_HABITUATE_RECHECK_MS, 60001);               /* ewcore.toml: max 60000 */
    CHECK(last_error() == EW_ERRC_BAD_VALUE && app.node.cfg.habituate_recheck_blocks == 313);
    host_set(EW_CFG_HABITUATE_MAX_SCORE_Q8, 256);
    CHECK(last_error() == EW_ERRC_BAD_VALUE && app.node.cfg.habituate_max_score_q8 == 32);
    host_get(0x0055);
    CHECK(last_error() == EW_ERRC_BAD_CONFIG_KEY);
    CHECK(count(EW_MSG_CONFIG) == 0);

    /* persisted: a re-initialised app starts with the saved settings */
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    CHECK(ew_app_config_get(&app, EW_CFG_THRESHOLD_BASE, &v) == EW_OK && v == 100);
    CHECK(ew_app_config_get(&app, EW_CFG_HOLDOFF_MS, &v) == EW_OK && v == 700);
    CHECK(ew_app_config_get(&app, EW_CFG_GATE_ONSET_MARGIN_Q8, &v) == EW_OK && v == 2303);
    CHECK(ew_app_config_get(&app, EW_CFG_MODE, &v) == EW_OK && v == 1);
    CHECK(ew_app_config_get(&app, EW_CFG_BAUD, &v) == EW_OK && v == 460800);
    CHECK(ew_app_config_get(&app, EW_CFG_AUDIO_STREAM, &v) == EW_OK && v == 2);
    CHECK(ew_app_config_get(&app, EW_CFG_HABITUATE_ONSETS, &v) == EW_OK && v == 2);
    CHECK(ew_app_config_get(&app, EW_CFG_HABITUATE_MARGIN_Q8, &v) == EW_OK && v == 1535);
    CHECK(ew_app_config_get(&app, EW_CFG_HABITUATE_RECHECKS, &v) == EW_OK && v == 3);
    CHECK(ew_app_config_get(&app, EW_CFG_HABITUATE_RECHECK_MS, &v) == EW_OK && v == 5008);
    CHECK(ew_app_config_get(&app, EW_CFG_HABITUATE_MAX_SCORE_Q8, &v) == EW_OK && v == 32);
    /* another model: thresholds are not taken over, the rest is */
    i.model_hash[0] ^= 1;
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    CHECK(ew_app_config_get(&app, EW_CFG_THRESHOLD_BASE, &v) == EW_OK && v == 128);
    CHECK(ew_app_config_get(&app, EW_CFG_HOLDOFF_MS, &v) == EW_OK && v == 700);
    /* a corrupted blob is ignored */
    saved[20] ^= 0x55;
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    CHECK(ew_app_config_get(&app, EW_CFG_HOLDOFF_MS, &v) == EW_OK && v == 1500);
    /* factory reset */
    host_set(EW_CFG_HOLDOFF_MS, 900);
    clear_frames();
    host_cmd(EW_CMD_FACTORY_RESET, 0);
    CHECK(n_frames == 1 && frames[0].type == EW_MSG_ACK);
    CHECK(ew_app_config_get(&app, EW_CFG_HOLDOFF_MS, &v) == EW_OK && v == 1500);
    saved_len = 0;
}

static void test_errors(void) {
    ew_app_info_t i = info();
    ew_port_t p = port();
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    clear_frames();
    host_send(0x42, (const uint8_t *)"x", 1);
    CHECK(last_error() == EW_ERRC_UNKNOWN_TYPE);
    host_send(EW_MSG_EVENT, NULL, 0);                             /* node->host type */
    CHECK(last_error() == EW_ERRC_UNKNOWN_TYPE);
    host_send(EW_MSG_CMD, (const uint8_t *)"\x02", 1);
    CHECK(last_error() == EW_ERRC_BAD_PAYLOAD);
    host_send(EW_MSG_INJECT, (const uint8_t *)"\0\0\0\0\0\0\0\0\1", 9);  /* odd byte count */
    CHECK(last_error() == EW_ERRC_BAD_PAYLOAD);
    host_cmd(99, 0);
    CHECK(last_error() == EW_ERRC_BAD_VALUE);
    host_cmd(EW_CMD_START_STREAM, 7);
    CHECK(last_error() == EW_ERRC_BAD_VALUE);
    const int16_t x[4] = {1, 2, 3, 4};
    host_inject(0, x, 4);                                         /* not in inject mode */
    CHECK(last_error() == EW_ERRC_NO_CREDIT);
    const uint8_t garbage[] = {0x00, 0x05, 0xE7, 0x01, 0x02, 0x03, 0x04, 0x00};
    ew_app_rx(&app, garbage, sizeof(garbage));
    CHECK(last_error() == EW_ERRC_BAD_FRAME);
    ew_app_stats_t s;
    ew_app_get_stats(&app, &s);
    CHECK(s.rx_unknown == 2 && s.rx_bad_payload == 2 && s.rx_bad_frames == 1);
    clear_frames();
    host_cmd(EW_CMD_STATUS, 0);
    CHECK(n_frames == 1 && frames[0].type == EW_MSG_STATUS && frames[0].len == EW_PROTO_STATUS_SIZE);
    /* periodic STATUS from the port clock */
    clear_frames();
    now_us += 999000;
    ew_app_poll(&app);
    CHECK(count(EW_MSG_STATUS) == 0);
    now_us += 2000;
    ew_app_poll(&app);
    CHECK(count(EW_MSG_STATUS) == 1);
}

/* Credits: after every host action, outstanding credit + queued samples <= buffer. */
static void check_credit_invariant(void) {
    ew_app_stats_t s;
    ew_app_get_stats(&app, &s);
    CHECK(s.credits + s.inject_queued <= EW_APP_INJECT_SAMPLES);
}

static uint32_t credits_in(unsigned from) {
    uint32_t c = 0;
    for (unsigned i = from; i < n_frames; i++)
        if (frames[i].type == EW_MSG_CREDIT) {
            ew_proto_credit_t m;
            ew_proto_unpack_credit(payload(i), frames[i].len, &m);
            c += m.credits_samples;
        }
    return c;
}

static void events_of_frames(ew_event_t *out, unsigned *n) {
    *n = 0;
    for (unsigned i = 0; i < n_frames && *n < MAX_EV; i++)
        if (frames[i].type == EW_MSG_EVENT) {
            ew_proto_event_t m;
            ew_proto_unpack_event(payload(i), frames[i].len, &m);
            out[*n].onset_sample = m.onset_sample;
            out[*n].duration_samples = m.duration_samples;
            out[*n].class_index = m.class_index;
            out[*n].score = m.score;
            out[*n].kind = m.kind;
            out[*n].hits = m.hits;
            (*n)++;
        }
}

static void test_inject(void) {
    ew_app_info_t i = info();
    ew_port_t p = port();
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    /* some microphone audio first: its stream must not leak into the inject stream */
    ew_app_feed_pcm16(&app, sig, 20000);
    clear_frames();
    host_cmd(EW_CMD_START_STREAM, 1);
    int ack = find(EW_MSG_ACK, 0);
    CHECK(ack >= 0 && find(EW_MSG_CREDIT, (unsigned)ack) > ack);
    uint32_t balance = credits_in(0);
    CHECK(balance == EW_APP_INJECT_SAMPLES);
    check_credit_invariant();
    /* microphone input is ignored while injecting */
    CHECK(ew_app_feed_pcm16(&app, sig, 100) == EW_APP_ERR_STATE);

    /* a frame beyond the credit is refused whole */
    unsigned mark = n_frames;
    static int16_t big[512];
    for (uint32_t k = 0; k < 9; k++) host_inject(k * 512, sig, 512);   /* 4608 > 4096 */
    CHECK(last_error() == EW_ERRC_NO_CREDIT);
    ew_app_stats_t s;
    ew_app_get_stats(&app, &s);
    CHECK(s.inject_samples == 8 * 512 && s.inject_no_credit == 1 && s.credits == 0);
    check_credit_invariant();
    (void)big;
    balance = 0;
    /* feed the rest honouring credits, position gap of 1000 samples at 3 s */
    uint64_t pos = 8 * 512;
    const uint64_t gap_at = 48000, gap = 1000;
    unsigned polls = 0;
    mark = n_frames;
    while (pos < SIG_N) {
        ew_app_poll(&app);
        polls++;
        balance += credits_in(mark);
        mark = n_frames;
        check_credit_invariant();
        while (balance > 0 && pos < SIG_N) {
            if (pos == gap_at && balance >= gap) {              /* a 1000-sample INJECT lost */
                pos += gap;                                       /* on the link: credit spent, */
                balance -= (uint32_t)gap;                         /* its seq number skipped */
                host_seq++;
                continue;
            }
            if (pos == gap_at) break;
            uint32_t n = (uint32_t)(SIG_N - pos);
            if (n > 512) n = 512;
            if (n > balance) n = balance;
            if (pos < gap_at && pos + n > gap_at) n = (uint32_t)(gap_at - pos);
            host_inject(pos, &sig[pos], n);
            balance -= n;
            pos += n;
            check_credit_invariant();
        }
        CHECK(polls < 100000);
        if (polls >= 100000) break;
    }
    ew_app_get_stats(&app, &s);
    CHECK(s.inject_gap_samples == gap && s.inject_no_credit == 1);
    int gap_err = -1;
    for (unsigned k = 0; k < n_frames; k++)
        if (frames[k].type == EW_MSG_ERROR) {
            ew_proto_error_t e;
            ew_proto_unpack_error(payload(k), frames[k].len, &e);
            if (e.code == EW_ERRC_SEQ_GAP) gap_err = (int)k;
        }
    CHECK(gap_err >= 0);
    unsigned before_stop = n_frames;
    host_cmd(EW_CMD_STOP_STREAM, 0);
    ew_app_get_stats(&app, &s);
    CHECK(s.samples == SIG_N && s.input == EW_APP_INPUT_STOPPED && s.credits == 0);
    CHECK(frames[n_frames - 1].type == EW_MSG_ACK);             /* ACK after every EVENT */
    CHECK(find(EW_MSG_EVENT, before_stop) >= 0);                /* END events on STOP */
    CHECK(alarms > 0);

    /* the detector alone, on the same audio with the same zero fill, gives the same events */
    static ew_node_t node;
    static int16_t ref_sig[SIG_N];
    memcpy(ref_sig, sig, sizeof(ref_sig));
    memset(&ref_sig[gap_at], 0, gap * sizeof(int16_t));
    ew_node_config_t cfg;
    ew_node_config_default(&cfg, 2);
    cfg.thresholds_q8[0] = 128;
    cfg.thresholds_q8[1] = EW_THRESHOLD_OFF;
    n_ref = 0;
    CHECK(ew_node_init(&node, &cfg, ref_classify, ref_on_event, NULL, NULL) == EW_OK);
    ew_node_process(&node, ref_sig, SIG_N);
    ew_node_flush(&node);
    static ew_event_t got[MAX_EV];
    unsigned n_got;
    events_of_frames(got, &n_got);
    CHECK(n_ref >= 2 && n_got == n_ref);
    for (unsigned k = 0; k < n_got && k < n_ref; k++)
        CHECK(got[k].onset_sample == ref_ev[k].onset_sample && got[k].kind == ref_ev[k].kind &&
              got[k].class_index == ref_ev[k].class_index && got[k].score == ref_ev[k].score &&
              got[k].duration_samples == ref_ev[k].duration_samples && got[k].hits == ref_ev[k].hits);
    /* input stopped: INJECT refused */
    clear_frames();
    host_inject(SIG_N, sig, 10);
    CHECK(last_error() == EW_ERRC_NO_CREDIT);
}

static void test_record(void) {
    ew_app_info_t i = info();
    ew_port_t p = port();
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    host_set(EW_CFG_AUDIO_STREAM, 1);
    host_cmd(EW_CMD_START_STREAM, 0);
    clear_frames();
    /* uneven chunks; an overrun of 700 samples after 10000 */
    size_t fed = 0;
    const size_t chunks[] = {1, 255, 4096, 77, 513, 3000};
    for (unsigned k = 0; fed < 30000; k++) {
        size_t n = chunks[k % 6];
        if (fed < 10000 && fed + n > 10000) n = 10000 - fed;
        if (fed + n > 30000) n = 30000 - fed;
        CHECK(ew_app_feed_pcm16(&app, &sig[fed], n) == EW_OK);
        fed += n;
        if (fed == 10000) ew_app_note_overrun(&app, 700);
        ew_app_poll(&app);
    }
    host_cmd(EW_CMD_STOP_STREAM, 0);
    uint64_t expect = 0, total = 0;
    int contiguous = 1, equal = 1, holes = 0;
    for (unsigned k = 0; k < n_frames; k++) {
        if (frames[k].type != EW_MSG_AUDIO) continue;
        ew_proto_pcm_t m;
        CHECK(ew_proto_unpack_pcm(payload(k), frames[k].len, &m) == EW_PROTO_OK);
        if (m.first_sample != expect) {
            if (expect == 10000 && m.first_sample == 10700) holes++;
            else contiguous = 0;
        }
        for (unsigned j = 0; j < m.n_samples; j++) {
            const uint64_t idx = m.first_sample + j;
            const int16_t want = sig[idx < 10000 ? idx : idx - 700];
            if (ew_proto_pcm_sample(&m, j) != want) equal = 0;
        }
        CHECK(m.n_samples <= 512);
        expect = m.first_sample + m.n_samples;
        total += m.n_samples;
    }
    CHECK(contiguous && equal && holes == 1);
    CHECK(total == 30000 && expect == 30700);
    CHECK(last_error() == EW_ERRC_OVERRUN);
    ew_app_stats_t s;
    ew_app_get_stats(&app, &s);
    CHECK(s.dropped_samples == 700 && s.samples == 30700 && s.audio_skipped_samples == 0);

    /* ADC path: 32 kHz codes, decimated: 2 codes per sample */
    host_cmd(EW_CMD_START_STREAM, 0);
    clear_frames();
    static uint16_t codes[8192];
    for (int k = 0; k < 8192; k++) codes[k] = (uint16_t)(2048 + (sig[k] >> 4));
    CHECK(ew_app_feed_adc(&app, codes, 8192) == EW_OK);
    ew_app_note_overrun(&app, 301);                                /* 150 samples + 1 code */
    ew_app_get_stats(&app, &s);
    CHECK(s.samples == 4096 + 150 && s.dropped_samples == 700 + 150);   /* since boot */
    CHECK(count(EW_MSG_AUDIO) == 8);

    /* events mode: AUDIO only around events */
    host_set(EW_CFG_AUDIO_STREAM, 2);
    host_cmd(EW_CMD_START_STREAM, 0);
    clear_frames();
    ew_app_feed_pcm16(&app, sig, SIG_N);
    host_cmd(EW_CMD_STOP_STREAM, 0);
    uint64_t sent = 0, last_end = 0;
    int ordered = 1;
    for (unsigned k = 0; k < n_frames; k++) {
        if (frames[k].type != EW_MSG_AUDIO) continue;
        ew_proto_pcm_t m;
        ew_proto_unpack_pcm(payload(k), frames[k].len, &m);
        if (m.first_sample < last_end) ordered = 0;
        for (unsigned j = 0; j < m.n_samples; j++)
            if (ew_proto_pcm_sample(&m, j) != sig[m.first_sample + j]) ordered = 0;
        last_end = m.first_sample + m.n_samples;
        sent += m.n_samples;
    }
    CHECK(count(EW_MSG_EVENT) > 0 && ordered && sent > 8000 && sent < SIG_N);
}

static void test_reboot(void) {
    ew_app_info_t i = info();
    ew_port_t p = port();
    ew_proto_decoder_init(&out_dec);
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    clear_frames();
    reboots = 0;
    host_cmd(EW_CMD_REBOOT, 0);
    host_cmd(EW_CMD_STATUS, 0);                                   /* ignored after reboot */
    CHECK(reboots == 1 && n_frames == 1 && frames[0].type == EW_MSG_ACK);
    p.reboot = NULL;
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    clear_frames();
    host_cmd(EW_CMD_REBOOT, 0);
    CHECK(last_error() == EW_ERRC_UNSUPPORTED);
}

/* Random valid frames of every type (random payloads, lengths, commands, keys, positions):
 * no crash / sanitizer report, the credit invariant holds, every host frame gets handled. */
static uint32_t rng_state = 99;
static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) % n;
}

static void test_random_frames(void) {
    ew_app_info_t i = info();
    ew_port_t p = port();
    ew_proto_decoder_init(&out_dec);
    saved_len = 0;
    CHECK(ew_app_init(&app, &i, &p) == EW_OK);
    static uint8_t pl[EW_PROTO_MAX_PAYLOAD];
    uint64_t pos = 0;
    int reinits = 0;
    for (int k = 0; k < 3000; k++) {
        clear_frames();
        const uint32_t what = rnd(10);
        if (what < 3) {                                   /* INJECT near the position */
            const uint32_t n = rnd(3) == 0 ? rnd(513) : 512;
            const uint64_t at = rnd(8) == 0 ? pos + rnd(20000) : (rnd(8) == 0 && pos > 600 ? pos - rnd(600) : pos);
            for (uint32_t j = 0; j < n; j++) sig[j] = (int16_t)(rnd(65536) - 32768);
            host_inject(at, sig, n);
            pos = at + n;
        } else if (what < 5) {                            /* CMD */
            const uint8_t cmd = (uint8_t)rnd(7);
            host_cmd(cmd, rnd(3));
            if (cmd == EW_CMD_START_STREAM) pos = 0;
        } else if (what < 7) {                            /* CONFIG_SET: keys incl. unknown */
            static const uint16_t keys[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0x100, 0x101, 0x102, 0x1FF};
            const int32_t vals[] = {0, 1, 2, -1, 256, 3000, -30000, 65536, 9600, 0x7FFFFFFF, (int32_t)rnd(100000) - 50000};
            host_set(keys[rnd(sizeof(keys) / sizeof(keys[0]))], vals[rnd(sizeof(vals) / sizeof(vals[0]))]);
        } else {                                          /* any type, random payload */
            const size_t n = rnd(3) == 0 ? rnd(EW_PROTO_MAX_PAYLOAD + 1) : rnd(12);
            for (size_t j = 0; j < n; j++) pl[j] = (uint8_t)rnd(256);
            host_send((uint8_t)rnd(16), pl, n);
        }
        if (rnd(4) == 0) ew_app_feed_pcm16(&app, sig, rnd(2000));
        if (rnd(50) == 0) ew_app_note_overrun(&app, rnd(5000));
        ew_app_poll(&app);
        check_credit_invariant();
        if (app.rebooting) {
            CHECK(ew_app_init(&app, &i, &p) == EW_OK);
            reinits++;
        }
    }
    ew_app_stats_t s;
    ew_app_get_stats(&app, &s);
    CHECK(reinits > 0 && s.tx_errors == 0);
    if (failures) printf("random frames: stats samples %lu\n", (unsigned long)s.samples);
}

int main(void) {
    make_signal();
    test_hello();
    test_config();
    test_errors();
    test_inject();
    test_record();
    test_reboot();
    test_random_frames();
    printf("%s %d checks, %d failures, app %u bytes, classifies %d\n", failures ? "FAILED" : "OK",
           checks, failures, (unsigned)ew_app_sizeof(), classifies);
    return failures ? 1 : 0;
}
