/**
 * @file serial.c
 * @brief The node protocol's serial line: UART0 (default, the board's USB-UART bridge) or the
 *        USB-Serial/JTAG controller of the ESP32-S3 / ESP32-C3 (CONFIG_EW_SERIAL_USB_JTAG).
 *
 * TX: one lock (a recursive FreeRTOS mutex) serialises every writer: the processing task's
 *     frames and, through esp_log_set_vprintf(), every ESP_LOGx line of any task.  A frame or
 *     a log line is always written whole, so a log line can never land inside a frame (see
 *     docs/protocol.md, "Log text and the boot ROM").  The mutex is recursive so that a log
 *     line emitted from inside a driver call made under the lock cannot deadlock (it would
 *     then split that one frame, which the host's decoder survives).
 * RX: a task blocks in uart_read_bytes() / usb_serial_jtag_read_bytes() and moves the bytes
 *     into a FreeRTOS stream buffer (one writer, one reader), then wakes the processing task,
 *     which drains it with ew_serial_read() and feeds the protocol decoder.  The application
 *     stays single-threaded.  Bytes that do not fit are counted (ew_serial_rx_dropped()); the
 *     host's INJECT credits keep the line below that in normal use.
 * Baud changes (CONFIG key BAUD) wait for the TX FIFO to drain first (uart_wait_tx_done), so
 * the CONFIG answer still goes out at the old rate.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/stream_buffer.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#if CONFIG_EW_SERIAL_USB_JTAG
#include "driver/usb_serial_jtag.h"
#else
#include "driver/uart.h"
#endif

#include "ew_esp32.h"

static const char *TAG = "ew_serial";

#define EW_UART_PORT UART_NUM_0
#define EW_SERIAL_RX_DRIVER_BYTES 4096 /**< driver's own RX ring */
#define EW_SERIAL_TX_DRIVER_BYTES 8192 /**< driver's TX ring: ~90 ms at 921600 baud */
#define EW_SERIAL_RX_STREAM_BYTES \
    16384 /**< RX task -> processing task: covers one TFLM
                                              invoke (~250 ms) of INJECT traffic at 921600 */
#define EW_SERIAL_RX_CHUNK 256
#define EW_SERIAL_RX_TASK_STACK 3072
#define EW_SERIAL_RX_TASK_PRIO (configMAX_PRIORITIES - 3)
#define EW_SERIAL_LOG_LINE 256
#define EW_USB_WRITE_TIMEOUT_MS 50 /**< no host reading: drop instead of blocking */

static SemaphoreHandle_t s_tx_lock;
static StreamBufferHandle_t s_rx;
static volatile uint32_t s_rx_dropped;
#if CONFIG_EW_SERIAL_USB_JTAG
static uint32_t s_tx_dropped; /* bytes dropped while no host was reading the USB port */
#endif
static uint32_t s_baud;
static char s_log_line[EW_SERIAL_LOG_LINE]; /* guarded by s_tx_lock */

/* Write everything (driver level), caller holds the lock. */
static size_t raw_write(const uint8_t *data, size_t len) {
#if CONFIG_EW_SERIAL_USB_JTAG
    size_t done = 0;
    while (done < len) {
        int n = usb_serial_jtag_write_bytes(data + done, len - done,
                                            pdMS_TO_TICKS(EW_USB_WRITE_TIMEOUT_MS));
        if (n <= 0) {
            s_tx_dropped += (uint32_t)(len - done); /* host not reading: do not stall */
            break;
        }
        done += (size_t)n;
    }
    return done;
#else
    /* Copies into the driver's TX ring; blocks only while the ring is full. */
    int n = uart_write_bytes(EW_UART_PORT, data, len);
    return n < 0 ? 0 : (size_t)n;
#endif
}

size_t ew_serial_write(const uint8_t *data, size_t len) {
    if (s_tx_lock == NULL || data == NULL || len == 0) {
        return 0;
    }
    xSemaphoreTakeRecursive(s_tx_lock, portMAX_DELAY);
    size_t n = raw_write(data, len);
    xSemaphoreGiveRecursive(s_tx_lock);
    return n;
}

/* esp_log_set_vprintf() hook: format one log call and write it whole under the TX lock.
 * Must be re-entrant (any task may log); the lock makes the shared line buffer safe. */
static int log_vprintf(const char *fmt, va_list ap) {
    if (s_tx_lock == NULL) {
        return vprintf(fmt, ap);
    }
    xSemaphoreTakeRecursive(s_tx_lock, portMAX_DELAY);
    int n = vsnprintf(s_log_line, sizeof s_log_line, fmt, ap);
    if (n > 0) {
        size_t len = (size_t)n < sizeof s_log_line ? (size_t)n : sizeof s_log_line - 1;
        if ((size_t)n >= sizeof s_log_line) {
            s_log_line[len - 1] = '\n'; /* truncated line still ends the log line */
        }
        raw_write((const uint8_t *)s_log_line, len);
    }
    xSemaphoreGiveRecursive(s_tx_lock);
    return n;
}

void ew_serial_capture_logs(void) { esp_log_set_vprintf(log_vprintf); }

static void rx_task(void *arg) {
    (void)arg;
    static uint8_t chunk[EW_SERIAL_RX_CHUNK];
    for (;;) {
#if CONFIG_EW_SERIAL_USB_JTAG
        int n = usb_serial_jtag_read_bytes(chunk, sizeof chunk, pdMS_TO_TICKS(20));
#else
        int n = uart_read_bytes(EW_UART_PORT, chunk, sizeof chunk, pdMS_TO_TICKS(20));
#endif
        if (n <= 0) {
            continue;
        }
        size_t put = xStreamBufferSend(s_rx, chunk, (size_t)n, 0);
        if (put < (size_t)n) {
            s_rx_dropped += (uint32_t)((size_t)n - put);
        }
        ew_esp32_notify_consumer();
    }
}

esp_err_t ew_serial_start(uint32_t baud, BaseType_t core) {
    s_tx_lock = xSemaphoreCreateRecursiveMutex();
    s_rx = xStreamBufferCreate(EW_SERIAL_RX_STREAM_BYTES, 1);
    if (s_tx_lock == NULL || s_rx == NULL) {
        return ESP_ERR_NO_MEM;
    }
    esp_err_t err;
#if CONFIG_EW_SERIAL_USB_JTAG
    usb_serial_jtag_driver_config_t cfg = {
        .tx_buffer_size = EW_SERIAL_TX_DRIVER_BYTES,
        .rx_buffer_size = EW_SERIAL_RX_DRIVER_BYTES,
    };
    err = usb_serial_jtag_driver_install(&cfg);
    s_baud = 0;
    (void)baud;
#else
    const uart_config_t cfg = {
        .baud_rate = (int)baud,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    /* UART0 keeps the console pins (U0TXD/U0RXD of each target): no uart_set_pin(). */
    err = uart_driver_install(EW_UART_PORT, EW_SERIAL_RX_DRIVER_BYTES, EW_SERIAL_TX_DRIVER_BYTES, 0,
                              NULL, 0);
    if (err == ESP_OK) {
        err = uart_param_config(EW_UART_PORT, &cfg);
    }
    s_baud = baud;
#endif
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "serial driver: %s", esp_err_to_name(err));
        return err;
    }
    if (xTaskCreatePinnedToCore(rx_task, "ew_rx", EW_SERIAL_RX_TASK_STACK, NULL,
                                EW_SERIAL_RX_TASK_PRIO, NULL, core) != pdPASS) {
        return ESP_ERR_NO_MEM;
    }
    return ESP_OK;
}

size_t ew_serial_read(uint8_t *dst, size_t max) {
    if (s_rx == NULL) {
        return 0;
    }
    return xStreamBufferReceive(s_rx, dst, max, 0);
}

void ew_serial_flush(uint32_t timeout_ms) {
#if CONFIG_EW_SERIAL_USB_JTAG
    /* The host drains the USB FIFO at its own pace; give it a moment. */
    vTaskDelay(pdMS_TO_TICKS(timeout_ms < 50 ? timeout_ms : 50));
#else
    uart_wait_tx_done(EW_UART_PORT, pdMS_TO_TICKS(timeout_ms));
#endif
}

esp_err_t ew_serial_set_baud(uint32_t baud) {
#if CONFIG_EW_SERIAL_USB_JTAG
    (void)baud;
    return ESP_OK; /* USB: the rate is whatever the host opened the port with */
#else
    if (baud < 9600u || baud > 5000000u) {
        return ESP_ERR_INVALID_ARG;
    }
    xSemaphoreTakeRecursive(s_tx_lock, portMAX_DELAY);
    uart_wait_tx_done(EW_UART_PORT, pdMS_TO_TICKS(500)); /* answer leaves at the old rate */
    esp_err_t err = uart_set_baudrate(EW_UART_PORT, baud);
    if (err == ESP_OK) {
        s_baud = baud;
    }
    xSemaphoreGiveRecursive(s_tx_lock);
    return err;
#endif
}

uint32_t ew_serial_baud(void) { return s_baud; }

uint32_t ew_serial_rx_dropped(void) { return s_rx_dropped; }
