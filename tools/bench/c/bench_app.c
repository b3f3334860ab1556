/* Instruction counts of the node application (ew_app) on rv32imc (ESP32-C3 ISA), from the
 * minstret CSR under qemu-system-riscv32 -icount shift=0, on the audio of bench_data.h (written
 * by tools/bench.py: 12-bit ADC codes at 32 kHz).  The classifier is a stub (constant scores),
 * so the figures are everything the node does per second of audio except TFLM.  Prints:
 *   samples <n>              16 kHz samples per run
 *   instret_baseline <n>     conditioning + detector alone (as bench_core.c)
 *   instret_detect <n>       ew_app_feed_adc + ew_app_poll, detect mode (STATUS every second)
 *   instret_record <n>       the same with AUDIO_STREAM 1 (AUDIO frames encoded and written)
 *   instret_inject <n>       ew_app_rx of INJECT frames (COBS/CRC decode) + ew_app_poll
 *   tx_bytes_record <n>      bytes the record run wrote
 *   windows <n>              analysis windows (classifier calls) per run
 * On the host (no minstret) the counts print as 0. */
#include <stdio.h>
#include <string.h>

#include "bench_data.h"
#include "ew_instret.h"
#include "ew_app.h"

#define CHUNK 512
#define N_CODES (sizeof(bench_codes) / sizeof(bench_codes[0]))

static uint32_t tx_bytes, classifies;
static uint64_t fake_time;

static int p_write(void *ctx, const uint8_t *d, size_t n) {
    (void)ctx;
    (void)d;
    tx_bytes += (uint32_t)n;
    return (int)n;
}
static uint64_t p_time(void *ctx) { (void)ctx; return fake_time; }
static int p_classify(void *ctx, const ew_window_t *w, const int8_t *f, uint8_t *s, uint8_t n) {
    (void)ctx;
    (void)w;
    (void)f;
    memset(s, 0, n);
    classifies++;
    return 0;
}

static const char *const labels[] = {"gunshot", "glass_breaking", "scream", "siren",
                                     "fireworks_explosion", "baby_cry", "dog_bark", "other"};
static ew_app_t app;
static ew_node_t node;
static ew_decim_t decim;
static int16_t pcm16[N_CODES / 2 + 64];

static void init_app(void) {
    ew_app_info_t info;
    memset(&info, 0, sizeof(info));
    info.board = "bench";
    info.n_classes = 8;
    info.labels = labels;
    ew_quant_default(&info.quant);
    info.adc_rate_hz = 32000;
    ew_port_t port;
    memset(&port, 0, sizeof(port));
    port.write = p_write;
    port.time_us = p_time;
    port.classify = p_classify;
    fake_time = 0;
    if (ew_app_init(&app, &info, &port) != EW_OK) printf("FAIL init\n");
}

/* microphone path: returns instructions */
static uint64_t run_mic(void) {
    uint64_t t = 0;
    for (size_t i = 0; i + CHUNK <= N_CODES; i += CHUNK) {
        fake_time += CHUNK * 1000000u / 32000u;
        const uint64_t t0 = instret();
        ew_app_feed_adc(&app, &bench_codes[i], CHUNK);
        ew_app_poll(&app);
        t += instret() - t0;
    }
    return t;
}

int main(void) {
    /* baseline: conditioning + detector, and the 16 kHz signal for the inject run */
    static int16_t pcm[CHUNK];
    ew_node_config_t cfg;
    ew_node_config_default(&cfg, 8);
    if (ew_node_init(&node, &cfg, NULL, NULL, NULL, NULL) != EW_OK) return 2;
    if (ew_decim_init(&decim, 2) != EW_OK) return 3;
    uint64_t t_base = 0;
    size_t n16 = 0;
    for (size_t i = 0; i + CHUNK <= N_CODES; i += CHUNK) {
        const uint64_t t0 = instret();
        ew_adc_to_pcm(&bench_codes[i], pcm, CHUNK);
        const size_t m = ew_decim_process(&decim, pcm, CHUNK, &pcm16[n16]);
        ew_node_process(&node, &pcm16[n16], m);
        t_base += instret() - t0;
        n16 += m;
    }

    init_app();
    classifies = 0;
    const uint64_t t_detect = run_mic();
    const uint32_t windows = classifies;

    init_app();
    int32_t v;
    ew_app_config_set(&app, EW_CFG_AUDIO_STREAM, EW_AUDIO_STREAM_CONTINUOUS, &v);
    tx_bytes = 0;
    const uint64_t t_record = run_mic();
    const uint32_t tx_record = tx_bytes;

    /* inject: frames of 512 samples, sent as credit allows (frames encoded outside the count) */
    init_app();
    static uint8_t payload[EW_PROTO_MAX_PAYLOAD], wire[EW_PROTO_MAX_WIRE];
    static const uint8_t start[] = {EW_CMD_START_STREAM, 1, 0, 0, 0};
    size_t w = ew_proto_encode(EW_MSG_CMD, 0, start, sizeof(start), wire, sizeof(wire));
    ew_app_rx(&app, wire, w);
    uint16_t seq = 1;
    uint64_t t_inject = 0;
    for (size_t pos = 0; pos < n16;) {
        ew_app_stats_t st;
        ew_app_get_stats(&app, &st);
        size_t n = n16 - pos < 512 ? n16 - pos : 512;
        if (n > st.credits) {
            const uint64_t t0 = instret();
            ew_app_poll(&app);
            t_inject += instret() - t0;
            continue;
        }
        const int len = ew_proto_pack_pcm(pos, &pcm16[pos], n, payload, sizeof(payload));
        w = ew_proto_encode(EW_MSG_INJECT, seq++, payload, (size_t)len, wire, sizeof(wire));
        fake_time += n * 1000000u / 16000u;
        const uint64_t t0 = instret();
        ew_app_rx(&app, wire, w);
        ew_app_poll(&app);
        t_inject += instret() - t0;
        pos += n;
    }

    printf("samples %lu\n", (unsigned long)n16);
    printf("instret_baseline %llu\n", (unsigned long long)t_base);
    printf("instret_detect %llu\n", (unsigned long long)t_detect);
    printf("instret_record %llu\n", (unsigned long long)t_record);
    printf("instret_inject %llu\n", (unsigned long long)t_inject);
    printf("tx_bytes_record %lu\n", (unsigned long)tx_record);
    printf("windows %lu\n", (unsigned long)windows);
    return 0;
}
