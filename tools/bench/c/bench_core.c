/* Instruction counts of the core on rv32imc (ESP32-C3 ISA), read from the minstret CSR under
 * qemu-system-riscv32 -icount shift=0 (deterministic).  bench_data.h (written by tools/bench.py)
 * holds real audio as 12-bit ADC codes at 32 kHz.  Prints one line per figure:
 *   samples_out <n>            16 kHz samples produced
 *   instret_conditioning <n>   ADC codes -> int16 -> decimator (32 -> 16 kHz)
 *   instret_node <n>           DC blocker + gate + log-mel front end + detector (no classifier)
 *   instret_logmel_frame <n>   one ew_frontend_logmel call
 *   windows <n>                analysis windows the gate opened
 * On the host (no minstret) the counts print as 0; only the rv32 build is measured. */
#include <stdio.h>
#include <string.h>

#include "bench_data.h"
#include "ew_instret.h"
#include "ew_cond.h"
#include "ew_node.h"

#define CHUNK 512   /* ADC codes per DMA-sized chunk */
static ew_node_t node;
static ew_decim_t decim;

int main(void) {
    static int16_t pcm[CHUNK];
    static int16_t out[CHUNK / 2 + 1];
    ew_node_config_t cfg;
    ew_node_config_default(&cfg, 0);
    if (ew_node_init(&node, &cfg, NULL, NULL, NULL, NULL) != EW_OK) return 2;
    if (ew_decim_init(&decim, 2) != EW_OK) return 3;
    uint64_t t_cond = 0, t_node = 0, n_out = 0;
    const size_t n = sizeof(bench_codes) / sizeof(bench_codes[0]);
    for (size_t i = 0; i + CHUNK <= n; i += CHUNK) {
        uint64_t t0 = instret();
        ew_adc_to_pcm(&bench_codes[i], pcm, CHUNK);
        const size_t m = ew_decim_process(&decim, pcm, CHUNK, out);
        uint64_t t1 = instret();
        ew_node_process(&node, out, m);
        uint64_t t2 = instret();
        t_cond += t1 - t0;
        t_node += t2 - t1;
        n_out += m;
    }
    static ew_frontend_t fe;
    static uint16_t mel[EW_N_MELS];
    static int16_t frame[EW_FRAME_SAMPLES];
    for (int i = 0; i < EW_FRAME_SAMPLES; i++) frame[i] = (int16_t)((bench_codes[i] - 2048) * 16);
    const uint64_t t0 = instret();
    ew_frontend_logmel(&fe, frame, mel);
    const uint64_t t_frame = instret() - t0;
    ew_node_stats_t st;
    ew_node_get_stats(&node, &st);
    printf("samples_out %lu\n", (unsigned long)n_out);
    printf("instret_conditioning %llu\n", (unsigned long long)t_cond);
    printf("instret_node %llu\n", (unsigned long long)t_node);
    printf("instret_logmel_frame %llu\n", (unsigned long long)t_frame);
    printf("windows %lu\n", (unsigned long)st.windows);
    return 0;
}
