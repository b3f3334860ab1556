/**
 * @file ew_proto.h
 * @brief The node's serial protocol: frame encoder, streaming decoder and typed payloads.
 *
 * Wire format (docs/protocol.md is the full specification):
 *
 *     body  = magic 0xE7 | type u8 | seq u16 LE | payload (0..EW_PROTO_MAX_PAYLOAD) | crc32 u32 LE
 *     wire  = 0x00 | COBS(body) | 0x00
 *
 * The CRC is IEEE 802.3 CRC-32 (zlib.crc32) over magic..payload.  Plain-text log lines
 * (boot messages, printf) share the wire; the decoder separates them from frames.
 *
 * Portable C99, no allocation, no floating point: the caller provides every buffer.  The
 * decoder keeps its chunk buffer inside ew_proto_decoder_t (1376 bytes on 32-bit targets).
 *
 * Decoder invariants (the decoder reads untrusted bytes):
 *  - It never reads or writes outside its own struct and the caller's input; any byte sequence
 *    of any length, fed in any chunking, is accepted without undefined behaviour.
 *  - The sequence of items delivered does not depend on how the input is split across
 *    ew_proto_decoder_feed() calls.
 *  - A FRAME item is delivered only for a chunk that COBS-decodes to 8..EW_PROTO_MAX_BODY
 *    bytes, starts with EW_PROTO_MAGIC and carries a matching CRC-32; its payload length is
 *    at most EW_PROTO_MAX_PAYLOAD.
 *  - A LOG item contains only "text" bytes: printable ASCII (0x20..0x7E), TAB, CR and ESC
 *    (ESC for the ANSI colour codes of ESP-IDF logs); LF only ends a line.
 *  - Every input byte is accounted for exactly once:
 *    bytes_in == delim_bytes + frame_bytes + text_bytes + garbage_bytes + pending (mod 2^32).
 *  - Memory use is constant: a chunk longer than EW_PROTO_MAX_ENCODED bytes is discarded
 *    (text is split into log lines instead) and the decoder resynchronises at the next 0x00.
 */
#ifndef EW_PROTO_H
#define EW_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ew_cobs.h"
#include "ew_crc32.h"
#include "ew_settings.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Sizes                                                                                        */

#define EW_PROTO_VERSION 1u        /**< HELLO.proto_version sent by this implementation */
#define EW_PROTO_MAGIC 0xE7u       /**< first body byte */
#define EW_PROTO_MAX_PAYLOAD 1280u /**< largest payload */
#define EW_PROTO_HEADER 4u         /**< magic, type, seq */
#define EW_PROTO_OVERHEAD 8u       /**< header + CRC: the smallest body */
#define EW_PROTO_MAX_BODY (EW_PROTO_MAX_PAYLOAD + EW_PROTO_OVERHEAD) /**< 1288 */
#define EW_PROTO_MAX_ENCODED EW_COBS_MAX_ENCODED(EW_PROTO_MAX_BODY)  /**< 1294 */
/** Wire bytes of a frame with an n-byte payload, worst case (both delimiters included). */
#define EW_PROTO_WIRE_SIZE(n) (EW_COBS_MAX_ENCODED((n) + EW_PROTO_OVERHEAD) + 2u)
/** Buffer size that holds any encoded frame: 1296. */
#define EW_PROTO_MAX_WIRE EW_PROTO_WIRE_SIZE(EW_PROTO_MAX_PAYLOAD)

#define EW_PROTO_MAX_NAME 32u       /**< longest board name / label (bytes) */
#define EW_PROTO_MAX_LABELS 32u     /**< most labels in a HELLO */
#define EW_PROTO_MAX_ERROR_TEXT 96u /**< longest ERROR message (bytes) */
#define EW_PROTO_MAX_PCM 512u       /**< most samples in an AUDIO / INJECT frame */
#define EW_PROTO_HASH_BYTES 8u      /**< model / config hash prefix length */
#define EW_PROTO_NODE_ID_BYTES 6u   /**< MAC address */

/** Return codes of the encoder and the typed pack / unpack functions. */
enum {
    EW_PROTO_OK = 0,
    EW_PROTO_ERR_ARG = -1,    /**< NULL pointer where data is required */
    EW_PROTO_ERR_SPACE = -20, /**< output buffer too small */
    EW_PROTO_ERR_SHORT = -21, /**< payload shorter than the message (truncated) */
    EW_PROTO_ERR_RANGE = -22, /**< a length / count exceeds its limit, or odd PCM byte count */
};

/** Message types. */
enum {
    EW_MSG_HELLO = 0x01,      /**< node->host identity; host->node with empty payload: request */
    EW_MSG_EVENT = 0x02,      /**< node->host detection */
    EW_MSG_STATUS = 0x03,     /**< node->host periodic status */
    EW_MSG_AUDIO = 0x04,      /**< node->host PCM (field recording) */
    EW_MSG_INJECT = 0x05,     /**< host->node PCM (hardware in the loop) */
    EW_MSG_CREDIT = 0x06,     /**< node->host flow-control grant */
    EW_MSG_CONFIG_GET = 0x07, /**< host->node */
    EW_MSG_CONFIG_SET = 0x08, /**< host->node */
    EW_MSG_CONFIG = 0x09,     /**< node->host answer to GET / SET */
    EW_MSG_ACK = 0x0A,
    EW_MSG_ERROR = 0x0B,
    EW_MSG_CMD = 0x0C, /**< host->node command */
};
#define EW_MSG_MAX_KNOWN 0x0Cu /**< types 1..EW_MSG_MAX_KNOWN are known to this version */

/** HELLO.reset_reason: same numbering as ESP-IDF's esp_reset_reason_t. */
enum {
    EW_RESET_UNKNOWN = 0,
    EW_RESET_POWERON = 1,
    EW_RESET_EXT = 2,
    EW_RESET_SW = 3,
    EW_RESET_PANIC = 4,
    EW_RESET_INT_WDT = 5,
    EW_RESET_TASK_WDT = 6,
    EW_RESET_WDT = 7,
    EW_RESET_DEEPSLEEP = 8,
    EW_RESET_BROWNOUT = 9,
    EW_RESET_SDIO = 10,
};

/** EVENT.kind */
enum { EW_PROTO_EVENT_ONSET = 0, EW_PROTO_EVENT_END = 1 };

/* CONFIG keys (EW_CFG_*): generated from ewcore.toml [[setting]] */

/** ERROR.code */
enum {
    EW_ERRC_BAD_FRAME = 1,    /**< a frame failed to decode (CRC, COBS, length) */
    EW_ERRC_UNKNOWN_TYPE = 2, /**< valid frame of a type the receiver does not handle */
    EW_ERRC_BAD_PAYLOAD = 3,  /**< payload too short / out of range for its type */
    EW_ERRC_BAD_CONFIG_KEY = 4,
    EW_ERRC_BAD_VALUE = 5,      /**< CONFIG_SET value or CMD arg out of range */
    EW_ERRC_NO_CREDIT = 6,      /**< INJECT exceeded the granted credit: samples dropped */
    EW_ERRC_OVERRUN = 7,        /**< input buffer overrun: samples dropped */
    EW_ERRC_MODEL_MISMATCH = 8, /**< model hash / labels do not match the request */
    EW_ERRC_BUSY = 9,
    EW_ERRC_UNSUPPORTED = 10, /**< known command / type not supported by this build */
    EW_ERRC_SEQ_GAP = 11,     /**< receiver saw host frames missing (ref_seq = first received) */
    EW_ERRC_INTERNAL = 12,
};

/** CMD.command */
enum {
    EW_CMD_HELLO = 0,
    EW_CMD_REBOOT = 1,
    EW_CMD_STATUS = 2,
    EW_CMD_START_STREAM = 3,
    EW_CMD_STOP_STREAM = 4,
    EW_CMD_FACTORY_RESET = 5,
};

/* ------------------------------------------------------------------------------------------ */
/* Frame encoder                                                                                */

/**
 * @brief Encode one frame: 0x00, COBS(magic, type, seq, payload, crc32), 0x00.
 *
 * @param type     message type (any value; unknown types are legal on the wire)
 * @param seq      sender's sequence number
 * @param payload  payload bytes; may be NULL when len is 0
 * @param len      payload length, 0..EW_PROTO_MAX_PAYLOAD
 * @param out      destination; EW_PROTO_WIRE_SIZE(len) bytes always suffice
 * @param out_cap  its capacity
 * @return wire bytes written (>= 11, both delimiters included), or 0 if len exceeds
 *         EW_PROTO_MAX_PAYLOAD, payload is NULL with len > 0, out is NULL, or out_cap is too
 *         small for this frame (the content of out is then unspecified).
 */
size_t ew_proto_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, uint8_t *out,
                       size_t out_cap);

/* ------------------------------------------------------------------------------------------ */
/* Streaming decoder                                                                            */

/** What an item delivered by the decoder is. */
typedef enum {
    EW_PROTO_ITEM_FRAME = 1,        /**< a valid frame (type, seq, payload) */
    EW_PROTO_ITEM_LOG = 2,          /**< a plain-text line (data, trailing CR/LF removed) */
    EW_PROTO_ITEM_ERROR = 3,        /**< a rejected chunk (error, raw_len) */
    EW_PROTO_ITEM_SEQ_GAP = 4,      /**< frames missing before this one (expected, seq, count) */
    EW_PROTO_ITEM_SEQ_BACKWARD = 5, /**< duplicate / backward seq (expected, seq, count behind) */
    EW_PROTO_ITEM_RESET = 6,        /**< HELLO in mid-stream: tracking restarted (expected, seq) */
} ew_proto_item_kind_t;

/** Why a chunk was rejected (checked in this order). */
typedef enum {
    EW_PROTO_BAD_NONE = 0,
    EW_PROTO_BAD_COBS = 1,     /**< a COBS code byte runs past the chunk */
    EW_PROTO_BAD_SHORT = 2,    /**< decoded body shorter than 8 bytes */
    EW_PROTO_BAD_OVERSIZE = 3, /**< chunk > EW_PROTO_MAX_ENCODED or body > EW_PROTO_MAX_BODY */
    EW_PROTO_BAD_MAGIC = 4,    /**< first body byte is not EW_PROTO_MAGIC */
    EW_PROTO_BAD_CRC = 5,      /**< well-formed frame whose CRC does not match */
} ew_proto_bad_t;

/**
 * One decoder output.  Pointers refer to the decoder's buffer and are valid only during the
 * callback.  A SEQ_GAP / SEQ_BACKWARD / RESET item immediately precedes the FRAME it concerns.
 */
typedef struct {
    ew_proto_item_kind_t kind;
    uint8_t type;         /**< FRAME: message type */
    uint8_t unknown_type; /**< FRAME: 1 if type is not known to this version */
    uint16_t seq;         /**< FRAME and seq diagnostics: the frame's seq */
    uint16_t expected;    /**< seq diagnostics: the seq that was expected */
    uint16_t count;       /**< SEQ_GAP: frames missing; SEQ_BACKWARD: how far back */
    const uint8_t *data;  /**< FRAME: payload; LOG: text (not NUL terminated) */
    size_t len;           /**< length of data */
    const uint8_t *body;  /**< FRAME: whole decoded body (magic .. crc) */
    size_t body_len;      /**< FRAME: len + EW_PROTO_OVERHEAD */
    ew_proto_bad_t error; /**< ERROR: reason */
    uint32_t raw_len;     /**< ERROR: bytes of the rejected chunk (delimiters excluded) */
} ew_proto_item_t;

/** Decoder counters (all wrap modulo 2^32). */
typedef struct {
    uint32_t bytes_in;      /**< every byte fed */
    uint32_t delim_bytes;   /**< 0x00 bytes */
    uint32_t frame_bytes;   /**< bytes of chunks delivered as frames */
    uint32_t text_bytes;    /**< bytes of chunks delivered as log lines (CR/LF included) */
    uint32_t garbage_bytes; /**< bytes of rejected chunks */
    uint32_t frames;        /**< FRAME items */
    uint32_t unknown_types; /**< ... of which with an unknown type */
    uint32_t log_lines;     /**< LOG items */
    uint32_t err_cobs, err_short, err_oversize, err_magic, err_crc; /**< ERROR items by reason */
    uint32_t seq_gaps;                                              /**< SEQ_GAP items */
    uint32_t frames_missed;                                         /**< sum of their counts */
    uint32_t seq_backward;                                          /**< SEQ_BACKWARD items */
    uint32_t resets;                                                /**< RESET items */
} ew_proto_stats_t;

/** Decoder state.  Treat the fields as private; allocate statically or on the stack. */
typedef struct {
    uint8_t buf[EW_PROTO_MAX_ENCODED]; /**< current chunk (decoded in place) */
    uint16_t len;                      /**< bytes in buf, <= EW_PROTO_MAX_ENCODED */
    uint8_t all_text;                  /**< every byte in buf is printable / TAB / CR / LF */
    uint8_t discarding;                /**< chunk overflowed: drop bytes until 0x00 */
    uint32_t discard_len;              /**< length of the overflowed chunk so far */
    uint8_t has_seq;                   /**< a frame has been seen: expected_seq is valid */
    uint16_t expected_seq;
    ew_proto_stats_t stats;
} ew_proto_decoder_t;

/** Receives each decoder item; must not call ew_proto_decoder_feed() on the same decoder. */
typedef void (*ew_proto_item_fn)(void *ctx, const ew_proto_item_t *item);

/** @brief Reset the decoder: empty chunk, no sequence history, zero counters.  d != NULL. */
void ew_proto_decoder_init(ew_proto_decoder_t *d);

/**
 * @brief Feed n received bytes; items are delivered through cb as they complete.
 *
 * Rules (docs/protocol.md, "Decoder"):
 *  - Bytes accumulate into a chunk.  On 0x00 a non-empty chunk is a log line if all its bytes
 *    are text (printable ASCII, TAB, CR, LF, ESC), otherwise it is decoded as a frame (COBS,
 *    8..1288 bytes, magic, CRC) and delivered as FRAME or rejected as ERROR.
 *  - On LF, a chunk of text longer than one byte is delivered as a log line at once.  A lone
 *    LF at the start of a chunk is held until the next byte (it may be the COBS code byte
 *    0x0A of a frame) and delivered as an empty line if that byte is text or 0x00.
 *  - A chunk reaching EW_PROTO_MAX_ENCODED bytes: if text, it is delivered as a log line and
 *    a new chunk starts; otherwise the decoder drops bytes up to the next 0x00 and reports
 *    one EW_PROTO_BAD_OVERSIZE error with the full chunk length.
 *  - Sequence tracking, per valid frame: a HELLO restarts tracking (RESET item if any frame
 *    was seen before); otherwise d = (seq - expected) mod 2^16 is 0 (in order), 1..32767
 *    (SEQ_GAP, d frames missing) or 32768..65535 (SEQ_BACKWARD, 65536 - d back).  The next
 *    expected seq is always seq + 1.
 *
 * @param d     decoder (not NULL)
 * @param data  received bytes; may be NULL when n is 0
 * @param n     number of bytes
 * @param cb    item callback; may be NULL (counters are still kept)
 * @param ctx   passed to cb
 */
void ew_proto_decoder_feed(ew_proto_decoder_t *d, const uint8_t *data, size_t n,
                           ew_proto_item_fn cb, void *ctx);

/** @brief Bytes received but not yet accounted for (current chunk, incl. discarded ones). */
uint32_t ew_proto_decoder_pending(const ew_proto_decoder_t *d);

/** @brief Short lower-case name of a rejection reason ("cobs", "crc", ...; "none"; "?"). */
const char *ew_proto_bad_name(ew_proto_bad_t e);

/** @brief 1 if type is one of the message types known to this version (1..EW_MSG_MAX_KNOWN). */
int ew_proto_type_known(uint8_t type);

/* ------------------------------------------------------------------------------------------ */
/* Typed payloads                                                                               */
/*
 * ew_proto_pack_X(m, out, cap) writes the payload of message X and returns its length (>= 0),
 * or EW_PROTO_ERR_ARG (m or out NULL, or a NULL string with a non-zero length),
 * EW_PROTO_ERR_RANGE (a length / count above its limit) or EW_PROTO_ERR_SPACE (cap too small).
 *
 * ew_proto_unpack_X(p, len, m) parses a received payload into m and returns EW_PROTO_OK, or
 * EW_PROTO_ERR_ARG (m NULL, or p NULL with len > 0), EW_PROTO_ERR_SHORT (payload ends before
 * the message does) or EW_PROTO_ERR_RANGE (a length / count above its limit).  Bytes after the
 * message are ignored (newer senders may append fields).  Pointers in m refer into p.
 * Enumerated fields (kind, mode, reset_reason, ...) are passed through unchecked.
 */

/** HELLO (0x01), node->host.  An empty HELLO payload (host->node) is a request. */
typedef struct {
    uint8_t proto_version; /**< EW_PROTO_VERSION */
    uint8_t fw_major, fw_minor, fw_patch;
    uint8_t reset_reason; /**< EW_RESET_* */
    uint32_t sample_rate_hz;
    uint8_t model_hash[EW_PROTO_HASH_BYTES]; /**< first 8 bytes of the model's SHA-256 */
    uint8_t config_hash[EW_PROTO_HASH_BYTES];
    uint8_t node_id[EW_PROTO_NODE_ID_BYTES]; /**< MAC address */
    uint8_t board_len;                       /**< <= EW_PROTO_MAX_NAME */
    const char *board;                       /**< board_len bytes, not NUL terminated */
    uint8_t n_labels;                        /**< <= EW_PROTO_MAX_LABELS */
    uint8_t label_lens[EW_PROTO_MAX_LABELS]; /**< each <= EW_PROTO_MAX_NAME */
    const char *labels[EW_PROTO_MAX_LABELS]; /**< label_lens[i] bytes each */
} ew_proto_hello_t;

/** EVENT (0x02), 17 bytes. */
typedef struct {
    uint64_t onset_sample; /**< 16 kHz sample index since boot / stream start */
    uint32_t duration_samples;
    uint8_t class_index;
    uint8_t score; /**< Q0.8 probability */
    uint8_t kind;  /**< EW_PROTO_EVENT_ONSET / _END */
    uint16_t hits;
} ew_proto_event_t;

/** STATUS (0x03), 35 bytes. */
typedef struct {
    uint64_t sample_index;
    int16_t level_dbfs_q8; /**< block power, dBFS x 256 */
    int16_t noise_floor_dbfs_q8;
    uint16_t gate_duty_q16; /**< fraction of blocks with the gate open x 65535 */
    uint32_t inference_count;
    uint32_t inference_us_last;
    uint32_t inference_us_max;
    uint32_t dropped_samples;
    uint8_t mode;     /**< as EW_CFG_MODE */
    uint32_t credits; /**< INJECT credit outstanding (node's view) */
} ew_proto_status_t;

/** AUDIO (0x04) and INJECT (0x05): first_sample u64 + int16 LE samples. */
typedef struct {
    uint64_t first_sample;
    uint16_t n_samples;    /**< <= EW_PROTO_MAX_PCM */
    const uint8_t *pcm_le; /**< unpack: n_samples x 2 bytes inside the payload */
} ew_proto_pcm_t;

/** CREDIT (0x06). */
typedef struct {
    uint32_t credits_samples;
} ew_proto_credit_t;
/** CONFIG_GET (0x07). */
typedef struct {
    uint16_t key;
} ew_proto_config_get_t;
/** CONFIG_SET (0x08) and CONFIG (0x09). */
typedef struct {
    uint16_t key;
    int32_t value;
} ew_proto_config_t;
/** ACK (0x0A). */
typedef struct {
    uint16_t acked_seq;
    uint8_t acked_type;
} ew_proto_ack_t;
/** ERROR (0x0B). */
typedef struct {
    uint16_t code;       /**< EW_ERRC_* */
    uint16_t ref_seq;    /**< seq of the frame the error refers to */
    uint8_t message_len; /**< <= EW_PROTO_MAX_ERROR_TEXT */
    const char *message; /**< message_len bytes, not NUL terminated */
} ew_proto_error_t;
/** CMD (0x0C). */
typedef struct {
    uint8_t command;
    uint32_t arg;
} ew_proto_cmd_t;

#define EW_PROTO_EVENT_SIZE 17u
#define EW_PROTO_STATUS_SIZE 35u
#define EW_PROTO_HELLO_MIN_SIZE 33u /**< fixed part + empty board + zero labels */
#define EW_PROTO_PCM_HEADER 8u

/**
 * @brief Pack a HELLO payload (EW_PROTO_HELLO_MIN_SIZE + board + labels, at most 1121 bytes).
 * @return payload length; EW_PROTO_ERR_ARG (m / out NULL, board or a label NULL with a non-zero
 *         length); EW_PROTO_ERR_RANGE (board_len or a label length > EW_PROTO_MAX_NAME,
 *         n_labels > EW_PROTO_MAX_LABELS); EW_PROTO_ERR_SPACE (cap too small).
 */
int ew_proto_pack_hello(const ew_proto_hello_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse a HELLO payload; board and labels point into p.  (An empty payload is a HELLO
 *        request, not a HELLO: it returns EW_PROTO_ERR_SHORT.)
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (ends
 *         inside the fixed part, the board, the label count or a label); EW_PROTO_ERR_RANGE
 *         (board or label length > EW_PROTO_MAX_NAME, label count > EW_PROTO_MAX_LABELS).
 */
int ew_proto_unpack_hello(const uint8_t *p, size_t len, ew_proto_hello_t *m);

/**
 * @brief Pack an EVENT payload (EW_PROTO_EVENT_SIZE bytes).
 * @return EW_PROTO_EVENT_SIZE; EW_PROTO_ERR_ARG (m / out NULL); EW_PROTO_ERR_SPACE (cap < 17).
 */
int ew_proto_pack_event(const ew_proto_event_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse an EVENT payload.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (len < 17).
 */
int ew_proto_unpack_event(const uint8_t *p, size_t len, ew_proto_event_t *m);

/**
 * @brief Pack a STATUS payload (EW_PROTO_STATUS_SIZE bytes).
 * @return EW_PROTO_STATUS_SIZE; EW_PROTO_ERR_ARG (m / out NULL); EW_PROTO_ERR_SPACE (cap < 35).
 */
int ew_proto_pack_status(const ew_proto_status_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse a STATUS payload.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (len < 35).
 */
int ew_proto_unpack_status(const uint8_t *p, size_t len, ew_proto_status_t *m);

/**
 * @brief Pack an AUDIO / INJECT payload from n int16 samples.
 * @return 8 + 2n; EW_PROTO_ERR_ARG (out NULL, or samples NULL with n > 0); EW_PROTO_ERR_RANGE
 *         (n > EW_PROTO_MAX_PCM); EW_PROTO_ERR_SPACE (cap < 8 + 2n).
 */
int ew_proto_pack_pcm(uint64_t first_sample, const int16_t *samples, size_t n, uint8_t *out,
                      size_t cap);
/**
 * @brief Parse an AUDIO / INJECT payload (all bytes after first_sample are samples); pcm_le
 *        points into p.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT
 *         (len < 8); EW_PROTO_ERR_RANGE (odd sample byte count, more than EW_PROTO_MAX_PCM samples).
 */
int ew_proto_unpack_pcm(const uint8_t *p, size_t len, ew_proto_pcm_t *m);
/** @brief Sample i (< m->n_samples, unchecked) of an unpacked AUDIO / INJECT payload. */
int16_t ew_proto_pcm_sample(const ew_proto_pcm_t *m, size_t i);

/**
 * @brief Pack a CREDIT payload (4 bytes).
 * @return 4; EW_PROTO_ERR_ARG (m / out NULL); EW_PROTO_ERR_SPACE (cap < 4).
 */
int ew_proto_pack_credit(const ew_proto_credit_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse a CREDIT payload.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (len < 4).
 */
int ew_proto_unpack_credit(const uint8_t *p, size_t len, ew_proto_credit_t *m);

/**
 * @brief Pack a CONFIG_GET payload (2 bytes).
 * @return 2; EW_PROTO_ERR_ARG (m / out NULL); EW_PROTO_ERR_SPACE (cap < 2).
 */
int ew_proto_pack_config_get(const ew_proto_config_get_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse a CONFIG_GET payload.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (len < 2).
 */
int ew_proto_unpack_config_get(const uint8_t *p, size_t len, ew_proto_config_get_t *m);

/**
 * @brief Pack a CONFIG_SET or CONFIG payload (same 6-byte layout).
 * @return 6; EW_PROTO_ERR_ARG (m / out NULL); EW_PROTO_ERR_SPACE (cap < 6).
 */
int ew_proto_pack_config(const ew_proto_config_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse a CONFIG_SET or CONFIG payload.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (len < 6).
 */
int ew_proto_unpack_config(const uint8_t *p, size_t len, ew_proto_config_t *m);

/**
 * @brief Pack an ACK payload (3 bytes).
 * @return 3; EW_PROTO_ERR_ARG (m / out NULL); EW_PROTO_ERR_SPACE (cap < 3).
 */
int ew_proto_pack_ack(const ew_proto_ack_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse an ACK payload.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (len < 3).
 */
int ew_proto_unpack_ack(const uint8_t *p, size_t len, ew_proto_ack_t *m);

/**
 * @brief Pack an ERROR payload (5 + message_len bytes).
 * @return payload length; EW_PROTO_ERR_ARG (m / out NULL, message NULL with message_len > 0);
 *         EW_PROTO_ERR_RANGE (message_len > EW_PROTO_MAX_ERROR_TEXT); EW_PROTO_ERR_SPACE.
 */
int ew_proto_pack_error(const ew_proto_error_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse an ERROR payload; message points into p.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (ends
 *         before the message length byte or inside the message); EW_PROTO_ERR_RANGE (message
 *         length > EW_PROTO_MAX_ERROR_TEXT).
 */
int ew_proto_unpack_error(const uint8_t *p, size_t len, ew_proto_error_t *m);

/**
 * @brief Pack a CMD payload (5 bytes).
 * @return 5; EW_PROTO_ERR_ARG (m / out NULL); EW_PROTO_ERR_SPACE (cap < 5).
 */
int ew_proto_pack_cmd(const ew_proto_cmd_t *m, uint8_t *out, size_t cap);
/**
 * @brief Parse a CMD payload.
 * @return EW_PROTO_OK; EW_PROTO_ERR_ARG (m NULL, p NULL with len > 0); EW_PROTO_ERR_SHORT (len < 5).
 */
int ew_proto_unpack_cmd(const uint8_t *p, size_t len, ew_proto_cmd_t *m);

#ifdef __cplusplus
}
#endif
#endif /* EW_PROTO_H */
