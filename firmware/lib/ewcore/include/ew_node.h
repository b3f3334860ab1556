/**
 * @file ew_node.h
 * @brief The node's detector: DC blocker, gate, front end, pre-trigger buffering, analysis
 *        windows, classifier hand-off and event decisions.  Streaming and allocation-free.
 *
 * Timeline (hop = block = EW_HOP_SAMPLES samples, index k from the stream start):
 *  - block k covers samples [kH, (k+1)H); frame j covers samples [jH, jH + EW_FRAME_SAMPLES)
 *    and is complete when block j+1 is; features of the last EW_FRAMES_PER_WINDOW frames are
 *    kept in a ring (the pre-trigger buffer: 64 frames = 1.04 s).
 *  - An ONSET from the gate for block k (confirmed onset_delay blocks later; when no analysis
 *    window is pending, or when it falls in the second half of the pending one) opens an
 *    analysis window of frames
 *    [k - preroll, k - preroll + EW_FRAMES_PER_WINDOW): its features go to the classifier
 *    when block k - preroll + EW_FRAMES_PER_WINDOW completes.  With early_preroll_frames E > 0
 *    the onset also opens an EARLY window of frames [k - E, k - E + EW_FRAMES_PER_WINDOW)
 *    (frames before the stream are digital silence), classified E - preroll blocks sooner: most events are then
 *    reported ~(EW_FRAMES_PER_WINDOW - E) hops after they begin.  The main window is then kept
 *    only if the sound is still on: a block early_continue_margin over the noise floor among
 *    the last early_continue_blocks blocks up to the one that completed the early window (a short impulse is classified once,
 *    a longer sound twice; a hit of the main window merges into the early one's event).  While the gate says LOUD and no window is
 *    pending, a RECHECK window opens every recheck_blocks blocks.
 *  - Habituation (habituate_onsets N > 0, gated mode): an onset whose windows the classifier
 *    rejects with confidence (no hit, and every enabled class scored below habituate_max_score;
 *    early and main window of one onset count once) is remembered with its level (the loudest
 *    gate block from the onset block to its confirmation).  After N such onsets, each within
 *    habituate_blocks of the previous, a new onset no louder than the loudest of them plus
 *    habituate_margin opens no window (counted in onsets_habituated) and extends the
 *    habituation by habituate_blocks.  Any hit ends it; so does habituate_blocks without a
 *    rejected or suppressed onset.  RECHECK windows are never suppressed.  A crackling fire or
 *    a dripping tap is then classified once per episode, not once per pop; a louder impulse
 *    still opens the gate.
 *  - Re-check habituation (habituate_rechecks R > 0, gated mode): after R RECHECK windows in a
 *    row that the classifier clearly rejects (no hit, every enabled class below
 *    habituate_recheck_max_score), the next RECHECK opens habituate_recheck_blocks after the
 *    previous trigger instead of recheck_blocks (such windows are counted in rechecks_slowed).
 *    It ends with any hit, with habituate_blocks without such a rejection, and, for as long as
 *    it lasts, with a gate block louder than every block of the rejected windows plus
 *    habituate_margin (a louder burst inside the sound, a new sound on top).  Rejections within
 *    habituate_blocks after a hit do not count (a fireworks display goes on).  An engine, a
 *    helicopter or a long crackling fire is then looked at every few seconds, not
 *    continuously; a siren or a cry that the re-checks recognise is followed window after
 *    window, and onsets open windows as before.
 *  - A node without enabled classes (threshold OFF everywhere) never habituates.
 *  - In continuous mode every stride-th frame closes a window over the last 64 frames.
 *  - Scores (Q0.8) at or above a class's threshold make a hit of the best such class.  A hit
 *    of the class of an open event within holdoff samples of its end is merged into it;
 *    otherwise it opens a new event (EVENT kind ONSET emitted immediately).  An event closes
 *    (EVENT kind END: total duration, max score, hit count) holdoff samples after its last hit.
 *  - Onsets are sample indices: the trigger block refined to the first 16-sample sub-block
 *    whose power exceeds the background by the onset margin.
 *
 * Processing is identical whatever chunk sizes the samples arrive in.
 */
#ifndef EW_NODE_H
#define EW_NODE_H

#include "ew_cond.h"
#include "ew_frontend.h"
#include "ew_gate.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EW_MAX_CLASSES 16
#define EW_SUBBLOCK_SAMPLES 16
#define EW_SUBBLOCKS (EW_HOP_SAMPLES / EW_SUBBLOCK_SAMPLES)
#define EW_WINDOW_FEATURES (EW_FRAMES_PER_WINDOW * EW_N_MELS)
#define EW_MAX_PENDING 4      /**< two onsets, each with its early and main window */
#define EW_THRESHOLD_OFF 256u /**< threshold value that disables a class (e.g. "negative") */

enum { EW_MODE_GATED = 0, EW_MODE_CONTINUOUS = 1 };
enum {
    EW_TRIGGER_ONSET = 0,
    EW_TRIGGER_RECHECK = 1,
    EW_TRIGGER_CONTINUOUS = 2,
    EW_TRIGGER_EARLY = 3
};
enum { EW_EVENT_ONSET = 0, EW_EVENT_END = 1 };

/** An event decision, as sent in EVENT frames. */
typedef struct {
    uint64_t onset_sample;     /**< first sample of the event (16 kHz, since reset) */
    uint32_t duration_samples; /**< so far (ONSET) or total (END) */
    uint8_t class_index;
    uint8_t score; /**< Q0.8 (best over merged hits for END) */
    uint8_t kind;  /**< EW_EVENT_ONSET / EW_EVENT_END */
    uint16_t hits; /**< classifier hits merged into the event */
} ew_event_t;

/** What the classifier is given with each analysis window. */
typedef struct {
    int64_t start_sample;    /**< first sample of the window's first frame (negative for an
                                     early window at the start of a stream: frames before sample 0
                                     are digital silence) */
    uint64_t trigger_sample; /**< refined onset (ONSET), trigger block start otherwise */
    uint64_t trigger_block;
    uint8_t kind; /**< EW_TRIGGER_* (EARLY: the early window of an onset) */
} ew_window_t;

/** Per-block trace (level meter, gate state) for STATUS frames, tests and plots. */
typedef struct {
    uint64_t block;
    int32_t level_q8; /**< log2(mean square) Q8; dBFS = (level_q8/256 - 30) * 3.0103 */
    int32_t bg_q8;    /**< background estimate used for this block */
    int32_t excess_q8;
    int32_t nf_q8; /**< long-term noise floor used for this block */
    uint32_t spread_q16;
    uint8_t flags;     /**< EW_GATE_* */
    uint8_t trigger;   /**< 1 + EW_TRIGGER_* if a window opened on this block, else 0 */
    uint8_t gate_open; /**< an analysis window is pending (inference will run) */
} ew_block_info_t;

/**
 * Classifier: fill scores[n_classes] (Q0.8 probabilities) for a window of
 * EW_FRAMES_PER_WINDOW x EW_N_MELS int8 features (frame-major).  Return 0, or non-zero on
 * failure (counted in stats; no decision is made for that window).
 */
typedef int (*ew_classify_fn)(void *ctx, const ew_window_t *w, const int8_t *features,
                              uint8_t *scores);
typedef void (*ew_event_fn)(void *ctx, const ew_event_t *ev);
typedef void (*ew_block_fn)(void *ctx, const ew_block_info_t *b);

typedef struct {
    ew_gate_config_t gate;
    ew_quant_t quant;
    uint16_t thresholds_q8[EW_MAX_CLASSES]; /**< 0..255, or EW_THRESHOLD_OFF */
    uint32_t holdoff_samples;
    uint8_t n_classes;            /**< 0..EW_MAX_CLASSES */
    uint8_t preroll_frames;       /**< <= warmup_blocks, < EW_FRAMES_PER_WINDOW */
    uint8_t mode;                 /**< EW_MODE_* */
    uint16_t continuous_stride;   /**< >= 1 */
    uint8_t early_preroll_frames; /**< 0 (off) or preroll_frames < E < EW_FRAMES_PER_WINDOW */
    uint8_t
        early_continue_blocks; /**< main window kept if the sound was on in the early window's last N blocks... */
    int32_t
        early_continue_margin_q8;   /**< ...i.e. a block this far over the noise floor (log2 Q8) */
    uint8_t habituate_onsets;       /**< habituate after this many rejected onsets (0 = off) */
    uint8_t habituate_max_score_q8; /**< rejected: every enabled class scored below this (Q0.8) */
    uint16_t
        habituate_blocks; /**< habituation lasts this long after the last rejected/suppressed onset */
    int32_t
        habituate_margin_q8; /**< suppressed: onset level <= habituation level + this (log2 Q8) */
    uint8_t
        habituate_rechecks; /**< slow re-checks after this many rejected RECHECK windows in a row (0 = off)... */
    uint8_t
        habituate_recheck_max_score_q8; /**< ...rejected: every enabled class scored below this (Q0.8)... */
    uint16_t
        habituate_recheck_blocks; /**< ...to one every this many blocks (>= gate.recheck_blocks) */
} ew_node_config_t;

typedef struct {
    uint64_t samples, blocks, frames;
    uint64_t gate_open_blocks; /**< blocks with an analysis window pending */
    uint32_t triggers_onset, triggers_recheck, windows;
    uint32_t classify_errors, events;
    uint32_t windows_dropped;   /**< main windows dropped after their early window (sound over) */
    uint32_t onsets_habituated; /**< onsets that opened no window (habituation) */
    uint32_t rechecks_slowed;   /**< RECHECK windows opened at the slowed period */
} ew_node_stats_t;

typedef struct {
    uint64_t onset, end;
    uint16_t hits;
    uint8_t score, active;
} ew_active_event_t;

typedef struct {
    int64_t start_frame; /**< may be < 0 (early window, stream start) */
    ew_window_t info;
    int32_t level_q8; /**< ONSET/EARLY: the onset's level (habituation);
                                                   RECHECK/CONTINUOUS: the gate level at the trigger */
} ew_pending_t;

/** Habituation state (see the file comment); all zero after reset. */
typedef struct {
    uint8_t count;            /**< rejected onsets in the current episode */
    int32_t level_q8;         /**< loudest of them */
    uint64_t last_block;      /**< block of the last rejected or suppressed onset */
    uint64_t last_trigger;    /**< trigger block of the last counted onset */
    uint8_t rechecks;         /**< RECHECK windows clearly rejected in a row */
    uint64_t recheck_block;   /**< block of the last of them */
    int32_t recheck_level_q8; /**< loudest gate level while they were classified */
    uint64_t last_hit_block;  /**< block of the last window with a hit */
    uint8_t has_hit;
} ew_habituation_t;

typedef struct {
    ew_node_config_t cfg;
    ew_dcblock_t dc;
    ew_gate_t gate;
    ew_frontend_t fe;
    int16_t frame[EW_FRAME_SAMPLES]; /**< previous block + block being filled */
    uint64_t sub_sq[EW_GATE_MAX_ONSET_BLOCKS][EW_SUBBLOCKS]; /**< 16-sample sums of squares of
                                                                 the last blocks (index block % 4) */
    uint16_t fill;                                           /**< samples in the current block */
    uint16_t logmel[EW_N_MELS];
    int8_t ring[EW_FRAMES_PER_WINDOW][EW_N_MELS]; /**< features of the last 64 frames (silence,
                                                        i.e. the zero point, after reset) */
    int8_t window[EW_WINDOW_FEATURES];            /**< linearised window handed to the classifier */
    uint8_t scores[EW_MAX_CLASSES];
    ew_pending_t pending[EW_MAX_PENDING];
    uint8_t n_pending;
    uint64_t last_trigger_block;
    uint8_t has_triggered;
    uint64_t last_loud_block;
    uint8_t has_loud;
    uint64_t last_on_block; /**< last block early_continue_margin over the noise floor */
    uint8_t has_on;
    int32_t recent_level_q8
        [EW_GATE_MAX_ONSET_BLOCKS]; /**< gate level of the last blocks (index block % 4) */
    ew_habituation_t hab;
    int32_t level_since_trigger_q8; /**< loudest gate level since the last trigger */
    ew_active_event_t active[EW_MAX_CLASSES];
    ew_node_stats_t stats;
    ew_classify_fn classify;
    ew_event_fn on_event;
    ew_block_fn on_block;
    void *ctx;
} ew_node_t;

/** Fill cfg with the generated defaults and n_classes classes at the default threshold. */
void ew_node_config_default(ew_node_config_t *cfg, uint8_t n_classes);
/**
 * @brief Validate cfg, install callbacks (any may be NULL) and reset the node.
 * @return EW_OK; EW_ERR_ARG for NULL node/cfg; EW_ERR_CONFIG for an invalid gate config,
 *         quantiser, n_classes > EW_MAX_CLASSES, preroll too long, early pre-roll not between
 *         preroll and EW_FRAMES_PER_WINDOW, stride 0, unknown mode, habituate_onsets > 0
 *         with habituate_blocks 0 or a negative habituate_margin, or habituate_rechecks > 0
 *         with habituate_blocks 0, a negative habituate_margin or habituate_recheck_blocks <
 *         gate.recheck_blocks.
 */
int ew_node_init(ew_node_t *node, const ew_node_config_t *cfg, ew_classify_fn classify,
                 ew_event_fn on_event, ew_block_fn on_block, void *ctx);
/** Start a new stream (sample index 0); keeps config and callbacks. */
void ew_node_reset(ew_node_t *node);
/** Process n 16 kHz samples (any chunk size; n may be 0). */
void ew_node_process(ew_node_t *node, const int16_t *pcm, size_t n);
/** End of stream: complete pending windows with silence, then close every open event. */
void ew_node_flush(ew_node_t *node);
/** Copy the node's counters (for STATUS frames and bindings). */
void ew_node_get_stats(const ew_node_t *node, ew_node_stats_t *out);
/** Size of ew_node_t (for bindings that allocate it opaquely). */
size_t ew_node_sizeof(void);

#ifdef __cplusplus
}
#endif
#endif /* EW_NODE_H */
