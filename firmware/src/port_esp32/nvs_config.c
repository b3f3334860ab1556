/**
 * @file nvs_config.c
 * @brief Persisted node configuration: one blob in NVS (namespace "earwitness", key "cfg").
 *
 * The application layer (ew_app) decides what the blob contains (a versioned, CRC-protected
 * list of CONFIG key/value records, see ew_app.h "Persistence") and validates it on load;
 * this file only stores and returns bytes.  A stored blob larger than the caller's buffer is
 * reported as ESP_ERR_INVALID_SIZE and ignored, so the node boots with the factory defaults
 * from the generated headers.  ESP-IDF API: nvs_flash.h / nvs.h (nvs_open, nvs_get_blob,
 * nvs_set_blob, nvs_commit, nvs_close).
 */
#include "esp_log.h"
#include "nvs.h"
#include "nvs_flash.h"

#include "ew_esp32.h"

static const char *TAG = "ew_nvs";
#define EW_NVS_NAMESPACE "earwitness"
#define EW_NVS_KEY "cfg"

esp_err_t ew_nvs_init(void) {
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        /* Partition full or written by a newer NVS format: start afresh (documented recovery). */
        ESP_LOGW(TAG, "NVS partition unusable (%s): erasing", esp_err_to_name(err));
        err = nvs_flash_erase();
        if (err == ESP_OK) {
            err = nvs_flash_init();
        }
    }
    return err;
}

esp_err_t ew_nvs_load(void *blob, size_t cap, size_t *len) {
    *len = 0;
    nvs_handle_t h;
    esp_err_t err = nvs_open(EW_NVS_NAMESPACE, NVS_READONLY, &h);
    if (err != ESP_OK) {
        /* A namespace that was never written reads as "not found". */
        return err == ESP_ERR_NVS_NOT_FOUND ? ESP_ERR_NOT_FOUND : err;
    }
    size_t stored = 0;
    err = nvs_get_blob(h, EW_NVS_KEY, NULL, &stored); /* length query */
    if (err == ESP_OK && stored > cap) {
        ESP_LOGW(TAG, "stored config is %u bytes, more than %u: ignored", (unsigned)stored,
                 (unsigned)cap);
        err = ESP_ERR_INVALID_SIZE;
    } else if (err == ESP_OK) {
        err = nvs_get_blob(h, EW_NVS_KEY, blob, &stored);
        if (err == ESP_OK) {
            *len = stored;
        }
    }
    nvs_close(h);
    return err == ESP_ERR_NVS_NOT_FOUND ? ESP_ERR_NOT_FOUND : err;
}

esp_err_t ew_nvs_store(const void *blob, size_t len) {
    nvs_handle_t h;
    esp_err_t err = nvs_open(EW_NVS_NAMESPACE, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_blob(h, EW_NVS_KEY, blob, len);
    if (err == ESP_OK) {
        err = nvs_commit(h);
    }
    nvs_close(h);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "storing config: %s", esp_err_to_name(err));
    }
    return err;
}

esp_err_t ew_nvs_erase(void) {
    nvs_handle_t h;
    esp_err_t err = nvs_open(EW_NVS_NAMESPACE, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_erase_key(h, EW_NVS_KEY);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        err = ESP_OK;
    }
    if (err == ESP_OK) {
        err = nvs_commit(h);
    }
    nvs_close(h);
    return err;
}
