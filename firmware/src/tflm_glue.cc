/**
 * @file tflm_glue.cc
 * @brief TensorFlow Lite Micro (esp-tflite-micro, ESP-NN kernels) behind tflm_glue.h.
 *
 * The only C++ in the firmware.  It builds one MicroInterpreter over:
 *  - the model: the 16-byte aligned C array ew_model_tflite[] (firmware/model/ew_model_data.c);
 *  - the ops:   MicroMutableOpResolver<EW_MODEL_OP_COUNT> filled by the generated
 *               ew_model_register_ops() (firmware/model/ew_model_ops.h), i.e. exactly the
 *               builtin ops the exported model uses;
 *  - the arena: EW_MODEL_ARENA_BYTES (measured by the exporter on the host, margin included)
 *               + CONFIG_EW_TFLM_ARENA_MARGIN for ESP-NN scratch buffers, from internal RAM,
 *               16-byte aligned (TFLM's arena alignment).
 * At boot it verifies the tensors against ew_model.h and refuses to run on any difference,
 * so a model exported for other features, classes or quantisation can never produce scores.
 *
 * APIs (tflite-micro micro_interpreter.h, current upstream as vendored by esp-tflite-micro
 * 1.3.x): tflite::GetModel(), Model::version(), TFLITE_SCHEMA_VERSION,
 * MicroInterpreter(model, resolver, arena, arena_size), AllocateTensors(), inputs_size(),
 * outputs_size(), input(i) / output(i) -> TfLiteTensor {type, dims, params.scale,
 * params.zero_point, data.int8}, Invoke(), arena_used_bytes().
 */
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "sdkconfig.h"

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "ew_node.h" // C header with its own extern "C"
extern "C" {
#include "ew_model.h" // generated; may lack C++ guards
}
#include "ew_model_ops.h" // generated, C++ only

#include "tflm_glue.h"

static const char *TAG = "ew_tflm";

static_assert(EW_MODEL_INPUT_FRAMES == EW_FRAMES_PER_WINDOW,
              "model input frames differ from the core's analysis window");
static_assert(EW_MODEL_INPUT_BANDS == EW_N_MELS, "model input bands differ from the core's mels");
static_assert(EW_MODEL_N_CLASSES >= 1 && EW_MODEL_N_CLASSES <= EW_MAX_CLASSES,
              "model class count outside 1..EW_MAX_CLASSES");

namespace {

constexpr size_t kArenaBytes = (size_t)EW_MODEL_ARENA_BYTES + (size_t)CONFIG_EW_TFLM_ARENA_MARGIN;
constexpr size_t kInputBytes = (size_t)EW_MODEL_INPUT_FRAMES * (size_t)EW_MODEL_INPUT_BANDS;

using Resolver = tflite::MicroMutableOpResolver<EW_MODEL_OP_COUNT>;

// Storage for the resolver and the interpreter, constructed in place once (no heap for
// them, no static constructors before app_main).
alignas(Resolver) unsigned char g_resolver_mem[sizeof(Resolver)];
alignas(tflite::MicroInterpreter) unsigned char g_interp_mem[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter *g_interp = nullptr;
uint8_t *g_arena = nullptr;
ew_tflm_stats_t g_stats = {};

void reason(char *why, size_t why_len, const char *fmt, ...) {
    char line[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ESP_LOGE(TAG, "%s", line);
    if (why != nullptr && why_len > 0) {
        snprintf(why, why_len, "%s", line);
    }
}

bool same_scale(float got, float want) { return std::fabs(got - want) <= 1e-6f * std::fabs(want); }

const char *type_name(TfLiteType t) {
    return t == kTfLiteInt8 ? "int8"
                            : (t == kTfLiteUInt8 ? "uint8"
                                                 : (t == kTfLiteFloat32
                                                        ? "float32"
                                                        : (t == kTfLiteInt16 ? "int16" : "other")));
}

// Compare a tensor with the expected type, shape and quantisation; fill `why` on mismatch.
bool check_tensor(const TfLiteTensor *t, const char *name, const int *shape, int rank, float scale,
                  int zero_point, char *why, size_t why_len) {
    if (t == nullptr) {
        reason(why, why_len, "model %s tensor missing", name);
        return false;
    }
    if (t->type != kTfLiteInt8) {
        reason(why, why_len, "model %s is %s, expected int8", name, type_name(t->type));
        return false;
    }
    bool shape_ok = t->dims != nullptr && t->dims->size == rank;
    for (int i = 0; shape_ok && i < rank; i++) {
        shape_ok = t->dims->data[i] == shape[i];
    }
    if (!shape_ok) {
        char got[48] = "?";
        if (t->dims != nullptr) {
            size_t o = 0;
            for (int i = 0; i < t->dims->size && o + 8 < sizeof got; i++) {
                o += (size_t)snprintf(got + o, sizeof got - o, i ? ",%d" : "%d", t->dims->data[i]);
            }
        }
        reason(why, why_len,
               "model %s shape [%s], expected rank %d (frames %d, bands %d, "
               "classes %d)",
               name, got, rank, EW_MODEL_INPUT_FRAMES, EW_MODEL_INPUT_BANDS, EW_MODEL_N_CLASSES);
        return false;
    }
    if (!same_scale(t->params.scale, scale) || t->params.zero_point != zero_point) {
        reason(why, why_len, "model %s quantisation scale %g zp %d, expected %g zp %d", name,
               (double)t->params.scale, (int)t->params.zero_point, (double)scale, zero_point);
        return false;
    }
    return true;
}

} // namespace

extern "C" int ew_tflm_init(char *why, size_t why_len) {
    if (g_stats.ready) {
        return EW_TFLM_OK;
    }
    tflite::InitializeTarget();

    const tflite::Model *model = tflite::GetModel(ew_model_tflite);
    if (model == nullptr || model->version() != TFLITE_SCHEMA_VERSION) {
        reason(why, why_len, "model flatbuffer schema %d, firmware expects %d",
               model ? (int)model->version() : -1, (int)TFLITE_SCHEMA_VERSION);
        return EW_TFLM_ERR_MISMATCH;
    }

    Resolver *resolver = new (g_resolver_mem) Resolver();
    if (!ew_model_register_ops(*resolver)) {
        reason(why, why_len, "registering the model's %d ops failed", (int)EW_MODEL_OP_COUNT);
        return EW_TFLM_ERR_OPS;
    }

    if (g_arena == nullptr) {
        g_arena = static_cast<uint8_t *>(
            heap_caps_aligned_alloc(16, kArenaBytes, MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT));
    }
    if (g_arena == nullptr) {
        reason(why, why_len, "no %u-byte TFLM arena (largest internal block %u)",
               (unsigned)kArenaBytes,
               (unsigned)heap_caps_get_largest_free_block(MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT));
        return EW_TFLM_ERR_ARENA;
    }
    g_stats.arena_bytes = (uint32_t)kArenaBytes;

    tflite::MicroInterpreter *interp =
        new (g_interp_mem) tflite::MicroInterpreter(model, *resolver, g_arena, kArenaBytes);
    if (interp->AllocateTensors() != kTfLiteOk) {
        reason(why, why_len, "AllocateTensors failed in a %u-byte arena", (unsigned)kArenaBytes);
        return EW_TFLM_ERR_ARENA;
    }
    g_stats.arena_used = (uint32_t)interp->arena_used_bytes();

    if (interp->inputs_size() != 1 || interp->outputs_size() != 1) {
        reason(why, why_len, "model has %u inputs / %u outputs, expected 1 / 1",
               (unsigned)interp->inputs_size(), (unsigned)interp->outputs_size());
        return EW_TFLM_ERR_MISMATCH;
    }
    static const int in_shape[4] = { 1, EW_MODEL_INPUT_FRAMES, EW_MODEL_INPUT_BANDS, 1 };
    static const int out_shape[2] = { 1, EW_MODEL_N_CLASSES };
    if (!check_tensor(interp->input(0), "input", in_shape, 4, (float)EW_MODEL_INPUT_SCALE,
                      (int)EW_MODEL_INPUT_ZERO_POINT, why, why_len) ||
        !check_tensor(interp->output(0), "output", out_shape, 2, (float)EW_MODEL_OUTPUT_SCALE,
                      (int)EW_MODEL_OUTPUT_ZERO_POINT, why, why_len)) {
        return EW_TFLM_ERR_MISMATCH;
    }
    // Scores are read as q - zero_point, which is Q0.8 only for a 1/256 softmax scale.
    if (!same_scale((float)EW_MODEL_OUTPUT_SCALE, 1.0f / 256.0f)) {
        reason(why, why_len, "model output scale %g, the node needs 1/256 (softmax int8)",
               (double)EW_MODEL_OUTPUT_SCALE);
        return EW_TFLM_ERR_MISMATCH;
    }
    // The node quantises its features with the core's EW_QUANT_* (ewcore.toml):
    // q = zp + (L * mult + 2^(shift-1)) >> shift, L = 256 log2(power), so one step of q is
    // 2^shift / mult steps of L = 2^shift / mult * 10 log10(2) / 256 dB.  The model must
    // expect exactly that scale and zero point.
    const double core_scale =
        10.0 * std::log10(2.0) / 256.0 * std::ldexp(1.0, EW_QUANT_SHIFT) / (double)EW_QUANT_MULT;
    if ((int)EW_MODEL_INPUT_ZERO_POINT != (int)EW_QUANT_ZERO_POINT ||
        std::fabs(core_scale - (double)EW_MODEL_INPUT_SCALE) > 1e-4 * core_scale) {
        reason(why, why_len, "model input scale %g zp %d, core quantiser %g zp %d",
               (double)EW_MODEL_INPUT_SCALE, (int)EW_MODEL_INPUT_ZERO_POINT, core_scale,
               (int)EW_QUANT_ZERO_POINT);
        return EW_TFLM_ERR_MISMATCH;
    }
#ifdef EW_FEATURE_HASH_STR
    // When the core's generated header names its feature hash, it must be the model's.
    if (std::strcmp(EW_FEATURE_HASH_STR, EW_MODEL_FEATURE_HASH_STR) != 0) {
        reason(why, why_len, "model features %.12s, core features %.12s", EW_MODEL_FEATURE_HASH_STR,
               EW_FEATURE_HASH_STR);
        return EW_TFLM_ERR_MISMATCH;
    }
#endif
    g_interp = interp;
    g_stats.ready = 1;
    ESP_LOGI(TAG, "model %.16s: %u bytes, %d classes, %d ops, arena %u used of %u",
             EW_MODEL_SHA256_STR, (unsigned)ew_model_tflite_len, (int)EW_MODEL_N_CLASSES,
             (int)EW_MODEL_OP_COUNT, (unsigned)g_stats.arena_used, (unsigned)g_stats.arena_bytes);
    return EW_TFLM_OK;
}

extern "C" int ew_tflm_classify(const int8_t *features, uint8_t *scores) {
    if (g_interp == nullptr) {
        return EW_TFLM_ERR_NOT_READY;
    }
    int64_t t0 = esp_timer_get_time();
    TfLiteTensor *in = g_interp->input(0);
    std::memcpy(in->data.int8, features, kInputBytes);
    if (g_interp->Invoke() != kTfLiteOk) {
        g_stats.errors++;
        return EW_TFLM_ERR_INVOKE;
    }
    const TfLiteTensor *out = g_interp->output(0);
    for (int i = 0; i < EW_MODEL_N_CLASSES; i++) {
        // softmax output, scale 1/256: Q0.8 score = q - zero_point (0..255)
        int s = (int)out->data.int8[i] - (int)EW_MODEL_OUTPUT_ZERO_POINT;
        scores[i] = (uint8_t)(s < 0 ? 0 : (s > 255 ? 255 : s));
    }
    uint32_t us = (uint32_t)(esp_timer_get_time() - t0);
    g_stats.invokes++;
    g_stats.last_us = us;
    if (us > g_stats.max_us) {
        g_stats.max_us = us;
    }
    return EW_TFLM_OK;
}

extern "C" void ew_tflm_get_stats(ew_tflm_stats_t *out) { *out = g_stats; }
