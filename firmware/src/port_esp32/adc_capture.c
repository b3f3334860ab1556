/**
 * @file adc_capture.c
 * @brief Electret microphone capture: ADC1 continuous mode (DMA) -> 12-bit codes -> ring.
 *
 * ESP-IDF v5.x `esp_adc/adc_continuous.h`: one ADC1 channel in a one-entry pattern,
 * ADC_CONV_SINGLE_UNIT_1, 12 dB attenuation (input range ~0.15-2.45 V on ESP32), maximum bit
 * width.  The driver fills a pool of conversion frames from DMA and calls on_conv_done (ISR)
 * per frame; the capture task, woken by a notification, reads every completed frame with
 * adc_continuous_read(timeout 0), keeps the results of our channel and pushes their 12-bit
 * codes into a lock-free ring (ew_spsc.h).  Nothing here ever waits for the consumer:
 *  - ring full           -> the codes that do not fit are dropped and counted;
 *  - driver pool full    -> on_pool_ovf (ISR) counts one frame of lost samples.
 * Result layout differs by chip (ESP-IDF's continuous_read example and hal/adc_types.h):
 * ESP32 stores 2-byte TYPE1 results (12-bit data, 4-bit channel), ESP32-S3/C3 4-byte TYPE2
 * results (12-bit data, channel, unit); SOC_ADC_DIGI_RESULT_BYTES is the stride.
 *
 * Rate check: the ESP32's continuous mode is known to deliver fewer samples than
 * sample_freq_hz asks for (about 0.8x on some ESP-IDF 5.x releases, espressif/esp-idf
 * issues 10586, 10612, 16768).  The capture task therefore counts the codes it receives over
 * the first EW_ADC_CAL_US, and if the rate is off by more than 1/64 it reprograms
 * sample_freq_hz scaled by requested/measured (at most EW_ADC_CAL_TRIES times) and logs the
 * result.  The decimator assumes an exact factor x 16 kHz, so a wrong rate would shift every
 * mel band; the measured rate is in the counters (and the log) for the host to check.
 */
#include <string.h>

#include "esp_adc/adc_continuous.h"
#include "esp_attr.h"
#include "esp_log.h"
#include "esp_task_wdt.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"
#include "soc/soc_caps.h"

#include "ew_esp32.h"
#include "ew_spsc.h"

static const char *TAG = "ew_adc";

/** Ring of 12-bit codes: 16384 x 2 bytes = 32 KiB = 512 ms at 32 kHz.  It must cover the
 *  longest time the processing task can be busy (one TFLM invoke, estimated <= 250 ms on the
 *  ESP32, see docs/hardware.md) with margin. */
#define EW_ADC_RING_SAMPLES 16384u
/** Conversion results per DMA frame: 256 (8 ms at 32 kHz). */
#define EW_ADC_FRAME_RESULTS 256u
#define EW_ADC_FRAME_BYTES (EW_ADC_FRAME_RESULTS * SOC_ADC_DIGI_RESULT_BYTES)
/** Driver pool: 8 frames (64 ms) between the DMA ISR and the capture task. */
#define EW_ADC_POOL_BYTES (8u * EW_ADC_FRAME_BYTES)
#define EW_ADC_CAL_US 2000000 /**< rate measurement window */
#define EW_ADC_CAL_TRIES 2    /**< rate corrections attempted */
#define EW_ADC_TASK_STACK 4096
#define EW_ADC_TASK_PRIO (configMAX_PRIORITIES - 2) /**< above everything of ours */

#if CONFIG_IDF_TARGET_ESP32
#define EW_ADC_FORMAT ADC_DIGI_OUTPUT_FORMAT_TYPE1
#define EW_ADC_RES_CHANNEL(p) ((p)->type1.channel)
#define EW_ADC_RES_DATA(p) ((p)->type1.data)
#define EW_ADC_RES_UNIT_OK(p) (1)
#else
#define EW_ADC_FORMAT ADC_DIGI_OUTPUT_FORMAT_TYPE2
#define EW_ADC_RES_CHANNEL(p) ((p)->type2.channel)
#define EW_ADC_RES_DATA(p) ((p)->type2.data)
#define EW_ADC_RES_UNIT_OK(p) ((p)->type2.unit == 0) /* 0 = ADC1 */
#endif

static uint16_t s_ring_buf[EW_ADC_RING_SAMPLES];
static ew_spsc_t s_ring;
static adc_continuous_handle_t s_adc;
static adc_channel_t s_channel;
static TaskHandle_t s_capture_task;
static ew_adc_stats_t s_stats;       /* written by the capture task only ... */
static volatile uint32_t s_pool_ovf; /* ... except these, written by the ADC ISR */
static volatile uint32_t s_isr_frames;

/* ISR: one conversion frame is complete.  Wake the capture task. */
static bool IRAM_ATTR on_conv_done(adc_continuous_handle_t handle,
                                   const adc_continuous_evt_data_t *edata, void *user_data) {
    (void)handle;
    (void)edata;
    (void)user_data;
    BaseType_t woken = pdFALSE;
    s_isr_frames++;
    if (s_capture_task != NULL) {
        vTaskNotifyGiveFromISR(s_capture_task, &woken);
    }
    return woken == pdTRUE;
}

/* ISR: the driver's pool is full, the newest frame is lost (the task fell behind). */
static bool IRAM_ATTR on_pool_ovf(adc_continuous_handle_t handle,
                                  const adc_continuous_evt_data_t *edata, void *user_data) {
    (void)handle;
    (void)edata;
    (void)user_data;
    s_pool_ovf++;
    return false;
}

static esp_err_t adc_configure(uint32_t rate_hz) {
    adc_digi_pattern_config_t pattern = {
        .atten = ADC_ATTEN_DB_12,
        .channel = (uint8_t)s_channel,
        .unit = ADC_UNIT_1,
        .bit_width = SOC_ADC_DIGI_MAX_BITWIDTH,
    };
    adc_continuous_config_t cfg = {
        .pattern_num = 1,
        .adc_pattern = &pattern,
        .sample_freq_hz = rate_hz,
        .conv_mode = ADC_CONV_SINGLE_UNIT_1,
        .format = EW_ADC_FORMAT,
    };
    esp_err_t err = adc_continuous_config(s_adc, &cfg);
    if (err == ESP_OK) {
        s_stats.rate_hz_requested = rate_hz;
    }
    return err;
}

/* Parse n bytes of conversion results and push one code per result.  A result that names
 * another channel / unit (ESP-IDF reports them occasionally on the S3, espressif/esp-idf
 * issue #14690) still stands for one sampling instant: it is replaced by the previous code
 * and counted in bad_results, so the time base is kept.  Capture task only. */
static void take_results(const uint8_t *buf, uint32_t n) {
    static uint16_t last = 1u << 11; /* mid-scale until the first valid result */
    uint16_t codes[EW_ADC_FRAME_RESULTS];
    size_t k = 0;
    for (uint32_t i = 0; i + SOC_ADC_DIGI_RESULT_BYTES <= n && k < EW_ADC_FRAME_RESULTS;
         i += SOC_ADC_DIGI_RESULT_BYTES) {
        const adc_digi_output_data_t *p = (const adc_digi_output_data_t *)(const void *)&buf[i];
        if (EW_ADC_RES_CHANNEL(p) == (uint32_t)s_channel && EW_ADC_RES_UNIT_OK(p)) {
            last = (uint16_t)(EW_ADC_RES_DATA(p) & 0x0FFFu); /* 12-bit unsigned code */
        } else {
            s_stats.bad_results++;
        }
        codes[k++] = last;
    }
    size_t put = ew_spsc_push(&s_ring, codes, k);
    s_stats.samples += (uint32_t)put;
    if (put < k) {
        s_stats.dropped_samples += (uint32_t)(k - put);
        s_stats.ring_overruns++;
    }
}

typedef struct {
    int64_t t0_us;   /* start of the measurement window; 0 = not started */
    uint32_t count0; /* codes received (kept + dropped) at t0 */
    int tries;
    bool done;
} rate_check_t;

/* Called by the capture task after each batch; may reprogram the ADC rate. */
static void rate_check(rate_check_t *rc, uint32_t target_hz) {
    if (rc->done) {
        return;
    }
    uint32_t count = s_stats.samples + s_stats.dropped_samples;
    int64_t now = esp_timer_get_time();
    if (rc->t0_us == 0) {
        rc->t0_us = now;
        rc->count0 = count;
        return;
    }
    int64_t dt = now - rc->t0_us;
    if (dt < EW_ADC_CAL_US) {
        return;
    }
    uint32_t measured = (uint32_t)(((int64_t)(count - rc->count0) * 1000000 + dt / 2) / dt);
    s_stats.rate_hz_measured = measured;
    uint32_t err = measured > target_hz ? measured - target_hz : target_hz - measured;
    if (err <= target_hz / 64u) {
        ESP_LOGI(TAG, "ADC rate %u Hz (target %u, programmed %u)", (unsigned)measured,
                 (unsigned)target_hz, (unsigned)s_stats.rate_hz_requested);
        rc->done = true;
        return;
    }
    if (rc->tries >= EW_ADC_CAL_TRIES || measured == 0) {
        ESP_LOGE(TAG, "ADC rate %u Hz, target %u: giving up, features will be off",
                 (unsigned)measured, (unsigned)target_hz);
        rc->done = true;
        return;
    }
    uint64_t corrected = (uint64_t)s_stats.rate_hz_requested * target_hz / measured;
    if (corrected < SOC_ADC_SAMPLE_FREQ_THRES_LOW) {
        corrected = SOC_ADC_SAMPLE_FREQ_THRES_LOW;
    }
    if (corrected > SOC_ADC_SAMPLE_FREQ_THRES_HIGH) {
        corrected = SOC_ADC_SAMPLE_FREQ_THRES_HIGH;
    }
    ESP_LOGW(TAG, "ADC rate %u Hz, target %u: reprogramming %u -> %u Hz", (unsigned)measured,
             (unsigned)target_hz, (unsigned)s_stats.rate_hz_requested, (unsigned)corrected);
    rc->tries++;
    /* The restart loses a few ms of audio; the gate re-seeds from the background. */
    if (adc_continuous_stop(s_adc) != ESP_OK || adc_configure((uint32_t)corrected) != ESP_OK ||
        adc_continuous_start(s_adc) != ESP_OK) {
        ESP_LOGE(TAG, "ADC reconfiguration failed");
        rc->done = true;
        return;
    }
    rc->t0_us = 0;
}

typedef struct {
    int gpio;
    uint32_t rate_hz;
    volatile int state; /* 0 starting, 1 running, 2 failed */
    volatile esp_err_t err;
} capture_start_t;

/* Driver setup, run by the capture task itself so that the ADC interrupt is allocated on
 * the capture task's core (esp_intr_alloc uses the calling core). */
static esp_err_t adc_setup(int gpio, uint32_t rate_hz) {
    adc_unit_t unit;
    esp_err_t err = adc_continuous_io_to_channel(gpio, &unit, &s_channel);
    if (err != ESP_OK || unit != ADC_UNIT_1) {
        ESP_LOGE(TAG, "GPIO%d is not an ADC1 pin", gpio);
        return ESP_ERR_INVALID_ARG;
    }
    adc_continuous_handle_cfg_t hcfg = {
        .max_store_buf_size = EW_ADC_POOL_BYTES,
        .conv_frame_size = EW_ADC_FRAME_BYTES,
    };
    err = adc_continuous_new_handle(&hcfg, &s_adc);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "adc_continuous_new_handle: %s", esp_err_to_name(err));
        return err;
    }
    err = adc_configure(rate_hz);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "adc_continuous_config: %s", esp_err_to_name(err));
        return err;
    }
    adc_continuous_evt_cbs_t cbs = {
        .on_conv_done = on_conv_done,
        .on_pool_ovf = on_pool_ovf,
    };
    err = adc_continuous_register_event_callbacks(s_adc, &cbs, NULL);
    if (err == ESP_OK) {
        err = adc_continuous_start(s_adc);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "ADC start: %s", esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "capturing GPIO%d (ADC1 channel %d) at %u Hz, %u-result frames", gpio,
             (int)s_channel, (unsigned)rate_hz, (unsigned)EW_ADC_FRAME_RESULTS);
    return ESP_OK;
}

static void capture_task(void *arg) {
    capture_start_t *start = (capture_start_t *)arg;
    const uint32_t target_hz = start->rate_hz;
    static uint8_t buf[EW_ADC_FRAME_BYTES];
    rate_check_t rc = { 0 };
    uint32_t pool_seen = 0;
    bool stall_logged = false;

    s_capture_task = xTaskGetCurrentTaskHandle(); /* before the first on_conv_done */
    esp_err_t err = adc_setup(start->gpio, target_hz);
    start->err = err;
    start->state = err == ESP_OK ? 1 : 2; /* `start` is not ours after this */
    if (err != ESP_OK) {
        s_capture_task = NULL;
        vTaskDelete(NULL);
        return;
    }
    int64_t last_data_us = esp_timer_get_time();
    if (esp_task_wdt_add(NULL) != ESP_OK) {
        ESP_LOGW(TAG, "task watchdog not available");
    }
    for (;;) {
        ulTaskNotifyTake(pdTRUE, pdMS_TO_TICKS(100));
        esp_task_wdt_reset();
        bool got = false;
        for (;;) {
            uint32_t n = 0;
            err = adc_continuous_read(s_adc, buf, sizeof buf, &n, 0);
            if (err != ESP_OK || n == 0) {
                break; /* ESP_ERR_TIMEOUT: pool empty */
            }
            take_results(buf, n);
            got = true;
        }
        /* on_pool_ovf: one frame of samples lost per event */
        uint32_t ovf = s_pool_ovf;
        if (ovf != pool_seen) {
            uint32_t d = ovf - pool_seen;
            s_stats.pool_overflows += d;
            s_stats.dropped_samples += d * EW_ADC_FRAME_RESULTS;
            pool_seen = ovf;
        }
        s_stats.conv_frames = s_isr_frames;
        int64_t now = esp_timer_get_time();
        if (got) {
            last_data_us = now;
            stall_logged = false;
            ew_esp32_notify_consumer();
            rate_check(&rc, target_hz);
        } else if (!stall_logged && now - last_data_us > 1000000) {
            ESP_LOGE(TAG, "no ADC data for 1 s");
            stall_logged = true;
        }
    }
}

esp_err_t ew_adc_start(int gpio, uint32_t rate_hz, BaseType_t core) {
    if (rate_hz < SOC_ADC_SAMPLE_FREQ_THRES_LOW || rate_hz > SOC_ADC_SAMPLE_FREQ_THRES_HIGH) {
        ESP_LOGE(TAG, "ADC rate %u Hz outside %u..%u", (unsigned)rate_hz,
                 (unsigned)SOC_ADC_SAMPLE_FREQ_THRES_LOW, (unsigned)SOC_ADC_SAMPLE_FREQ_THRES_HIGH);
        return ESP_ERR_INVALID_ARG;
    }
    if (ew_spsc_init(&s_ring, s_ring_buf, EW_ADC_RING_SAMPLES) != 0) {
        return ESP_ERR_INVALID_ARG;
    }
    capture_start_t start = { .gpio = gpio, .rate_hz = rate_hz, .state = 0, .err = ESP_OK };
    if (xTaskCreatePinnedToCore(capture_task, "ew_capture", EW_ADC_TASK_STACK, &start,
                                EW_ADC_TASK_PRIO, NULL, core) != pdPASS) {
        return ESP_ERR_NO_MEM;
    }
    /* The capture task reports the driver setup; poll (our own task notifications carry
     * data-ready signals, so they cannot be used for this). */
    for (int ms = 0; start.state == 0 && ms < 2000; ms++) {
        vTaskDelay(pdMS_TO_TICKS(1));
    }
    if (start.state == 0) {
        ESP_LOGE(TAG, "ADC setup did not finish"); /* `start` must stay valid: never */
        for (;;) {                                 /* return while the task may use it */
            vTaskDelay(pdMS_TO_TICKS(1000));
            if (start.state != 0) {
                break;
            }
        }
    }
    return start.err;
}

size_t ew_adc_read(uint16_t *dst, size_t max) { return ew_spsc_pop(&s_ring, dst, max); }

size_t ew_adc_pending(void) { return ew_spsc_level(&s_ring); }

void ew_adc_get_stats(ew_adc_stats_t *out) {
    /* Word-sized fields written by one task: each is read atomically; the set may be a
     * few microseconds inconsistent, which is fine for STATUS counters. */
    *out = s_stats;
}
