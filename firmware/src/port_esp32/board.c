/**
 * @file board.c
 * @brief Board services of the ESP32 port: alarm pin, clock, reset reason, node id, reboot,
 *        and the processing task's wake-up.
 *
 * Alarm: a push-pull output (CONFIG_EW_ALARM_GPIO, active level CONFIG_EW_ALARM_ACTIVE_HIGH)
 * for an LED or a buzzer driver.  A pulse sets it active and arms a one-shot esp_timer that
 * sets it idle again, so the caller never waits; a new pulse restarts the timer.
 * ESP-IDF APIs: driver/gpio.h, esp_timer.h, esp_system.h (esp_reset_reason, esp_restart),
 * esp_mac.h (esp_efuse_mac_get_default).
 */
#include <string.h>

#include "driver/gpio.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#include "ew_esp32.h"

static const char *TAG = "ew_board";

static volatile TaskHandle_t s_consumer;
static esp_timer_handle_t s_alarm_timer;
static int s_alarm_gpio = -1;

#define EW_ALARM_ON (CONFIG_EW_ALARM_ACTIVE_HIGH ? 1 : 0)
#define EW_ALARM_OFF (CONFIG_EW_ALARM_ACTIVE_HIGH ? 0 : 1)

void ew_esp32_set_consumer(TaskHandle_t task) { s_consumer = task; }

void ew_esp32_notify_consumer(void) {
    TaskHandle_t c = s_consumer;
    if (c != NULL) {
        xTaskNotifyGive(c);
    }
}

static void alarm_off(void *arg) {
    (void)arg;
    gpio_set_level((gpio_num_t)s_alarm_gpio, EW_ALARM_OFF);
}

esp_err_t ew_board_init(void) {
    s_alarm_gpio = CONFIG_EW_ALARM_GPIO;
    if (s_alarm_gpio < 0) {
        ESP_LOGI(TAG, "alarm output disabled");
        return ESP_OK;
    }
    const gpio_config_t io = {
        .pin_bit_mask = 1ULL << s_alarm_gpio,
        .mode = GPIO_MODE_OUTPUT,
        .pull_up_en = GPIO_PULLUP_DISABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    esp_err_t err = gpio_config(&io);
    if (err == ESP_OK) {
        err = gpio_set_level((gpio_num_t)s_alarm_gpio, EW_ALARM_OFF);
    }
    if (err == ESP_OK) {
        const esp_timer_create_args_t targs = {
            .callback = alarm_off,
            .arg = NULL,
            .dispatch_method = ESP_TIMER_TASK,
            .name = "ew_alarm",
        };
        err = esp_timer_create(&targs, &s_alarm_timer);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "alarm GPIO%d: %s", s_alarm_gpio, esp_err_to_name(err));
        s_alarm_gpio = -1;
    }
    return err;
}

void ew_board_alarm_pulse(uint32_t ms) {
    if (s_alarm_gpio < 0 || s_alarm_timer == NULL || ms == 0) {
        return;
    }
    esp_timer_stop(s_alarm_timer); /* ESP_ERR_INVALID_STATE when not running: fine */
    gpio_set_level((gpio_num_t)s_alarm_gpio, EW_ALARM_ON);
    esp_timer_start_once(s_alarm_timer, (uint64_t)ms * 1000u);
}

uint64_t ew_board_time_us(void) { return (uint64_t)esp_timer_get_time(); }

uint8_t ew_board_reset_reason(void) {
    /* esp_reset_reason_t: ESP_RST_UNKNOWN 0, POWERON 1, EXT 2, SW 3, PANIC 4, INT_WDT 5,
     * TASK_WDT 6, WDT 7, DEEPSLEEP 8, BROWNOUT 9, SDIO 10 - the HELLO numbering
     * (docs/protocol.md); later ESP-IDF codes (USB, JTAG, ...) pass through unchanged. */
    int r = (int)esp_reset_reason();
    return (uint8_t)(r < 0 ? 0 : (r > 255 ? 255 : r));
}

void ew_board_node_id(uint8_t id[6]) {
    if (esp_efuse_mac_get_default(id) != ESP_OK) {
        memset(id, 0, 6);
    }
}

const char *ew_board_name(void) { return CONFIG_EW_BOARD_NAME; }

void ew_board_reboot(void) {
    ew_serial_flush(200);
    esp_restart();
}
