/* earwitness node firmware entry point.
 *
 * Placeholder until the node firmware lands: it only reports which core configuration this
 * image was built with, so that a flashed node can be matched to the host tools (which read
 * the same firmware/lib/ewcore/ewcore.toml; see tools/params.py).
 */
#include "esp_log.h"
#include "sdkconfig.h"

#include "ew_params.h"

static const char *TAG = "earwitness";

void app_main(void)
{
    ESP_LOGI(TAG, "core config %s", EW_CONFIG_HASH_STR);
    ESP_LOGI(TAG, "audio %d Hz, frame %d samples, hop %d samples, %d mel bands",
             (int)EW_SAMPLE_RATE_HZ, (int)EW_FRAME_SAMPLES, (int)EW_HOP_SAMPLES,
             (int)EW_N_MELS);
#ifdef CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ
    ESP_LOGI(TAG, "cpu %d MHz, FreeRTOS tick %d Hz", (int)CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ,
             (int)CONFIG_FREERTOS_HZ);
#endif
    /* Returning deletes the main task; nothing else runs yet. */
}
