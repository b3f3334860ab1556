/* Makes the portable core loadable as a Python extension module file; the functions are
 * called through ctypes (tools/node/core.py, tools/node/app.py).  Besides the core it exports one table:
 * the compiler's sizeof / offsetof of every C struct that tools/ mirrors as a ctypes.Structure,
 * so that a mirror that no longer matches the C layout fails at import (tools.core.check_layout). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>

#include "ew_app.h"

/** One row: a struct's size (field "") or one field's offset and size, in bytes. */
typedef struct {
    const char *type;
    const char *field;
    uint32_t offset_bytes;
    uint32_t size_bytes;
} ew_layout_row_t;

#define SIZE(T) {#T, "", 0u, (uint32_t)sizeof(T)}
#define ROW(T, F) {#T, #F, (uint32_t)offsetof(T, F), (uint32_t)sizeof(((T *)0)->F)}

static const ew_layout_row_t layout_rows[] = {
    SIZE(ew_gate_config_t),
    ROW(ew_gate_config_t, floor_q8),
    ROW(ew_gate_config_t, onset_margin_q8),
    ROW(ew_gate_config_t, strong_margin_q8),
    ROW(ew_gate_config_t, jump_margin_q8),
    ROW(ew_gate_config_t, confirm_margin_q8),
    ROW(ew_gate_config_t, onset_blocks),
    ROW(ew_gate_config_t, sustain_margin_q8),
    ROW(ew_gate_config_t, spread_max_q16),
    ROW(ew_gate_config_t, sustain_blocks),
    ROW(ew_gate_config_t, recheck_blocks),
    ROW(ew_gate_config_t, warmup_blocks),
    ROW(ew_gate_config_t, bg_fall_shift),
    ROW(ew_gate_config_t, bg_rise_shift),
    ROW(ew_gate_config_t, nf_fall_shift),
    ROW(ew_gate_config_t, nf_rise_shift),
    ROW(ew_gate_config_t, peak_margin_q8),
    ROW(ew_gate_config_t, peak_decay_q8),
    ROW(ew_gate_config_t, tonal_margin_q8),
    ROW(ew_gate_config_t, tonal_shift),
    SIZE(ew_quant_t),
    ROW(ew_quant_t, mult),
    ROW(ew_quant_t, shift),
    ROW(ew_quant_t, zero_point),
    SIZE(ew_node_config_t),
    ROW(ew_node_config_t, gate),
    ROW(ew_node_config_t, quant),
    ROW(ew_node_config_t, thresholds_q8),
    ROW(ew_node_config_t, holdoff_samples),
    ROW(ew_node_config_t, n_classes),
    ROW(ew_node_config_t, preroll_frames),
    ROW(ew_node_config_t, mode),
    ROW(ew_node_config_t, continuous_stride),
    ROW(ew_node_config_t, early_preroll_frames),
    ROW(ew_node_config_t, early_continue_blocks),
    ROW(ew_node_config_t, early_continue_margin_q8),
    ROW(ew_node_config_t, habituate_onsets),
    ROW(ew_node_config_t, habituate_max_score_q8),
    ROW(ew_node_config_t, habituate_blocks),
    ROW(ew_node_config_t, habituate_margin_q8),
    ROW(ew_node_config_t, habituate_rechecks),
    ROW(ew_node_config_t, habituate_recheck_max_score_q8),
    ROW(ew_node_config_t, habituate_recheck_blocks),
    SIZE(ew_event_t),
    ROW(ew_event_t, onset_sample),
    ROW(ew_event_t, duration_samples),
    ROW(ew_event_t, class_index),
    ROW(ew_event_t, score),
    ROW(ew_event_t, kind),
    ROW(ew_event_t, hits),
    SIZE(ew_window_t),
    ROW(ew_window_t, start_sample),
    ROW(ew_window_t, trigger_sample),
    ROW(ew_window_t, trigger_block),
    ROW(ew_window_t, kind),
    SIZE(ew_block_info_t),
    ROW(ew_block_info_t, block),
    ROW(ew_block_info_t, level_q8),
    ROW(ew_block_info_t, bg_q8),
    ROW(ew_block_info_t, excess_q8),
    ROW(ew_block_info_t, nf_q8),
    ROW(ew_block_info_t, spread_q16),
    ROW(ew_block_info_t, flags),
    ROW(ew_block_info_t, trigger),
    ROW(ew_block_info_t, gate_open),
    SIZE(ew_node_stats_t),
    ROW(ew_node_stats_t, samples),
    ROW(ew_node_stats_t, blocks),
    ROW(ew_node_stats_t, frames),
    ROW(ew_node_stats_t, gate_open_blocks),
    ROW(ew_node_stats_t, triggers_onset),
    ROW(ew_node_stats_t, triggers_recheck),
    ROW(ew_node_stats_t, windows),
    ROW(ew_node_stats_t, classify_errors),
    ROW(ew_node_stats_t, events),
    ROW(ew_node_stats_t, windows_dropped),
    ROW(ew_node_stats_t, onsets_habituated),
    ROW(ew_node_stats_t, rechecks_slowed),
    SIZE(ew_port_t),
    ROW(ew_port_t, ctx),
    ROW(ew_port_t, write),
    ROW(ew_port_t, time_us),
    ROW(ew_port_t, perf_us),
    ROW(ew_port_t, classify),
    ROW(ew_port_t, config_load),
    ROW(ew_port_t, config_save),
    ROW(ew_port_t, alarm),
    ROW(ew_port_t, set_baud),
    ROW(ew_port_t, reboot),
    ROW(ew_port_t, log),
    SIZE(ew_app_info_t),
    ROW(ew_app_info_t, board),
    ROW(ew_app_info_t, fw_major),
    ROW(ew_app_info_t, fw_minor),
    ROW(ew_app_info_t, fw_patch),
    ROW(ew_app_info_t, reset_reason),
    ROW(ew_app_info_t, model_hash),
    ROW(ew_app_info_t, config_hash),
    ROW(ew_app_info_t, node_id),
    ROW(ew_app_info_t, n_classes),
    ROW(ew_app_info_t, labels),
    ROW(ew_app_info_t, thresholds_q8),
    ROW(ew_app_info_t, quant),
    ROW(ew_app_info_t, adc_rate_hz),
    ROW(ew_app_info_t, default_baud),
    SIZE(ew_app_stats_t),
    ROW(ew_app_stats_t, samples),
    ROW(ew_app_stats_t, input),
    ROW(ew_app_stats_t, credits),
    ROW(ew_app_stats_t, inject_queued),
    ROW(ew_app_stats_t, rx_frames),
    ROW(ew_app_stats_t, rx_bad_frames),
    ROW(ew_app_stats_t, rx_unknown),
    ROW(ew_app_stats_t, rx_bad_payload),
    ROW(ew_app_stats_t, rx_seq_gaps),
    ROW(ew_app_stats_t, tx_frames),
    ROW(ew_app_stats_t, tx_bytes),
    ROW(ew_app_stats_t, tx_errors),
    ROW(ew_app_stats_t, inject_samples),
    ROW(ew_app_stats_t, inject_no_credit),
    ROW(ew_app_stats_t, inject_gap_samples),
    ROW(ew_app_stats_t, inject_overlap_samples),
    ROW(ew_app_stats_t, dropped_samples),
    ROW(ew_app_stats_t, audio_frames),
    ROW(ew_app_stats_t, audio_skipped_samples),
    ROW(ew_app_stats_t, status_frames),
    ROW(ew_app_stats_t, events),
    ROW(ew_app_stats_t, inference_count),
    ROW(ew_app_stats_t, inference_us_last),
    ROW(ew_app_stats_t, inference_us_max),
    ROW(ew_app_stats_t, persist_errors),
};

/**
 * @brief The layout table of the mirrored structs (for ctypes).
 * @param n_rows  out: number of rows (may be NULL)
 * @return the rows, in struct order, each struct's SIZE row first; never NULL.
 */
const ew_layout_row_t *ew_layout_rows(uint32_t *n_rows);
const ew_layout_row_t *ew_layout_rows(uint32_t *n_rows) {
    if (n_rows != NULL) *n_rows = (uint32_t)(sizeof(layout_rows) / sizeof(layout_rows[0]));
    return layout_rows;
}

static struct PyModuleDef ewcore_module = {PyModuleDef_HEAD_INIT, "_ewcore",
                                           "earwitness portable core (use tools.core)", -1, NULL,
                                           NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ewcore(void) { return PyModule_Create(&ewcore_module); }
