/**
 * @file ew_port.h
 * @brief The node application's port: everything ew_app needs from the platform, as a struct
 *        of function pointers plus one context pointer.
 *
 * The same application code (ew_app*.c) runs in the ESP32 firmware (ESP-IDF port: UART / USB
 * writes, esp_timer, TFLM, NVS, GPIO, esp_restart) and in the simulated node on the host
 * (tools/twin.py: pty writes, sample clock, the tflite-micro interpreter, a JSON file, a log
 * line, re-init).  Everything that differs between the two lives behind this interface.
 *
 * Rules for port implementations:
 *  - Every function is called from the task that calls ew_app_* (the app is not reentrant
 *    and never calls the port from an interrupt).
 *  - No port function may call back into ew_app_* on the same app (in particular reboot():
 *    a host port that restarts the app in place must do so after ew_app_rx() returns).
 *  - Required: write, time_us, classify.  Optional (NULL allowed): perf_us, config_load,
 *    config_save, alarm, set_baud, reboot, log.
 */
#ifndef EW_PORT_H
#define EW_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "ew_node.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest persisted configuration blob (bytes); see ew_app.h "Persistence". */
#define EW_PORT_CONFIG_MAX 512u

typedef struct ew_port {
    /** Passed as the first argument of every function below. */
    void *ctx;

    /**
     * @brief Send n bytes (one whole encoded frame, delimiters included) to the host.
     * May block until the bytes are queued (UART TX FIFO / ring) but should not drop part of
     * a frame: a partial frame costs the host one CRC error.
     * @return n on success; a negative value on failure (counted in ew_app_stats_t.tx_errors;
     *         the frame is lost, the sequence number still advances, so the host sees a gap).
     */
    int (*write)(void *ctx, const uint8_t *data, size_t n);

    /**
     * @brief Monotonic time in microseconds (wraps modulo 2^64 only).  Drives the periodic
     * STATUS timer; also times the classify call when perf_us is NULL.
     * Firmware: esp_timer_get_time().  Twin: the sample clock (samples * 1e6 / 16000), or the
     * host's monotonic clock when paced in real time.
     */
    uint64_t (*time_us)(void *ctx);

    /**
     * @brief Optional: a wall-clock microsecond counter used only to time classify()
     * (STATUS inference_us_*).  NULL: time_us is used.  The twin sets it to the host's
     * monotonic clock so that inference times are real even when time_us is the sample clock.
     */
    uint64_t (*perf_us)(void *ctx);

    /**
     * @brief Run the model on one analysis window (the TFLM invoke on the device).
     * @param w          the window (start sample, trigger, kind), informational
     * @param features   EW_FRAMES_PER_WINDOW x EW_N_MELS int8 (frame-major), quantised as the
     *                   model's input tensor (ew_app_info_t.quant)
     * @param scores     out: n_classes Q0.8 probabilities (int8 softmax output + 128)
     * @param n_classes  number of scores to write (ew_app_info_t.n_classes)
     * @return 0 on success; non-zero on failure (no decision for the window; counted in the
     *         detector's classify_errors).
     */
    int (*classify)(void *ctx, const ew_window_t *w, const int8_t *features, uint8_t *scores,
                    uint8_t n_classes);

    /**
     * @brief Optional: read the persisted configuration blob (NVS blob on the device).
     * @return its length (1..cap) when present; 0 when nothing is stored; a negative value on
     *         a read error (the app then starts from the factory defaults).
     */
    int (*config_load)(void *ctx, uint8_t *buf, size_t cap);

    /**
     * @brief Optional: persist the configuration blob (n <= EW_PORT_CONFIG_MAX bytes),
     * replacing the previous one.  Called after every successful CONFIG_SET and CMD
     * FACTORY_RESET.
     * @return 0 on success; a negative value on failure (counted in stats.persist_errors).
     */
    int (*config_save)(void *ctx, const uint8_t *blob, size_t n);

    /**
     * @brief Optional: drive the alarm output (GPIO pin / LED) for pulse_ms milliseconds on a
     * detection of class_index (called with EVENT kind ONSET, when the class is in the
     * ALARM_CLASSES mask and ALARM_MS > 0).  Must not block for the pulse: start a timer.
     */
    void (*alarm)(void *ctx, uint8_t class_index, uint32_t pulse_ms);

    /**
     * @brief Optional: change the link baud rate.  Called after the CONFIG answer to a
     * CONFIG_SET BAUD has been written (the port should let the TX FIFO drain first), and at
     * init when a persisted baud differs from the default.  NULL: BAUD is accepted, stored and
     * has no effect (a pty has no baud rate).
     * @return 0 on success; a negative value if the rate is not supported (the SET was already
     *         answered; the failure is counted in stats.persist_errors and logged).
     */
    int (*set_baud)(void *ctx, uint32_t baud);

    /**
     * @brief Optional: restart the node (esp_restart() on the device; never returns there).
     * Called after the ACK to CMD REBOOT has been written.  If it returns (host port), the app
     * ignores all further input until ew_app_init() is called again; the port re-initialises
     * the app after the current ew_app_rx() call has returned.  NULL: REBOOT is answered
     * with ERROR UNSUPPORTED.
     */
    void (*reboot)(void *ctx);

    /**
     * @brief Optional: a diagnostic text line (ASCII, no newline, NUL terminated).  The
     * firmware may print it on the log console (outside frames); the twin prints it on stderr.
     */
    void (*log)(void *ctx, const char *line);
} ew_port_t;

#ifdef __cplusplus
}
#endif
#endif /* EW_PORT_H */
