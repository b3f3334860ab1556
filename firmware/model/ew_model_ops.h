/* generated — do not edit, regenerate with `python -m training export --model-dir <this folder>`
 * (C generated from model.tflite + manifest.json of this folder)
 * model: earwitness-default
 * model_sha256: 9308af202c40ff1d4bc1978d16caeaf2eb4b29431d77228f69be16d2866b6a6e
 * feature_config_hash: 8993307a300a459706028e0dbb942980b5e398b327b43ba1c160cf9c78882ed2
 */

#ifndef EW_MODEL_OPS_H
#define EW_MODEL_OPS_H

#include "ew_model.h"

#if !defined(EW_MODEL_SCHEMA_VERSION) || EW_MODEL_SCHEMA_VERSION != 1
#error "ew_model.h does not match this generated file: regenerate with python -m training export --model-dir <this folder>"
#endif

#ifndef __cplusplus
#error "ew_model_ops.h is C++ (tflite-micro's op resolver)"
#endif

#define EW_MODEL_OP_COUNT 5

/* Register exactly the ops the model uses (AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, SOFTMAX).
 * R: tflite::MicroMutableOpResolver<EW_MODEL_OP_COUNT> (or larger). false on any error. */
template <class R>
static inline bool ew_model_register_ops(R &r)
{
    if (r.AddAveragePool2D() != kTfLiteOk) return false;
    if (r.AddConv2D() != kTfLiteOk) return false;
    if (r.AddDepthwiseConv2D() != kTfLiteOk) return false;
    if (r.AddFullyConnected() != kTfLiteOk) return false;
    if (r.AddSoftmax() != kTfLiteOk) return false;
    return true;
}

#endif /* EW_MODEL_OPS_H */
