/* Detector hot path: per-sample buffering, per-block gate/front end/decisions (see ew_node.h). */
#include <string.h>

#include "ew_node.h"

#define H EW_HOP_SAMPLES
#define FPW EW_FRAMES_PER_WINDOW

static void emit(ew_node_t *n, const ew_active_event_t *a, uint8_t cls, uint8_t kind) {
    if (kind == EW_EVENT_ONSET) n->stats.events++;
    if (n->on_event == NULL) return;
    ew_event_t ev;
    const uint64_t dur = a->end - a->onset;
    ev.onset_sample = a->onset;
    ev.duration_samples = dur > UINT32_MAX ? UINT32_MAX : (uint32_t)dur;
    ev.class_index = cls;
    ev.score = a->score;
    ev.kind = kind;
    ev.hits = a->hits;
    n->on_event(n->ctx, &ev);
}

/* Scores -> hit of the best class over its threshold -> merge into / open an event.
 * Returns 1 on a hit, 0 otherwise. */
static int decide(ew_node_t *n, const ew_pending_t *p) {
    int best = -1;
    for (int c = 0; c < n->cfg.n_classes; c++) {
        const uint16_t thr = n->cfg.thresholds_q8[c];
        if (thr < EW_THRESHOLD_OFF && n->scores[c] >= thr &&
            (best < 0 || n->scores[c] > n->scores[best]))
            best = c;
    }
    if (best < 0) return 0;
    const uint64_t onset = p->info.trigger_sample;
    const uint64_t window_end =
        (uint64_t)(p->start_frame + FPW - 1) * H + EW_FRAME_SAMPLES; /* > 0 */
    uint64_t end = onset + H;
    if (n->has_loud && n->last_loud_block >= p->info.trigger_block) {
        const uint64_t loud_end = (n->last_loud_block + 1) * H;
        if (loud_end > end) end = loud_end;
    }
    if (end > window_end) end = window_end;
    ew_active_event_t *a = &n->active[best];
    const uint8_t score = n->scores[best];
    if (a->active && onset <= a->end + n->cfg.holdoff_samples) {
        if (end > a->end) a->end = end;
        if (score > a->score) a->score = score;
        if (a->hits < UINT16_MAX) a->hits++;
        return 1;
    }
    if (a->active) emit(n, a, (uint8_t)best, EW_EVENT_END);
    a->active = 1;
    a->onset = onset;
    a->end = end;
    a->hits = 1;
    a->score = score;
    emit(n, a, (uint8_t)best, EW_EVENT_ONSET);
    return 1;
}

/* Habituation (see ew_node.h): is block k inside an episode of N rejected onsets? */
static int habituated(const ew_node_t *n, uint64_t k) {
    return n->cfg.habituate_onsets != 0 && n->hab.count >= n->cfg.habituate_onsets &&
           k - n->hab.last_block <= n->cfg.habituate_blocks;
}

/* Habituation feedback from a classified window, at block k. */
static void habituate(ew_node_t *n, const ew_pending_t *p, int hit, uint64_t k) {
    if (hit) { /* a target: be alert again */
        n->hab.count = 0;
        n->hab.rechecks = 0;
        n->hab.last_hit_block = k;
        n->hab.has_hit = 1;
        return;
    }
    int enabled = 0, confident = 1, clear = 1;
    for (int c = 0; c < n->cfg.n_classes; c++) {
        if (n->cfg.thresholds_q8[c] >= EW_THRESHOLD_OFF) continue;
        enabled = 1;
        if (n->scores[c] >= n->cfg.habituate_max_score_q8) confident = 0;
        if (n->scores[c] >= n->cfg.habituate_recheck_max_score_q8) clear = 0;
    }
    if (!enabled) return;
    if (p->info.kind == EW_TRIGGER_RECHECK) { /* the sustained sound is not a target */
        if (n->cfg.habituate_rechecks == 0 || !clear) return; /* a near miss: keep looking */
        if (n->hab.has_hit && k - n->hab.last_hit_block <= n->cfg.habituate_blocks)
            return; /* targets about */
        if (n->hab.rechecks == 0 ||
            k - n->hab.recheck_block > n->cfg.habituate_blocks) { /* new episode */
            n->hab.rechecks = 0;
            n->hab.recheck_level_q8 = n->level_since_trigger_q8;
        }
        if (n->hab.rechecks < UINT8_MAX) n->hab.rechecks++;
        if (n->level_since_trigger_q8 > n->hab.recheck_level_q8)
            n->hab.recheck_level_q8 = n->level_since_trigger_q8;
        n->hab.recheck_block = k;
        return;
    }
    if (n->cfg.habituate_onsets == 0 || !confident ||
        (p->info.kind != EW_TRIGGER_ONSET && p->info.kind != EW_TRIGGER_EARLY))
        return;
    if (n->hab.count == 0 || k - n->hab.last_block > n->cfg.habituate_blocks) { /* new episode */
        n->hab.count = 0;
        n->hab.level_q8 = p->level_q8;
    } else if (p->info.trigger_block == n->hab.last_trigger) {
        n->hab.last_block = k; /* second window of a counted onset */
        return;
    }
    if (n->hab.count < UINT8_MAX) n->hab.count++;
    if (p->level_q8 > n->hab.level_q8) n->hab.level_q8 = p->level_q8;
    n->hab.last_block = k;
    n->hab.last_trigger = p->info.trigger_block;
}

/* Blocks between RECHECK triggers at block k: recheck_blocks, or habituate_recheck_blocks
 * after habituate_rechecks rejected re-checks in a row, the last within habituate_blocks,
 * while block k is no louder than the loudest of them + habituate_margin. */
static uint32_t recheck_period(const ew_node_t *n, uint64_t k) {
    if (n->cfg.habituate_rechecks != 0 && n->hab.rechecks >= n->cfg.habituate_rechecks &&
        k - n->hab.recheck_block <= n->cfg.habituate_blocks &&
        n->gate.level_q8 <= n->hab.recheck_level_q8 + n->cfg.habituate_margin_q8)
        return n->cfg.habituate_recheck_blocks;
    return n->cfg.gate.recheck_blocks;
}

static void run_window(ew_node_t *n, const ew_pending_t *p, uint64_t k) {
    for (int64_t i = 0; i < FPW; i++) {
        const int64_t f = p->start_frame + i; /* ring slot of frame f (f may be < 0) */
        memcpy(&n->window[i * EW_N_MELS], n->ring[((f % FPW) + FPW) % FPW], EW_N_MELS);
    }
    n->stats.windows++;
    if (n->classify == NULL) return;
    memset(n->scores, 0, sizeof(n->scores));
    if (n->classify(n->ctx, &p->info, n->window, n->scores) != 0) {
        n->stats.classify_errors++;
        return;
    }
    habituate(n, p, decide(n, p), k);
}

/* Onset refinement: first 16-sample sub-block above background + onset margin. */
static uint64_t refine_onset(const ew_node_t *n, uint64_t block) {
    const int32_t thr = n->gate.cand_bg_q8 + n->cfg.gate.onset_margin_q8;
    const uint64_t *sub = n->sub_sq[block % EW_GATE_MAX_ONSET_BLOCKS];
    for (uint32_t j = 0; j < EW_SUBBLOCKS; j++) {
        const uint64_t ms = sub[j] / EW_SUBBLOCK_SAMPLES; /* mean square */
        if ((int32_t)ew_log2_q8_u64(ms + 1u) >= thr) return block * H + j * EW_SUBBLOCK_SAMPLES;
    }
    return block * H;
}

/* Queue a window of frames [k - preroll, ...) (k - preroll < 0 only for an early window near
 * the stream start: those frames are the ring's initial silence), kept sorted by start frame
 * (= by completion: every window is FPW frames long). */
static void queue_window(ew_node_t *n, uint64_t k, uint8_t preroll, uint64_t trigger_sample,
                         uint8_t kind, int32_t level_q8) {
    const int64_t start = (int64_t)k - preroll;
    uint8_t i = n->n_pending;
    while (i > 0 && n->pending[i - 1].start_frame > start) {
        n->pending[i] = n->pending[i - 1];
        i--;
    }
    ew_pending_t *p = &n->pending[i];
    p->start_frame = start;
    p->info.start_sample = start * H;
    p->info.trigger_block = k;
    p->info.trigger_sample = trigger_sample;
    p->info.kind = kind;
    p->level_q8 = level_q8;
    n->n_pending++;
}

static void open_window(ew_node_t *n, uint64_t k, uint8_t kind, int32_t level_q8) {
    const uint64_t trigger_sample = kind == EW_TRIGGER_ONSET ? refine_onset(n, k) : k * H;
    queue_window(n, k, n->cfg.preroll_frames, trigger_sample, kind, level_q8);
    if (kind == EW_TRIGGER_ONSET && n->cfg.early_preroll_frames != 0)
        queue_window(n, k, n->cfg.early_preroll_frames, trigger_sample, EW_TRIGGER_EARLY, level_q8);
    n->last_trigger_block = k;
    n->has_triggered = 1;
    n->level_since_trigger_q8 = n->gate.level_q8;
    if (kind == EW_TRIGGER_ONSET) n->stats.triggers_onset++;
    else n->stats.triggers_recheck++;
}

/* The sound of an onset is over when its early window completes: forget its main window. */
static void drop_main_window(ew_node_t *n, uint64_t trigger_block) {
    for (uint8_t i = 0; i < n->n_pending; i++) {
        if (n->pending[i].info.kind != EW_TRIGGER_ONSET ||
            n->pending[i].info.trigger_block != trigger_block)
            continue;
        n->n_pending--;
        memmove(&n->pending[i], &n->pending[i + 1],
                (size_t)(n->n_pending - i) * sizeof(ew_pending_t));
        n->stats.windows_dropped++;
        return;
    }
}

static void end_block(ew_node_t *n) {
    const uint64_t k = n->stats.blocks; /* index of the block just completed */
    uint64_t *sub = n->sub_sq[k % EW_GATE_MAX_ONSET_BLOCKS];
    uint64_t sum = 0;
    for (uint32_t j = 0; j < EW_SUBBLOCKS; j++) sum += sub[j]; /* 38 bits */
    if (k >= 1) {                                              /* frame k-1 = blocks k-1 and k */
        ew_frontend_logmel(&n->fe, n->frame, n->logmel);
        ew_frontend_quantize(n->logmel, n->ring[(k - 1) % FPW], EW_N_MELS, &n->cfg.quant);
        ew_gate_spectrum(&n->gate, n->logmel); /* tonality for block k's decision */
        n->stats.frames++;
    }
    const uint8_t flags = ew_gate_process_block(&n->gate, (uint32_t)(sum >> EW_HOP_LOG2));
    n->recent_level_q8[k % EW_GATE_MAX_ONSET_BLOCKS] = n->gate.level_q8;
    if (n->gate.level_q8 > n->level_since_trigger_q8) n->level_since_trigger_q8 = n->gate.level_q8;
    if (flags & EW_GATE_ABOVE) {
        n->last_loud_block = k;
        n->has_loud = 1;
    }
    if ((flags & EW_GATE_WARM) &&
        n->gate.level_q8 - n->gate.nf_used_q8 >= n->cfg.early_continue_margin_q8) {
        n->last_on_block = k;
        n->has_on = 1;
    }
    memcpy(n->frame, &n->frame[H], H * sizeof(int16_t));
    memset(n->sub_sq[(k + 1) % EW_GATE_MAX_ONSET_BLOCKS], 0, sizeof(n->sub_sq[0]));
    n->stats.blocks++;

    uint8_t trigger = 0;
    const uint64_t frames = n->stats.frames;
    if (n->cfg.mode == EW_MODE_GATED) {
        if (flags & EW_GATE_ONSET) {
            const uint64_t ko = k - n->gate.onset_delay; /* the onset block */
            const uint8_t need = n->cfg.early_preroll_frames != 0 ? 2 : 1;
            /* the last pending window is the main window of the latest trigger */
            const int late = n->n_pending > 0 && n->n_pending + need <= EW_MAX_PENDING &&
                             (int64_t)(ko - n->cfg.preroll_frames) >=
                                 n->pending[n->n_pending - 1].start_frame + FPW / 2;
            if (n->n_pending == 0 || late) {
                int32_t level =
                    n->recent_level_q8[k % EW_GATE_MAX_ONSET_BLOCKS]; /* loudest block */
                for (uint64_t j = 1; j <= n->gate.onset_delay && j < EW_GATE_MAX_ONSET_BLOCKS;
                     j++) {
                    const int32_t l = n->recent_level_q8[(k - j) % EW_GATE_MAX_ONSET_BLOCKS];
                    if (l > level) level = l;
                }
                if (habituated(n, k) && level <= n->hab.level_q8 + n->cfg.habituate_margin_q8) {
                    n->hab.last_block = k; /* the same kind of sound goes on */
                    n->stats.onsets_habituated++;
                } else {
                    open_window(n, ko, EW_TRIGGER_ONSET, level);
                    trigger = 1 + EW_TRIGGER_ONSET;
                }
            }
        } else if ((flags & EW_GATE_LOUD) && n->n_pending == 0) {
            const uint32_t period = recheck_period(n, k); /* >= recheck_blocks (init checks) */
            if (!n->has_triggered || k - n->last_trigger_block >= period) {
                if (period != n->cfg.gate.recheck_blocks) n->stats.rechecks_slowed++;
                open_window(n, k, EW_TRIGGER_RECHECK, n->gate.level_q8);
                trigger = 1 + EW_TRIGGER_RECHECK;
            }
        }
    } else if (frames >= FPW && (frames - FPW) % n->cfg.continuous_stride == 0) {
        ew_pending_t *p = &n->pending[n->n_pending++];
        p->start_frame = (int64_t)(frames - FPW);
        p->info.start_sample = p->start_frame * H;
        p->info.trigger_block = (uint64_t)p->start_frame + n->cfg.preroll_frames;
        p->info.trigger_sample = p->info.trigger_block * H;
        p->info.kind = EW_TRIGGER_CONTINUOUS;
        p->level_q8 = n->gate.level_q8;
        trigger = 1 + EW_TRIGGER_CONTINUOUS;
    }
    const uint8_t gate_open = n->n_pending > 0;
    n->stats.gate_open_blocks += gate_open;

    while (n->n_pending > 0 && (int64_t)frames >= n->pending[0].start_frame + FPW) {
        const ew_pending_t p = n->pending[0];
        n->n_pending--;
        memmove(&n->pending[0], &n->pending[1], n->n_pending * sizeof(ew_pending_t));
        run_window(n, &p, k);
        if (p.info.kind == EW_TRIGGER_EARLY &&
            !(n->has_on && n->last_on_block + n->cfg.early_continue_blocks > k))
            drop_main_window(n, p.info.trigger_block);
    }

    /* close events that can no longer be extended */
    const uint64_t now = n->stats.samples;
    for (int c = 0; c < n->cfg.n_classes; c++) {
        ew_active_event_t *a = &n->active[c];
        if (!a->active) continue;
        const uint64_t limit = a->end + n->cfg.holdoff_samples;
        if (now > limit && (n->n_pending == 0 || n->pending[0].info.trigger_sample > limit)) {
            emit(n, a, (uint8_t)c, EW_EVENT_END);
            a->active = 0;
        }
    }

    if (n->on_block != NULL) {
        ew_block_info_t b;
        b.block = k;
        b.level_q8 = n->gate.level_q8;
        b.bg_q8 = n->gate.bg_used_q8;
        b.excess_q8 = n->gate.excess_q8;
        b.nf_q8 = n->gate.nf_used_q8;
        b.spread_q16 = n->gate.spread_q16;
        b.flags = flags;
        b.trigger = trigger;
        b.gate_open = gate_open;
        n->on_block(n->ctx, &b);
    }
}

void ew_node_process(ew_node_t *n, const int16_t *pcm, size_t len) {
    while (len > 0) {
        size_t take = (size_t)(H - n->fill);
        if (take > len) take = len;
        int16_t *dst = &n->frame[H + n->fill];
        uint64_t *sub = n->sub_sq[n->stats.blocks % EW_GATE_MAX_ONSET_BLOCKS];
        ew_dcblock_process(&n->dc, pcm, dst, take);
        for (size_t i = 0; i < take; i++) {
            const int32_t x = dst[i];
            sub[(n->fill + i) / EW_SUBBLOCK_SAMPLES] += (uint64_t)(x * x); /* 31 bits */
        }
        n->fill = (uint16_t)(n->fill + take);
        n->stats.samples += take;
        pcm += take;
        len -= take;
        if (n->fill == H) {
            n->fill = 0;
            end_block(n);
        }
    }
}

void ew_node_flush(ew_node_t *n) {
    static const int16_t zeros[H];
    if (n->n_pending > 0 && n->fill > 0) ew_node_process(n, zeros, (size_t)(H - n->fill));
    while (n->n_pending > 0) ew_node_process(n, zeros, H);
    for (int c = 0; c < n->cfg.n_classes; c++) {
        if (!n->active[c].active) continue;
        emit(n, &n->active[c], (uint8_t)c, EW_EVENT_END);
        n->active[c].active = 0;
    }
}
