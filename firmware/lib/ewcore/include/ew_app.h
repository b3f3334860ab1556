/**
 * @file ew_app.h
 * @brief The node application: everything the firmware does except drivers and the TFLM call.
 *
 * ew_app turns the detector (ew_node) and the serial codec (ew_proto) into a node that speaks
 * the protocol of docs/protocol.md.  The platform is reached only through ew_port_t
 * (ew_port.h); the ESP32 firmware and the simulated node (tools/twin.py) run this same code.
 *
 * Data flow
 * ---------
 *     microphone: ew_app_feed_adc (12-bit codes, 32/48 kHz) -> ew_adc_to_pcm -> decimator
 *                 ew_app_feed_pcm16 (16 kHz)                -----------------------------+
 *                                                                                        v
 *                 digital gain (GAIN_DB_Q8; microphone only) -> [audio ring -> AUDIO frames]
 *                                                            -> ew_node (DC, gate, features,
 *                                                               classify via port, events)
 *     INJECT:     ew_app_rx -> inject ring (EW_APP_INJECT_SAMPLES) -> ew_app_poll -> same path
 *
 * Input sources (CMD START_STREAM / STOP_STREAM)
 * ----------------------------------------------
 *  - MIC (after init): feed_adc / feed_pcm16 samples are processed; INJECT is refused.
 *  - INJECT (START_STREAM 1): microphone samples are ignored; INJECT audio is queued by
 *    ew_app_rx and processed by ew_app_poll; credits per docs/protocol.md section 6.
 *  - STOPPED (STOP_STREAM): nothing is processed until the next START_STREAM.
 *  Every START_STREAM ends the current stream as STOP_STREAM does (its last EVENTs precede the
 *  ACK) and starts a new one: the detector is reset and sample indices (EVENT onsets, AUDIO
 *  first_sample, STATUS sample_index) restart at 0.  STOP_STREAM first processes
 *  every queued INJECT sample, then flushes the detector (pending windows are completed with
 *  silence, open events are closed: their EVENT END frames are sent) and only then ACKs, so
 *  the ACK tells the host that every EVENT of the stream has been sent.
 *  INJECT positions: a frame behind the expected position contributes only its new samples; a
 *  gap (frames lost on the link) is zero-filled and reported with ERROR SEQ_GAP, and lowers the
 *  outstanding credit by its size; a jump of more than 1 s is refused (ERROR BAD_VALUE).
 *
 * Audio streaming (CONFIG AUDIO_STREAM)
 * -------------------------------------
 *  0 off; 1 continuous (record mode): every processed sample is sent in AUDIO frames of
 *  EW_APP_AUDIO_FRAME_SAMPLES samples with its stream sample index; 2 around events
 *  (detect + record-on-event): samples are kept in a ring of EW_APP_AUDIO_RING_SAMPLES and an
 *  EVENT ONSET sends from EW_APP_EVENT_PREROLL_SAMPLES before the event's onset until
 *  EW_APP_EVENT_POSTROLL_SAMPLES after the detector has closed every event (its END frames
 *  come a hold-off after the last hit).  AUDIO carries the signal the
 *  detector receives (after decimation and gain, before the DC blocker).  A jump in
 *  first_sample means samples not sent: the gap between event segments (mode 2), samples lost
 *  to an overrun (ew_app_note_overrun; the detector gets silence for them, AUDIO skips them)
 *  or a link too slow for the stream (the ring was overwritten before it was sent; counted in
 *  stats.audio_skipped_samples).  At most EW_APP_AUDIO_BURST frames are sent per call.
 *
 * Threading: not reentrant.  Call every ew_app_* function of one app from one task (on the
 * ESP32: the processing task; the RX task and the capture task hand their bytes/samples over
 * through queues or ring buffers).  Memory: the caller owns ew_app_t (static or on the heap of
 * its choice; ew_app_sizeof() gives its size); the app allocates nothing.
 *
 * Persistence: after every successful CONFIG_SET (and CMD FACTORY_RESET) the settings are
 * saved with port.config_save as a blob:
 *     "EWC" | version u8 (1) | model_hash 8 | count u8 | count x (key u16 LE, value i32 LE)
 *     | crc32 u32 LE (zlib CRC-32 of everything before)
 * ew_app_init loads it with port.config_load and applies every record through the CONFIG_SET
 * path (records that fail are skipped); THRESHOLD records are applied only when the blob's
 * model_hash equals the running model's.
 */
#ifndef EW_APP_H
#define EW_APP_H

#include <stddef.h>
#include <stdint.h>

#include "ew_cond.h"
#include "ew_node.h"
#include "ew_port.h"
#include "ew_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Sizes (override with -D for a smaller / larger build; Python reads them via ew_app_limits) */

#ifndef EW_APP_INJECT_SAMPLES
#define EW_APP_INJECT_SAMPLES 4096u /**< INJECT input buffer B (samples, 8 KiB) */
#endif
#ifndef EW_APP_CREDIT_STEP
#define EW_APP_CREDIT_STEP 512u /**< grant credit in steps of at least this many */
#endif
#ifndef EW_APP_AUDIO_RING_SAMPLES
#define EW_APP_AUDIO_RING_SAMPLES 24576u /**< audio ring (1.536 s, 48 KiB): event pre-roll */
#endif
#ifndef EW_APP_EVENT_PREROLL_SAMPLES
#define EW_APP_EVENT_PREROLL_SAMPLES 8000u /**< AUDIO_STREAM 2: audio kept before an onset */
#endif
#ifndef EW_APP_EVENT_POSTROLL_SAMPLES
#define EW_APP_EVENT_POSTROLL_SAMPLES 8000u /**< AUDIO_STREAM 2: audio kept after the last hit */
#endif
#define EW_APP_AUDIO_FRAME_SAMPLES 512u /**< samples per AUDIO frame (EW_PROTO_MAX_PCM) */
#define EW_APP_AUDIO_BURST 4u           /**< most AUDIO frames sent per ew_app_* call */
#define EW_APP_DEFAULT_BAUD 921600u
#define EW_APP_DEFAULT_STATUS_MS 1000u
#define EW_APP_DEFAULT_ALARM_MS 250u

#if EW_APP_AUDIO_RING_SAMPLES < EW_APP_AUDIO_FRAME_SAMPLES * (EW_APP_AUDIO_BURST + 1)
#error "EW_APP_AUDIO_RING_SAMPLES too small"
#endif

/** Return codes of ew_app_* besides EW_OK / EW_ERR_ARG / EW_ERR_CONFIG / EW_ERR_FACTOR. */
enum {
    EW_APP_ERR_KEY = -10,   /**< unknown CONFIG key (ERROR BAD_CONFIG_KEY) */
    EW_APP_ERR_VALUE = -11, /**< value out of range (ERROR BAD_VALUE) */
    EW_APP_ERR_STATE = -12, /**< not possible in the current input state / after reboot */
};

/** Input source (STATUS does not carry it; ew_app_stats_t.input does). */
enum { EW_APP_INPUT_MIC = 0, EW_APP_INPUT_INJECT = 1, EW_APP_INPUT_STOPPED = 2 };

/** CONFIG AUDIO_STREAM values. */
enum { EW_AUDIO_STREAM_OFF = 0, EW_AUDIO_STREAM_CONTINUOUS = 1, EW_AUDIO_STREAM_EVENTS = 2 };

/** What the node is: HELLO contents and factory defaults.  Strings / arrays are referenced,
 *  not copied: they must outlive the app (string literals, generated tables). */
typedef struct {
    const char *board; /**< e.g. "esp32dev", <= 32 chars */
    uint8_t fw_major, fw_minor, fw_patch;
    uint8_t reset_reason;                     /**< EW_RESET_* (esp_reset_reason()) */
    uint8_t model_hash[EW_PROTO_HASH_BYTES];  /**< EW_MODEL_HASH8 */
    uint8_t config_hash[EW_PROTO_HASH_BYTES]; /**< EW_CONFIG_HASH8 */
    uint8_t node_id[EW_PROTO_NODE_ID_BYTES];  /**< MAC address */
    uint8_t n_classes;                        /**< 1..EW_MAX_CLASSES */
    const char *const *labels;                /**< n_classes names (<= 32 chars), model order */
    const uint16_t *thresholds_q8;            /**< n_classes factory thresholds (0..255, 256 =
                                                    off); NULL: EW_DET_DEFAULT_THRESHOLD_Q8 */
    ew_quant_t quant;                         /**< model input quantisation */
    uint32_t adc_rate_hz;                     /**< 32000 / 48000; 0: no ADC (feed_pcm16 only) */
    uint32_t default_baud;                    /**< 0: EW_APP_DEFAULT_BAUD */
} ew_app_info_t;

/** Settings that are not detector configuration (all CONFIG-settable, all persisted). */
typedef struct {
    int32_t gain_db_q8;        /**< GAIN_DB_Q8 */
    int32_t gain_q16;          /**< derived linear gain, Q16 (65536 = 0 dB) */
    uint32_t status_period_ms; /**< STATUS_PERIOD_MS, 0 = off */
    uint32_t baud;             /**< BAUD */
    uint8_t audio_stream;      /**< EW_AUDIO_STREAM_* */
    uint32_t alarm_ms;         /**< ALARM_MS, 0 = off */
    uint32_t alarm_classes;    /**< ALARM_CLASSES bit mask */
} ew_app_settings_t;

/** Counters (for STATUS, tests and the twin).  32-bit counters wrap. */
typedef struct {
    uint64_t samples;        /**< stream sample index: samples given to the detector */
    uint8_t input;           /**< EW_APP_INPUT_* */
    uint32_t credits;        /**< G: INJECT credit granted and not yet used */
    uint32_t inject_queued;  /**< samples in the inject ring */
    uint32_t rx_frames;      /**< valid frames received */
    uint32_t rx_bad_frames;  /**< decoder errors (cobs/short/oversize/magic/crc) */
    uint32_t rx_unknown;     /**< frames answered with UNKNOWN_TYPE */
    uint32_t rx_bad_payload; /**< frames answered with BAD_PAYLOAD */
    uint32_t rx_seq_gaps;    /**< host frames missing (decoder SEQ_GAP items) */
    uint32_t tx_frames, tx_bytes, tx_errors;
    uint32_t inject_samples;         /**< INJECT samples accepted */
    uint32_t inject_no_credit;       /**< INJECT frames dropped for lack of credit */
    uint32_t inject_gap_samples;     /**< samples zero-filled for position gaps */
    uint32_t inject_overlap_samples; /**< samples skipped: INJECT behind the position */
    uint32_t dropped_samples;        /**< samples lost to overruns (ew_app_note_overrun) */
    uint32_t audio_frames;           /**< AUDIO frames sent */
    uint32_t audio_skipped_samples;  /**< AUDIO samples overwritten before they were sent */
    uint32_t status_frames;
    uint32_t events;          /**< EVENT frames sent (ONSET and END) */
    uint32_t inference_count; /**< classify calls since boot */
    uint32_t inference_us_last;
    uint32_t inference_us_max; /**< since boot */
    uint32_t persist_errors;   /**< config_save / set_baud failures */
} ew_app_stats_t;

/** The application state.  Treat as opaque; the caller provides the memory. */
typedef struct {
    ew_app_info_t info;
    ew_port_t port;
    ew_app_settings_t set;
    ew_app_stats_t st;
    ew_node_t node;
    ew_node_config_t ncfg; /**< configuration in effect (persisted part) */
    ew_proto_decoder_t dec;
    ew_decim_t decim;
    uint8_t has_adc;
    uint8_t input;
    uint8_t rebooting; /**< port.reboot() returned: ignore everything */
    uint16_t tx_seq;
    uint64_t node_base; /**< stream index of the node's sample 0 */
    /* INJECT */
    int16_t inj[EW_APP_INJECT_SAMPLES];
    uint32_t inj_head, inj_count; /**< ring read position, samples queued */
    uint64_t inj_pos;             /**< next expected host stream position */
    uint32_t pending_seq_gap;     /**< host frames missing before the next frame */
    /* audio ring (AUDIO frames) */
    int16_t aring[EW_APP_AUDIO_RING_SAMPLES];
    uint64_t a_written;                /**< stream index after the last ring sample */
    uint64_t a_next;                   /**< next stream index to send */
    uint64_t a_stop;                   /**< AUDIO_STREAM 2: send up to here */
    uint64_t a_hole_start, a_hole_end; /**< zero fill of the last overrun: not sent */
    /* STATUS */
    uint64_t status_t0_us;
    uint64_t status_blocks0, status_open0;
    uint32_t inf_us_max_period;
    uint32_t overrun_rem; /**< input samples of overruns not yet converted */
    uint8_t feed_factor;  /**< input samples per 16 kHz sample last fed */
    uint8_t loading;      /**< applying the persisted blob: do not save */
    /* buffers */
    uint8_t payload[EW_PROTO_MAX_PAYLOAD];
    uint8_t wire[EW_PROTO_MAX_WIRE];
    int16_t work[EW_APP_AUDIO_FRAME_SAMPLES]; /**< gain output / ADC conversion */
    int16_t dec_out[EW_APP_AUDIO_FRAME_SAMPLES / 2 + 1];
} ew_app_t;

/* ------------------------------------------------------------------------------------------ */
/* Lifecycle                                                                                    */

/**
 * @brief Initialise the app: factory defaults from info, then the persisted configuration
 *        (port.config_load), input MIC, new stream; sends HELLO (and applies a persisted baud
 *        through port.set_baud before that).
 * @param app   caller-owned state (contents ignored, fully overwritten)
 * @param info  identity and factory defaults (copied; its strings / arrays are referenced)
 * @param port  platform functions (copied)
 * @return EW_OK;
 *         EW_ERR_ARG for a NULL app / info / port, a NULL port.write / time_us / classify,
 *                    NULL labels or a NULL label, NULL board;
 *         EW_ERR_CONFIG for n_classes 0 or > EW_MAX_CLASSES, a board or label name longer
 *                    than EW_PROTO_MAX_NAME, a factory threshold > EW_THRESHOLD_OFF or an
 *                    invalid quant (ew_quant_check);
 *         EW_ERR_FACTOR for an adc_rate_hz that is not 0 and not a supported multiple of
 *                    16 kHz (32000, 48000).
 *         On error nothing is sent and the app must not be used.
 */
int ew_app_init(ew_app_t *app, const ew_app_info_t *info, const ew_port_t *port);

/** @brief sizeof(ew_app_t), for bindings that allocate it opaquely. */
size_t ew_app_sizeof(void);

/* ------------------------------------------------------------------------------------------ */
/* Inputs                                                                                       */

/**
 * @brief Bytes received from the host (any chunking).  Complete frames are handled at once:
 *        HELLO request / CMD / CONFIG_GET / CONFIG_SET / INJECT (queued); answers are written
 *        through port.write before this returns.  Log text from the host is ignored; decoder
 *        errors are counted and answered with ERROR BAD_FRAME; unknown types with ERROR
 *        UNKNOWN_TYPE; payloads that do not parse with ERROR BAD_PAYLOAD.
 *        After port.reboot() returned, input is ignored.
 * @param data  bytes; may be NULL when n is 0
 */
void ew_app_rx(ew_app_t *app, const uint8_t *data, size_t n);

/**
 * @brief Microphone input: n unsigned ADC codes (EW_ADC_BITS wide, at info.adc_rate_hz),
 *        converted, decimated to 16 kHz and processed.  Ignored (EW_APP_ERR_STATE) unless the
 *        input is MIC.  Any chunk size.
 * @return EW_OK; EW_ERR_ARG (codes NULL with n > 0); EW_ERR_FACTOR (info.adc_rate_hz was 0);
 *         EW_APP_ERR_STATE (input is not MIC, or the app is rebooting: samples discarded).
 */
int ew_app_feed_adc(ew_app_t *app, const uint16_t *codes, size_t n);

/**
 * @brief Microphone input already at 16 kHz (I2S / PDM microphones, tests): processed as the
 *        decimator's output.  Ignored unless the input is MIC.
 * @return EW_OK; EW_ERR_ARG (pcm NULL with n > 0); EW_APP_ERR_STATE (input is not MIC, or the
 *         app is rebooting: samples discarded).
 */
int ew_app_feed_pcm16(ew_app_t *app, const int16_t *pcm, size_t n);

/**
 * @brief Report n input samples lost before they reached the app (ADC DMA overrun), counted
 *        in samples at the rate of the input being fed (ADC codes with feed_adc, 16 kHz with
 *        feed_pcm16).  The detector gets silence for the lost time, so sample indices keep
 *        following real time; AUDIO skips them; STATUS dropped_samples counts them (16 kHz);
 *        one ERROR OVERRUN is sent.  Ignored unless the input is MIC.
 */
void ew_app_note_overrun(ew_app_t *app, uint32_t n);

/**
 * @brief Housekeeping; call often (every few ms, and after each ew_app_rx): processes queued
 *        INJECT audio (up to EW_APP_INJECT_SAMPLES per call) and grants credit, sends pending
 *        AUDIO frames, ERROR OVERRUN and the periodic STATUS.
 */
void ew_app_poll(ew_app_t *app);

/* ------------------------------------------------------------------------------------------ */
/* Local control (the same operations as the frames, for buttons, tests and bindings)         */

/**
 * @brief Current value of a CONFIG key (the CONFIG_GET answer).
 * @return EW_OK; EW_ERR_ARG (value NULL); EW_APP_ERR_KEY (unknown key, or a THRESHOLD key
 *         for a class index >= n_classes).
 */
int ew_app_config_get(const ew_app_t *app, uint16_t key, int32_t *value);

/**
 * @brief Apply a CONFIG value (the CONFIG_SET path, without the answer frame): takes effect
 *        at once (MODE and EARLY_PREROLL_FRAMES restart the detector, keeping sample indices;
 *        BAUD is only stored; ew_app_rx calls port.set_baud after the answer) and is persisted.
 * @param applied  out (may be NULL): the value now in effect, after rounding
 * @return EW_OK; EW_APP_ERR_KEY (unknown key, THRESHOLD of a class >= n_classes);
 *         EW_APP_ERR_VALUE (outside the key's range in ew_settings, generated from
 *         ewcore.toml [[setting]] and listed in docs/protocol.md; EARLY_PREROLL_FRAMES not 0
 *         and not above the pre-roll; HABITUATE_RECHECK_MS shorter than the gate's re-check
 *         period; threshold not 0..EW_THRESHOLD_MAX_Q8).
 */
int ew_app_config_set(ew_app_t *app, uint16_t key, int32_t value, int32_t *applied);

/**
 * @brief Back to the factory settings of info (thresholds, gate, gain, ...), persisted.
 *        Restarts the detector (keeping sample indices).
 */
void ew_app_factory_reset(ew_app_t *app);

/**
 * @brief Switch the input source (CMD START_STREAM / STOP_STREAM without the ACK).
 * @param input  EW_APP_INPUT_MIC / _INJECT end the current stream (as STOPPED) and start a
 *               new one (INJECT also sends the initial CREDIT); EW_APP_INPUT_STOPPED drains the
 *               inject ring, flushes the detector (END events are sent) and stops.
 * @return EW_OK; EW_ERR_ARG (unknown input); EW_APP_ERR_STATE (rebooting).
 */
int ew_app_set_input(ew_app_t *app, uint8_t input);

/** @brief Send HELLO now (as on a HELLO request). */
void ew_app_send_hello(ew_app_t *app);
/** @brief Send STATUS now (as on CMD STATUS); starts a new STATUS period. */
void ew_app_send_status(ew_app_t *app);

/**
 * @brief Send an ERROR frame in the app's sequence (e.g. MODEL_MISMATCH / INTERNAL from the
 *        firmware's boot checks).  The message is truncated to EW_PROTO_MAX_ERROR_TEXT bytes;
 *        NULL sends an empty message.  Nothing is sent after port.reboot() returned.
 */
void ew_app_send_error(ew_app_t *app, uint16_t code, uint16_t ref_seq, const char *message);

/** @brief Copy the counters. */
void ew_app_get_stats(const ew_app_t *app, ew_app_stats_t *out);

/**
 * @brief The persisted configuration blob of the current settings (what config_save gets).
 * @return its length; EW_ERR_ARG (out NULL); EW_APP_ERR_VALUE (cap too small: needs at most
 *         EW_PORT_CONFIG_MAX bytes).
 */
int ew_app_config_blob(const ew_app_t *app, uint8_t *out, size_t cap);

/** @brief Build-time sizes: [0] EW_APP_INJECT_SAMPLES, [1] EW_APP_CREDIT_STEP,
 *  [2] EW_APP_AUDIO_RING_SAMPLES, [3] EW_APP_EVENT_PREROLL_SAMPLES,
 *  [4] EW_APP_EVENT_POSTROLL_SAMPLES, [5] EW_APP_AUDIO_FRAME_SAMPLES.  Returns the count (6). */
int ew_app_limits(uint32_t *out, int cap);

#ifdef __cplusplus
}
#endif
#endif /* EW_APP_H */
