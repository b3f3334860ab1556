/* generated — do not edit, regenerate with `python -m training export --model-dir <this folder>`
 * (C generated from model.tflite + manifest.json of this folder)
 * model: earwitness-default
 * model_sha256: 9308af202c40ff1d4bc1978d16caeaf2eb4b29431d77228f69be16d2866b6a6e
 * feature_config_hash: 8993307a300a459706028e0dbb942980b5e398b327b43ba1c160cf9c78882ed2
 */

#ifndef EW_MODEL_H
#define EW_MODEL_H

#define EW_MODEL_SCHEMA_VERSION 1  /* layout of this header; consumers check it */
#define EW_MODEL_NAME "earwitness-default"
#define EW_MODEL_N_CLASSES 8
#define EW_MODEL_LABELS { "gunshot", "glass_breaking", "scream", "siren", "fireworks_explosion", "baby_cry", "dog_bark", "other" }
#define EW_MODEL_NEGATIVE_INDEX 7  /* never reported as an event */
#define EW_MODEL_THRESHOLDS_Q8 { 128, 128, 194, 203, 230, 128, 128, 256 }  /* Q0.8, 256 = off */
#define EW_MODEL_INPUT_SCALE 0.75f  /* dB per LSB */
#define EW_MODEL_INPUT_ZERO_POINT (-128)
#define EW_MODEL_OUTPUT_SCALE 0.00390625f  /* softmax: Q0.8 score = q + 128 */
#define EW_MODEL_OUTPUT_ZERO_POINT (-128)
#define EW_MODEL_INPUT_FRAMES 64
#define EW_MODEL_INPUT_BANDS 40
#define EW_MODEL_ARENA_MEASURED_BYTES 39920  /* tflite-micro, host (64-bit), reference kernels */
#define EW_MODEL_ARENA_BYTES 50176  /* measured + 25 %, rounded up to 1 KiB */
#define EW_MODEL_MACS 2306048u  /* multiply-accumulates per window */
#define EW_MODEL_TFLITE_BYTES 53352u
#define EW_MODEL_SHA256_STR "9308af202c40ff1d4bc1978d16caeaf2eb4b29431d77228f69be16d2866b6a6e"
#define EW_MODEL_HASH8 { 0x93, 0x08, 0xaf, 0x20, 0x2c, 0x40, 0xff, 0x1d }  /* first 8 bytes of the SHA-256, as in HELLO */
#define EW_MODEL_FEATURE_HASH_STR "8993307a300a459706028e0dbb942980b5e398b327b43ba1c160cf9c78882ed2"
#define EW_MODEL_CORE_CONFIG_HASH_STR "bc4ee5d86aff936b79f8f32e77e15a032a976114470e3c83be2fd4bae3e38cee"
#define EW_MODEL_MIN_FW_VERSION_MAJOR 0
#define EW_MODEL_MIN_FW_VERSION_MINOR 2
#define EW_MODEL_MIN_FW_VERSION_PATCH 0
#define EW_MODEL_MIN_FW_VERSION_STR "0.2.0"

#ifdef __cplusplus
extern "C" {
#endif
extern const unsigned char ew_model_tflite[];
extern const unsigned int ew_model_tflite_len;
#ifdef __cplusplus
}
#endif

#endif /* EW_MODEL_H */
