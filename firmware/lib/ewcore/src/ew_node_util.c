/* Detector: configuration, init and reset (see ew_node.h). */
#include <string.h>

#include "ew_node.h"

void ew_node_config_default(ew_node_config_t *cfg, uint8_t n_classes) {
    memset(cfg, 0, sizeof(*cfg));
    ew_gate_config_default(&cfg->gate);
    ew_quant_default(&cfg->quant);
    cfg->n_classes = n_classes > EW_MAX_CLASSES ? EW_MAX_CLASSES : n_classes;
    for (int c = 0; c < EW_MAX_CLASSES; c++) cfg->thresholds_q8[c] = EW_DET_DEFAULT_THRESHOLD_Q8;
    cfg->holdoff_samples = EW_DET_HOLDOFF_SAMPLES;
    cfg->preroll_frames = EW_DET_PREROLL_FRAMES;
    cfg->early_preroll_frames = EW_DET_EARLY_PREROLL_FRAMES;
    cfg->early_continue_blocks = EW_DET_EARLY_CONTINUE_BLOCKS;
    cfg->early_continue_margin_q8 = EW_DET_EARLY_CONTINUE_MARGIN_Q8;
    cfg->habituate_onsets = EW_DET_HABITUATE_ONSETS;
    cfg->habituate_max_score_q8 = EW_DET_HABITUATE_MAX_SCORE_Q8;
    cfg->habituate_blocks = EW_DET_HABITUATE_BLOCKS;
    cfg->habituate_margin_q8 = EW_DET_HABITUATE_MARGIN_Q8;
    cfg->habituate_rechecks = EW_DET_HABITUATE_RECHECKS;
    cfg->habituate_recheck_max_score_q8 = EW_DET_HABITUATE_RECHECK_MAX_SCORE_Q8;
    cfg->habituate_recheck_blocks = EW_DET_HABITUATE_RECHECK_BLOCKS;
    cfg->mode = EW_MODE_GATED;
    cfg->continuous_stride = EW_DET_CONTINUOUS_STRIDE;
}

int ew_node_init(ew_node_t *n, const ew_node_config_t *cfg, ew_classify_fn classify,
                 ew_event_fn on_event, ew_block_fn on_block, void *ctx) {
    if (n == NULL || cfg == NULL) return EW_ERR_ARG;
    if (cfg->n_classes > EW_MAX_CLASSES || cfg->preroll_frames >= EW_FRAMES_PER_WINDOW ||
        cfg->preroll_frames > cfg->gate.warmup_blocks || cfg->continuous_stride == 0 ||
        (cfg->early_preroll_frames != 0 && (cfg->early_preroll_frames <= cfg->preroll_frames ||
                                            cfg->early_preroll_frames >= EW_FRAMES_PER_WINDOW)) ||
        (cfg->mode != EW_MODE_GATED && cfg->mode != EW_MODE_CONTINUOUS) ||
        (cfg->habituate_onsets != 0 &&
         (cfg->habituate_blocks == 0 || cfg->habituate_margin_q8 < 0)) ||
        (cfg->habituate_rechecks != 0 &&
         (cfg->habituate_blocks == 0 || cfg->habituate_margin_q8 < 0 ||
          cfg->habituate_recheck_blocks < cfg->gate.recheck_blocks)))
        return EW_ERR_CONFIG;
    for (int c = 0; c < cfg->n_classes; c++)
        if (cfg->thresholds_q8[c] > EW_THRESHOLD_OFF) return EW_ERR_CONFIG;
    if (ew_quant_check(&cfg->quant) != EW_OK) return EW_ERR_CONFIG;
    memset(n, 0, sizeof(*n));
    const int rc = ew_gate_init(&n->gate, &cfg->gate);
    if (rc != EW_OK) return rc;
    n->cfg = *cfg;
    n->classify = classify;
    n->on_event = on_event;
    n->on_block = on_block;
    n->ctx = ctx;
    ew_node_reset(n);
    return EW_OK;
}

void ew_node_reset(ew_node_t *n) {
    ew_dcblock_reset(&n->dc);
    ew_gate_reset(&n->gate);
    memset(n->frame, 0, sizeof(n->frame));
    memset(n->sub_sq, 0, sizeof(n->sub_sq));
    memset(n->ring, n->cfg.quant.zero_point, sizeof(n->ring)); /* silence before the stream */
    memset(n->pending, 0, sizeof(n->pending));
    memset(n->active, 0, sizeof(n->active));
    memset(&n->stats, 0, sizeof(n->stats));
    n->fill = 0;
    n->n_pending = 0;
    n->has_triggered = 0;
    n->has_loud = 0;
    n->has_on = 0;
    n->last_on_block = 0;
    n->last_trigger_block = 0;
    n->last_loud_block = 0;
    memset(n->recent_level_q8, 0, sizeof(n->recent_level_q8));
    memset(&n->hab, 0, sizeof(n->hab));
    n->level_since_trigger_q8 = 0;
}

void ew_node_get_stats(const ew_node_t *n, ew_node_stats_t *out) { *out = n->stats; }

size_t ew_node_sizeof(void) { return sizeof(ew_node_t); }
