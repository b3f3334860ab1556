/* Runs every core stage on the golden inputs and prints the outputs, one line per array:
 *   <case> <stage> <count> <v0> <v1> ...
 * Built twice by tests/test_golden.py: for the host and for rv32imc (run under QEMU); both
 * outputs must equal tests/golden bit for bit.  golden_data.h is written by the test. */
#include <stdio.h>
#include <string.h>

#include "ew_cond.h"
#include "ew_frontend.h"
#include "ew_gate.h"
#include "golden_data.h"

#define MAX_IN 50000
static int16_t buf[MAX_IN];
static int16_t out16[MAX_IN];
static uint16_t mel[EW_N_MELS];
static int8_t q8[EW_N_MELS];
static ew_frontend_t fe;

static void print_i(const char *c, const char *s, const long *v, size_t n) {
    printf("%s %s %lu", c, s, (unsigned long)n);
    for (size_t i = 0; i < n; i++) printf(" %ld", v[i]);
    printf("\n");
}

static long tmp[MAX_IN * 2];

static void run_case(const char *name, const int16_t *x, size_t n) {
    ew_dcblock_t dc;
    ew_dcblock_reset(&dc);
    ew_dcblock_process(&dc, x, buf, n);
    for (size_t i = 0; i < n; i++) tmp[i] = buf[i];
    print_i(name, "dc", tmp, n);

    static const unsigned factors[] = {2, 3};
    for (int f = 0; f < 2; f++) {
        ew_decim_t d;
        if (ew_decim_init(&d, factors[f]) != EW_OK) { printf("decim init failed\n"); return; }
        /* feed in uneven chunks: the result must not depend on them */
        size_t m = 0, i = 0, chunk = 1;
        while (i < n) {
            size_t take = n - i < chunk ? n - i : chunk;
            m += ew_decim_process(&d, x + i, take, out16 + m);
            i += take;
            chunk = chunk * 3 + 1;
        }
        for (size_t k = 0; k < m; k++) tmp[k] = out16[k];
        print_i(name, factors[f] == 2 ? "decim2" : "decim3", tmp, m);
    }

    const size_t frames = n < EW_FRAME_SAMPLES ? 0 : (n - EW_FRAME_SAMPLES) / EW_HOP_SAMPLES + 1;
    ew_quant_t q;
    ew_quant_default(&q);
    size_t k = 0, kq = 0;
    static long feats[MAX_IN];
    for (size_t j = 0; j < frames; j++) {
        ew_frontend_logmel(&fe, &buf[j * EW_HOP_SAMPLES], mel);
        ew_frontend_quantize(mel, q8, EW_N_MELS, &q);
        for (int b = 0; b < EW_N_MELS; b++) {
            tmp[k++] = mel[b];
            feats[kq++] = q8[b];
        }
    }
    print_i(name, "logmel", tmp, k);
    print_i(name, "features", feats, kq);

    ew_gate_t g;
    ew_gate_config_t gc;
    ew_gate_config_default(&gc);
    if (ew_gate_init(&g, &gc) != EW_OK) { printf("gate init failed\n"); return; }
    k = 0;
    for (size_t b = 0; b + EW_HOP_SAMPLES <= n; b += EW_HOP_SAMPLES) {
        /* as the node does: frame k-1 (blocks k-1, k) updates the tonality before block k */
        if (b >= EW_HOP_SAMPLES && b - EW_HOP_SAMPLES + EW_FRAME_SAMPLES <= n) {
            ew_frontend_logmel(&fe, &buf[b - EW_HOP_SAMPLES], mel);
            ew_gate_spectrum(&g, mel);
        }
        const uint64_t ss = ew_sum_squares(&buf[b], EW_HOP_SAMPLES);
        ew_gate_process_block(&g, (uint32_t)(ss >> EW_HOP_LOG2));
        tmp[k++] = (long)g.power;
        tmp[k++] = g.level_q8;
        tmp[k++] = g.bg_used_q8;
        tmp[k++] = g.excess_q8;
        tmp[k++] = (long)g.spread_q16;
        tmp[k++] = g.flags;
        tmp[k++] = g.nf_used_q8;
        tmp[k++] = g.jump_q8;
        tmp[k++] = g.onset_delay;
        tmp[k++] = g.novelty_q8;
        tmp[k++] = g.tonal_used_q8;
    }
    print_i(name, "gate", tmp, k);
}

int main(void) {
    run_case("synthetic", golden_synthetic, sizeof(golden_synthetic) / sizeof(golden_synthetic[0]));
    run_case("real", golden_real, sizeof(golden_real) / sizeof(golden_real[0]));
    run_case("sustained", golden_sustained, sizeof(golden_sustained) / sizeof(golden_sustained[0]));
    static int16_t pcm[sizeof(golden_adc_codes) / sizeof(golden_adc_codes[0])];
    const size_t n = sizeof(pcm) / sizeof(pcm[0]);
    ew_adc_to_pcm(golden_adc_codes, pcm, n);
    for (size_t i = 0; i < n; i++) tmp[i] = pcm[i];
    print_i("adc", "pcm", tmp, n);
    printf("log2 %lu %lu %lu %lu\n", (unsigned long)ew_log2_q8_u64(0), (unsigned long)ew_log2_q8_u64(1),
           (unsigned long)ew_log2_q8_u64(1000003), (unsigned long)ew_log2_q8_u64(UINT64_MAX));
    return 0;
}
