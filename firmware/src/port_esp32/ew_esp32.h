/**
 * @file ew_esp32.h
 * @brief The ESP32 drivers behind the node's port: ADC capture, serial line, NVS, board
 *        (alarm pin, clock, reset reason, node id, reboot).  Used only by firmware/src.
 *
 * Threading (see main.c):
 *  - capture task (core 0): ADC DMA frames -> 12-bit codes -> lock-free ring (ew_spsc.h);
 *  - serial RX task (core 0): UART / USB-Serial-JTAG bytes -> stream buffer;
 *  - processing task (core 1 on dual-core chips): drains both and runs the whole application
 *    (ew_app), the only caller of ew_serial_write() apart from the log hook, which takes the
 *    same lock, so frames and log lines never interleave on the wire.
 * Both producers wake the processing task with a task notification (ew_esp32_set_consumer).
 */
#ifndef EW_ESP32_H
#define EW_ESP32_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "ew_app.h"
#include "ew_port.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The task that producers notify when they have data for it (the processing task). */
void ew_esp32_set_consumer(TaskHandle_t task);
/** Wake the consumer (task context only). */
void ew_esp32_notify_consumer(void);

/* ----------------------------------------------------------------------------- the port */

/** Fill port with the ESP32 implementation of ew_port_t (port.c). */
void ew_esp32_port(ew_port_t *port);

/* ----------------------------------------------------------------------------- ADC capture */

/** Capture counters.  Written by the capture task / ADC ISR; read from anywhere. */
typedef struct {
    uint32_t conv_frames;       /**< DMA conversion frames reported by the driver */
    uint32_t samples;           /**< codes pushed into the ring */
    uint32_t dropped_samples;   /**< codes lost: ring full or driver pool overflow */
    uint32_t ring_overruns;     /**< pushes that did not fit completely */
    uint32_t pool_overflows;    /**< driver pool-full events (on_pool_ovf) */
    uint32_t bad_results;       /**< results naming another channel / unit (previous code
                                      repeated in their place) */
    uint32_t rate_hz_requested; /**< sample_freq_hz programmed (after rate correction) */
    uint32_t rate_hz_measured;  /**< from the sample count over the first seconds; 0 = not yet */
} ew_adc_stats_t;

/**
 * @brief Start the capture task, which sets up ADC1 continuous mode for one pin at rate_hz
 *        on its own core (so that the ADC interrupt lives there too); waits for the result.
 * @param gpio     ADC1-capable pin (GPIO36 = ADC1_CH0 on ESP32-WROOM)
 * @param rate_hz  conversion rate (EW_SAMPLE_RATE_HZ x decimation factor, e.g. 32000)
 * @param core     core to pin the capture task to (0; the only one on the ESP32-C3)
 * @return ESP_OK; ESP_ERR_INVALID_ARG (not an ADC1 pin, rate out of range); ESP_ERR_NO_MEM;
 *         ESP_ERR_NOT_FOUND (no free DMA / interrupt); other esp_err_t from the driver.
 */
esp_err_t ew_adc_start(int gpio, uint32_t rate_hz, BaseType_t core);

/** Consumer side: move up to max codes (12-bit, 0..4095) into dst; never blocks. */
size_t ew_adc_read(uint16_t *dst, size_t max);

/** Codes waiting in the ring. */
size_t ew_adc_pending(void);

/** Copy the counters. */
void ew_adc_get_stats(ew_adc_stats_t *out);

/* ----------------------------------------------------------------------------- serial */

/**
 * @brief Install the serial driver (UART0, or USB-Serial/JTAG when
 *        CONFIG_EW_SERIAL_USB_JTAG), the TX lock, the RX stream buffer and the RX task.
 * @return ESP_OK; ESP_ERR_NO_MEM; driver errors.
 */
esp_err_t ew_serial_start(uint32_t baud, BaseType_t core);

/** Write bytes (whole frame or log line) under the TX lock; blocks until queued. */
size_t ew_serial_write(const uint8_t *data, size_t len);

/** Consumer side: take up to max received bytes; never blocks. */
size_t ew_serial_read(uint8_t *dst, size_t max);

/** Wait until everything written has left the wire (or timeout_ms passed). */
void ew_serial_flush(uint32_t timeout_ms);

/** Change the baud rate after flushing (no-op on USB-Serial/JTAG).  ESP_ERR_INVALID_ARG
 *  outside 9600..5000000. */
esp_err_t ew_serial_set_baud(uint32_t baud);

/** Current baud rate (0 on USB-Serial/JTAG, whose rate is the host's business). */
uint32_t ew_serial_baud(void);

/** Route ESP_LOGx output through ew_serial_write (whole lines, under the TX lock). */
void ew_serial_capture_logs(void);

/** RX counters. */
uint32_t ew_serial_rx_dropped(void);

/* ----------------------------------------------------------------------------- NVS */

/** nvs_flash_init(), erasing the partition once if it is full or from a newer layout. */
esp_err_t ew_nvs_init(void);

/**
 * @brief Read the stored configuration blob (the application's format, <= cap bytes).
 * @param len  out: bytes read
 * @return ESP_OK; ESP_ERR_NOT_FOUND (none stored: use factory defaults);
 *         ESP_ERR_INVALID_SIZE (stored blob longer than cap: not ours, ignored); nvs_* errors.
 */
esp_err_t ew_nvs_load(void *blob, size_t cap, size_t *len);

/** Store the blob and commit.  ESP_OK or the nvs_* error. */
esp_err_t ew_nvs_store(const void *blob, size_t len);

/** Erase the stored configuration (factory reset). */
esp_err_t ew_nvs_erase(void);

/* ----------------------------------------------------------------------------- board */

/** Configure the alarm pin (CONFIG_EW_ALARM_GPIO; < 0 disables it). */
esp_err_t ew_board_init(void);

/** Drive the alarm pin active for ms milliseconds (restarts a running pulse). */
void ew_board_alarm_pulse(uint32_t ms);

/** Microseconds since boot (esp_timer, 64-bit). */
uint64_t ew_board_time_us(void);

/** esp_reset_reason() in HELLO numbering (0..10 as ESP-IDF; newer codes passed through). */
uint8_t ew_board_reset_reason(void);

/** The factory MAC address (6 bytes), the node id in HELLO. */
void ew_board_node_id(uint8_t id[6]);

/** Board name for HELLO: the PlatformIO env / IDF target, e.g. "esp32dev". */
const char *ew_board_name(void);

/** Flush the serial line and restart the chip (does not return). */
void ew_board_reboot(void);

#ifdef __cplusplus
}
#endif
#endif /* EW_ESP32_H */
