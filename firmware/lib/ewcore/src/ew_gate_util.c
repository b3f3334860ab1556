/* Block-power impulse gate: configuration and reset (see ew_gate.h). */
#include <string.h>

#include "ew_gate.h"

void ew_gate_config_default(ew_gate_config_t *cfg) {
    cfg->floor_q8 = EW_GATE_FLOOR_Q8;
    cfg->onset_margin_q8 = EW_GATE_ONSET_MARGIN_Q8;
    cfg->strong_margin_q8 = EW_GATE_STRONG_MARGIN_Q8;
    cfg->jump_margin_q8 = EW_GATE_JUMP_MARGIN_Q8;
    cfg->confirm_margin_q8 = EW_GATE_CONFIRM_MARGIN_Q8;
    cfg->onset_blocks = EW_GATE_ONSET_BLOCKS;
    cfg->sustain_margin_q8 = EW_GATE_SUSTAIN_MARGIN_Q8;
    cfg->spread_max_q16 = EW_GATE_SPREAD_MAX_Q16;
    cfg->sustain_blocks = EW_GATE_SUSTAIN_BLOCKS;
    cfg->recheck_blocks = EW_GATE_RECHECK_BLOCKS;
    cfg->warmup_blocks = EW_GATE_WARMUP_BLOCKS;
    cfg->bg_fall_shift = EW_GATE_BG_FALL_SHIFT;
    cfg->bg_rise_shift = EW_GATE_BG_RISE_SHIFT;
    cfg->nf_fall_shift = EW_GATE_NF_FALL_SHIFT;
    cfg->nf_rise_shift = EW_GATE_NF_RISE_SHIFT;
    cfg->peak_margin_q8 = EW_GATE_PEAK_MARGIN_Q8;
    cfg->peak_decay_q8 = EW_GATE_PEAK_DECAY_Q8;
    cfg->tonal_margin_q8 = EW_GATE_TONAL_MARGIN_Q8;
    cfg->tonal_shift = EW_GATE_TONAL_SHIFT;
}

int ew_gate_init(ew_gate_t *g, const ew_gate_config_t *cfg) {
    if (g == NULL || cfg == NULL) return EW_ERR_ARG;
    if (cfg->bg_fall_shift < 1 || cfg->bg_fall_shift > 15 || cfg->bg_rise_shift < 1 ||
        cfg->bg_rise_shift > 15 || cfg->nf_fall_shift < 1 || cfg->nf_fall_shift > 15 ||
        cfg->nf_rise_shift < 1 || cfg->nf_rise_shift > 15 || cfg->onset_margin_q8 < 0 ||
        cfg->strong_margin_q8 < 0 || cfg->jump_margin_q8 < 0 || cfg->sustain_margin_q8 < 0 ||
        cfg->recheck_blocks == 0 || cfg->sustain_blocks == 0 || cfg->onset_blocks < 1 ||
        cfg->onset_blocks > EW_GATE_MAX_ONSET_BLOCKS || cfg->peak_decay_q8 < 1 ||
        cfg->tonal_shift > 15)
        return EW_ERR_CONFIG;
    g->cfg = *cfg;
    ew_gate_reset(g);
    return EW_OK;
}

void ew_gate_reset(ew_gate_t *g) {
    const ew_gate_config_t cfg = g->cfg;
    memset(g, 0, sizeof(*g));
    g->cfg = cfg;
}
