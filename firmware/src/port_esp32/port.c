/**
 * @file port.c
 * @brief The ESP32 implementation of ew_port_t (ew_port.h): the application layer (ew_app,
 *        shared with the host twin) reaches the hardware only through these functions.
 *
 * Every function runs in the processing task (ew_app is single-threaded).
 *   write        -> ew_serial_write (UART0 / USB-Serial-JTAG, under the TX lock)
 *   time_us      -> esp_timer_get_time
 *   perf_us      -> NULL (time_us is already wall-clock time on the device)
 *   classify     -> ew_tflm_classify (TFLM + ESP-NN)
 *   config_load  -> NVS blob (namespace "earwitness", key "cfg")
 *   config_save  -> NVS blob + commit
 *   alarm        -> GPIO pulse (esp_timer one-shot turns it off)
 *   set_baud     -> uart_set_baudrate after the TX FIFO drained
 *   reboot       -> flush, esp_restart
 *   log          -> ESP_LOGI (through the same TX lock, as a text line between frames)
 */
#include <string.h>

#include "esp_log.h"

#include "ew_esp32.h"
#include "ew_model.h"
#include "tflm_glue.h"

static const char *TAG = "ew_app";

static int port_write(void *ctx, const uint8_t *data, size_t n) {
    (void)ctx;
    return ew_serial_write(data, n) == n ? (int)n : -1;
}

static uint64_t port_time_us(void *ctx) {
    (void)ctx;
    return ew_board_time_us();
}

static int port_classify(void *ctx, const ew_window_t *w, const int8_t *features, uint8_t *scores,
                         uint8_t n_classes) {
    (void)ctx;
    (void)w;
    if (n_classes != (uint8_t)EW_MODEL_N_CLASSES) {
        return -1;
    }
    return ew_tflm_classify(features, scores) == EW_TFLM_OK ? 0 : -1;
}

static int port_config_load(void *ctx, uint8_t *buf, size_t cap) {
    (void)ctx;
    size_t len = 0;
    esp_err_t err = ew_nvs_load(buf, cap, &len);
    if (err == ESP_ERR_NOT_FOUND) {
        return 0;
    }
    return err == ESP_OK ? (int)len : -1;
}

static int port_config_save(void *ctx, const uint8_t *blob, size_t n) {
    (void)ctx;
    return ew_nvs_store(blob, n) == ESP_OK ? 0 : -1;
}

static void port_alarm(void *ctx, uint8_t class_index, uint32_t pulse_ms) {
    (void)ctx;
    (void)class_index;
    ew_board_alarm_pulse(pulse_ms);
}

static int port_set_baud(void *ctx, uint32_t baud) {
    (void)ctx;
    return ew_serial_set_baud(baud) == ESP_OK ? 0 : -1;
}

static void port_reboot(void *ctx) {
    (void)ctx;
    ew_board_reboot();
}

static void port_log(void *ctx, const char *line) {
    (void)ctx;
    ESP_LOGI(TAG, "%s", line);
}

void ew_esp32_port(ew_port_t *port) {
    memset(port, 0, sizeof *port);
    port->ctx = NULL;
    port->write = port_write;
    port->time_us = port_time_us;
    port->perf_us = NULL;
    port->classify = port_classify;
    port->config_load = port_config_load;
    port->config_save = port_config_save;
    port->alarm = port_alarm;
    port->set_baud = port_set_baud;
    port->reboot = port_reboot;
    port->log = port_log;
}
