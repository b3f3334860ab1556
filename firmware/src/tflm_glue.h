/**
 * @file tflm_glue.h
 * @brief C interface of the TensorFlow Lite Micro glue (tflm_glue.cc, the only C++ file).
 *
 * The model is the generated C array of firmware/model/ (ew_model_data.c), its op resolver
 * the generated registration (ew_model_ops.h) and its expected tensors the generated
 * config header (ew_model.h).  ew_tflm_init() checks the flatbuffer's tensors against that
 * header and refuses to run on any difference; the caller then reports ERROR
 * MODEL_MISMATCH with the reason text and never classifies.
 */
#ifndef TFLM_GLUE_H
#define TFLM_GLUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Results of ew_tflm_init(). */
enum {
    EW_TFLM_OK = 0,
    EW_TFLM_ERR_MISMATCH = -1,  /**< model tensors differ from ew_model.h (MODEL_MISMATCH) */
    EW_TFLM_ERR_ARENA = -2,     /**< arena allocation or AllocateTensors failed (INTERNAL) */
    EW_TFLM_ERR_OPS = -3,       /**< op registration failed (INTERNAL) */
    EW_TFLM_ERR_NOT_READY = -4, /**< classify before a successful init */
    EW_TFLM_ERR_INVOKE = -5,    /**< Invoke() failed */
};

typedef struct {
    uint32_t invokes;     /**< successful Invoke() calls */
    uint32_t errors;      /**< failed ones */
    uint32_t last_us;     /**< duration of the last Invoke() (input copy included) */
    uint32_t max_us;      /**< longest since boot */
    uint32_t arena_bytes; /**< arena allocated (EW_MODEL_ARENA_BYTES + margin) */
    uint32_t arena_used;  /**< arena_used_bytes() after AllocateTensors */
    uint8_t ready;        /**< init succeeded */
} ew_tflm_stats_t;

/**
 * @brief Build the interpreter and verify the model against ew_model.h.
 * Checks: flatbuffer schema version; one input and one output; input int8 of shape
 * [1, EW_MODEL_INPUT_FRAMES, EW_MODEL_INPUT_BANDS, 1] with scale EW_MODEL_INPUT_SCALE and
 * zero point EW_MODEL_INPUT_ZERO_POINT; output int8 [1, EW_MODEL_N_CLASSES] with
 * EW_MODEL_OUTPUT_SCALE / _ZERO_POINT; the model's frames x bands equal the core's
 * EW_FRAMES_PER_WINDOW x EW_N_MELS.
 * @param why      receives a one-line ASCII reason on failure (may be NULL)
 * @param why_len  its capacity
 * @return EW_TFLM_OK, EW_TFLM_ERR_MISMATCH, EW_TFLM_ERR_ARENA or EW_TFLM_ERR_OPS.
 */
int ew_tflm_init(char *why, size_t why_len);

/**
 * @brief Run the model on one window of EW_MODEL_INPUT_FRAMES x EW_MODEL_INPUT_BANDS int8
 *        features (frame-major) and write EW_MODEL_N_CLASSES Q0.8 scores (q - zero point).
 * @return EW_TFLM_OK, EW_TFLM_ERR_NOT_READY or EW_TFLM_ERR_INVOKE.
 */
int ew_tflm_classify(const int8_t *features, uint8_t *scores);

/** Copy the counters. */
void ew_tflm_get_stats(ew_tflm_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* TFLM_GLUE_H */
