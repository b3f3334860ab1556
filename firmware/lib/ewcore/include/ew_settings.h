/* GENERATED FILE - DO NOT EDIT.
 * Source: firmware/lib/ewcore/ewcore.toml; regenerate with `python -m tools.gen_params`.
 * config_hash: bc4ee5d86aff936b79f8f32e77e15a032a976114470e3c83be2fd4bae3e38cee
 */

#ifndef EW_SETTINGS_H
#define EW_SETTINGS_H

#include <stdint.h>

/** CONFIG keys (CONFIG_GET / CONFIG_SET / CONFIG).  Units and ranges: docs/protocol.md. */
enum {
    EW_CFG_MODE =                      0x0001,  /**< raw 0..1 */
    EW_CFG_GAIN_DB_Q8 =                0x0002,  /**< dB, raw -12288..12288 */
    EW_CFG_GATE_ONSET_MARGIN_Q8 =      0x0003,  /**< dB, raw 0..23040 */
    EW_CFG_GATE_SPREAD_MAX_Q16 =       0x0004,  /**< raw 0..65536 */
    EW_CFG_GATE_STRONG_MARGIN_Q8 =     0x0005,  /**< dB, raw 0..23040 */
    EW_CFG_GATE_SUSTAIN_MARGIN_Q8 =    0x0006,  /**< dB, raw 0..23040 */
    EW_CFG_GATE_FLOOR_Q8 =             0x0007,  /**< dBFS, raw -30720..0 */
    EW_CFG_HOLDOFF_MS =                0x0008,  /**< ms, raw 0..60000 */
    EW_CFG_CONTINUOUS_STRIDE =         0x0009,  /**< hops, raw 1..64 */
    EW_CFG_STATUS_PERIOD_MS =          0x000A,  /**< ms, raw 50..3600000 or 0 (off) */
    EW_CFG_BAUD =                      0x000B,  /**< baud, raw 9600..5000000 */
    EW_CFG_AUDIO_STREAM =              0x000C,  /**< raw 0..2 */
    EW_CFG_ALARM_MS =                  0x000D,  /**< ms, raw 0..60000 */
    EW_CFG_ALARM_CLASSES =             0x000E,  /**< raw 0..65535 */
    EW_CFG_GATE_PEAK_MARGIN_Q8 =       0x000F,  /**< dB, raw 0..23040 */
    EW_CFG_GATE_TONAL_MARGIN_Q8 =      0x0010,  /**< dB, raw 0..23040 */
    EW_CFG_EARLY_PREROLL_FRAMES =      0x0011,  /**< hops, raw 1..63 or 0 (off) */
    EW_CFG_EARLY_CONTINUE_MARGIN_Q8 =  0x0012,  /**< dB, raw 0..23040 */
    EW_CFG_HABITUATE_ONSETS =          0x0013,  /**< raw 0..255 */
    EW_CFG_HABITUATE_MARGIN_Q8 =       0x0014,  /**< dB, raw 0..23040 */
    EW_CFG_HABITUATE_RECHECKS =        0x0015,  /**< raw 0..255 */
    EW_CFG_HABITUATE_RECHECK_MS =      0x0016,  /**< ms, raw 0..60000 */
    EW_CFG_HABITUATE_MAX_SCORE_Q8 =    0x0017,  /**< raw 0..255 */
    EW_CFG_THRESHOLD_BASE =            0x0100,  /**< + class index: threshold Q0.8, 256 = class off */
    EW_CFG_THRESHOLD_LAST =            0x01FF,
};

#define EW_SETTING_ZERO_OFF 0x01u   /**< raw 0 (off) is accepted besides min..max */
#define EW_SETTING_PERSISTED 0x02u  /**< saved in the configuration blob (NVS) */
#define EW_SETTING_RESTART 0x04u    /**< a change restarts the detector */

/** One CONFIG setting: its key, the raw (wire) range CONFIG_SET accepts, flags. */
typedef struct {
    uint16_t key;
    uint8_t flags;      /* EW_SETTING_* */
    int32_t min, max;   /* inclusive, raw wire units */
} ew_setting_t;

#define EW_N_SETTINGS 23u
#define EW_N_PERSISTED_SETTINGS 23u
#define EW_THRESHOLD_MAX_Q8 256  /* threshold range 0..this (this = class off) */
/** In key order; the persisted ones are saved in this order. */
extern const ew_setting_t ew_settings[EW_N_SETTINGS];

#endif /* EW_SETTINGS_H */
