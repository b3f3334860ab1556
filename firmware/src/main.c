/* earwitness node firmware: wiring only.
 *
 * Everything the node decides lives in the portable core (firmware/lib/ewcore: ew_app on top
 * of ew_node and ew_proto), which the host twin runs too.  This file connects it to the ESP32
 * drivers of port_esp32/ and to the TFLM glue:
 *
 *   core 0: ew_capture  (prio max-2)  ADC DMA -> 12-bit codes -> lock-free ring
 *           ew_rx       (prio max-3)  UART / USB-Serial-JTAG -> stream buffer
 *   core 1: ew_proc     (prio 5)      ring + stream buffer -> ew_app (features, TFLM, events,
 *                                     protocol answers, STATUS, AUDIO) -> serial TX
 *   (single-core ESP32-C3: all on core 0, same priorities)
 *
 * Boot: NVS, alarm pin, serial line (logs are routed through the TX lock from then on), TFLM
 * interpreter with the model check, then the processing task initialises the app (which
 * applies the persisted configuration and sends HELLO) and starts the ADC.  A model that does
 * not match ew_model.h is never run: the node still answers the protocol (HELLO carries the
 * model hash) but stops its input and repeats ERROR MODEL_MISMATCH every 10 s.
 */
#include <string.h>

#include "esp_log.h"
#include "esp_task_wdt.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#include "ew_app.h"
#include "ew_model.h"
#include "ew_params.h"
#include "ew_proto.h"
#include "port_esp32/ew_esp32.h"
#include "tflm_glue.h"

#define EW_FW_MAJOR 0
#define EW_FW_MINOR 2
#define EW_FW_PATCH 0

#if defined(EW_MODEL_MIN_FW_VERSION_MAJOR) && defined(EW_MODEL_MIN_FW_VERSION_MINOR) && \
    defined(EW_MODEL_MIN_FW_VERSION_PATCH)
#if (EW_FW_MAJOR * 10000 + EW_FW_MINOR * 100 + EW_FW_PATCH) <                      \
    (EW_MODEL_MIN_FW_VERSION_MAJOR * 10000 + EW_MODEL_MIN_FW_VERSION_MINOR * 100 + \
     EW_MODEL_MIN_FW_VERSION_PATCH)
#error "firmware/model needs a newer firmware version (EW_MODEL_MIN_FW_VERSION_*)"
#endif
#endif

#if CONFIG_FREERTOS_UNICORE || (portNUM_PROCESSORS < 2)
#define EW_CORE_IO 0
#define EW_CORE_DSP 0
#else
#define EW_CORE_IO 0
#define EW_CORE_DSP 1
#endif

#define EW_PROC_STACK 8192
#define EW_PROC_PRIO 5
#define EW_FEED_CHUNK 512 /**< ADC codes per ew_app_feed_adc call (16 ms) */
#define EW_RX_CHUNK 256
#define EW_MISMATCH_REPEAT_US 10000000

static const char *TAG = "earwitness";

static ew_app_t s_app; /* ~74 KiB, .bss */
static const char *const s_labels[EW_MODEL_N_CLASSES] = EW_MODEL_LABELS;
static const uint16_t s_thresholds[EW_MODEL_N_CLASSES] = EW_MODEL_THRESHOLDS_Q8;
static char s_model_error[EW_PROTO_MAX_ERROR_TEXT + 1];
static int s_model_status;

/* The firmware's identity as data in the image, found by its magic: what a flashed image
 * claims to be can be read from its bytes (tools/sim/romsim.py does, before it boots a
 * simulated node), and HELLO is filled from this record.  Layout 1, 152 bytes, no padding:
 *   "EWID" | u8 layout (1) | u8 fw_major | u8 fw_minor | u8 fw_patch
 *   | model_hash[8] | config_hash[8] (as in HELLO)
 *   | model_sha256[64] | config_hash_hex[64] (lowercase hex, not NUL-terminated) */
typedef struct {
    char magic[4];
    uint8_t layout;
    uint8_t fw_major, fw_minor, fw_patch;
    uint8_t model_hash[EW_PROTO_HASH_BYTES];
    uint8_t config_hash[EW_PROTO_HASH_BYTES];
    char model_sha256[64];
    char config_hash_hex[64];
} ew_identity_t;

__attribute__((used)) static const ew_identity_t s_identity = {
    .magic = { 'E', 'W', 'I', 'D' },
    .layout = 1,
    .fw_major = EW_FW_MAJOR,
    .fw_minor = EW_FW_MINOR,
    .fw_patch = EW_FW_PATCH,
    .model_hash = EW_MODEL_HASH8,
    .config_hash = EW_CONFIG_HASH8,
    .model_sha256 = EW_MODEL_SHA256_STR,
    .config_hash_hex = EW_CONFIG_HASH_STR,
};

static void fill_info(ew_app_info_t *info) {
    /* Read through a volatile pointer: a real reference, so the linker keeps the record
     * (--gc-sections drops unreferenced data, `used` notwithstanding, and the compiler would
     * otherwise fold the constant fields into the code). */
    const ew_identity_t *volatile identity_ref = &s_identity;
    const ew_identity_t *id = identity_ref;
    memset(info, 0, sizeof *info);
    info->board = ew_board_name();
    info->fw_major = id->fw_major;
    info->fw_minor = id->fw_minor;
    info->fw_patch = id->fw_patch;
    info->reset_reason = ew_board_reset_reason();
    memcpy(info->model_hash, id->model_hash, sizeof id->model_hash);
    memcpy(info->config_hash, id->config_hash, sizeof id->config_hash);
    ew_board_node_id(info->node_id);
    info->n_classes = EW_MODEL_N_CLASSES;
    info->labels = s_labels;
    info->thresholds_q8 = s_thresholds;
    ew_quant_default(&info->quant); /* = EW_QUANT_*; tflm_glue checks the model's */
    info->adc_rate_hz = (uint32_t)EW_SAMPLE_RATE_HZ * CONFIG_EW_ADC_DECIM_FACTOR;
    info->default_baud = CONFIG_EW_SERIAL_BAUD;
}

static void processing_task(void *arg) {
    (void)arg;
    static uint16_t codes[EW_FEED_CHUNK];
    static uint8_t rx[EW_RX_CHUNK];
    ew_app_info_t info;
    ew_port_t port;

    ew_esp32_set_consumer(xTaskGetCurrentTaskHandle());
    fill_info(&info);
    ew_esp32_port(&port);
    int rc = ew_app_init(&s_app, &info, &port); /* sends HELLO */
    if (rc != EW_OK) {
        ESP_LOGE(TAG, "ew_app_init failed (%d): check ew_model.h labels / thresholds", rc);
        vTaskDelete(NULL);
        return;
    }
    const bool model_ok = s_model_status == EW_TFLM_OK;
    if (!model_ok) {
        ew_app_set_input(&s_app, EW_APP_INPUT_STOPPED); /* refuse to run */
        ew_app_send_error(&s_app,
                          s_model_status == EW_TFLM_ERR_MISMATCH ? EW_ERRC_MODEL_MISMATCH
                                                                 : EW_ERRC_INTERNAL,
                          0, s_model_error);
    }
    esp_err_t err = ew_adc_start(CONFIG_EW_MIC_GPIO, info.adc_rate_hz, EW_CORE_IO);
    if (err != ESP_OK) {
        ew_app_send_error(&s_app, EW_ERRC_INTERNAL, 0, "ADC capture failed to start");
    }
    if (esp_task_wdt_add(NULL) != ESP_OK) {
        ESP_LOGW(TAG, "task watchdog not available");
    }

    uint32_t dropped_seen = 0;
    uint64_t mismatch_t = ew_board_time_us();
    for (;;) {
        /* Woken by the capture task (codes) or the RX task (bytes); 10 ms keeps STATUS and
         * AUDIO timers going when both are quiet. */
        ulTaskNotifyTake(pdTRUE, pdMS_TO_TICKS(10));
        esp_task_wdt_reset();

        size_t n;
        while ((n = ew_serial_read(rx, sizeof rx)) > 0) {
            ew_app_rx(&s_app, rx, n);
        }

        ew_adc_stats_t st;
        ew_adc_get_stats(&st);
        /* Drain what is queued now (not what arrives meanwhile, so host commands are never
         * starved), in 16 ms chunks, sending AUDIO / STATUS between them. */
        for (size_t left = ew_adc_pending(); left > 0; left -= n) {
            n = ew_adc_read(codes, left < EW_FEED_CHUNK ? left : EW_FEED_CHUNK);
            if (n == 0) {
                break;
            }
            ew_app_feed_adc(&s_app, codes, n); /* discarded unless the input is MIC */
            ew_app_poll(&s_app);
            esp_task_wdt_reset();
        }
        /* Codes lost since the last pass (ring full / driver pool overflow) were newer than
         * the ones just drained: report them now so the detector keeps real time. */
        if (st.dropped_samples != dropped_seen) {
            ew_app_note_overrun(&s_app, st.dropped_samples - dropped_seen);
            dropped_seen = st.dropped_samples;
        }
        ew_app_poll(&s_app);

        if (!model_ok && ew_board_time_us() - mismatch_t >= EW_MISMATCH_REPEAT_US) {
            mismatch_t = ew_board_time_us();
            ESP_LOGE(TAG, "model not running: %s", s_model_error);
            ew_app_send_error(&s_app,
                              s_model_status == EW_TFLM_ERR_MISMATCH ? EW_ERRC_MODEL_MISMATCH
                                                                     : EW_ERRC_INTERNAL,
                              0, s_model_error);
        }
    }
}

void app_main(void) {
    esp_err_t err = ew_nvs_init();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "NVS: %s (configuration will not persist)", esp_err_to_name(err));
    }
    ew_board_init();
    ESP_ERROR_CHECK(ew_serial_start(CONFIG_EW_SERIAL_BAUD, EW_CORE_IO));
    ew_serial_capture_logs();

    ESP_LOGI(TAG, "firmware %d.%d.%d, board %s, core config %.16s", EW_FW_MAJOR, EW_FW_MINOR,
             EW_FW_PATCH, ew_board_name(), EW_CONFIG_HASH_STR);
    ESP_LOGI(TAG, "audio %d Hz (ADC x%d), frame %d, hop %d, %d mel bands, %d classes",
             (int)EW_SAMPLE_RATE_HZ, (int)CONFIG_EW_ADC_DECIM_FACTOR, (int)EW_FRAME_SAMPLES,
             (int)EW_HOP_SAMPLES, (int)EW_N_MELS, (int)EW_MODEL_N_CLASSES);

    s_model_status = ew_tflm_init(s_model_error, sizeof s_model_error);
    if (s_model_status != EW_TFLM_OK) {
        ESP_LOGE(TAG, "model check failed: %s", s_model_error);
    }

    if (xTaskCreatePinnedToCore(processing_task, "ew_proc", EW_PROC_STACK, NULL, EW_PROC_PRIO, NULL,
                                EW_CORE_DSP) != pdPASS) {
        ESP_LOGE(TAG, "no memory for the processing task");
        return;
    }
    /* app_main returns; its task is deleted.  The node runs in the tasks above. */
}
