"""Host checks of the ESP32 firmware (firmware/src), which cannot be cross-compiled here.

What is checked without the ESP-IDF toolchain:
  * firmware/src/CMakeLists.txt lists every source (the exported model's C array included)
    and requires the ESP-IDF components whose headers the sources include;
  * every quoted #include resolves to a project file or to a known ESP-IDF / TFLM header;
  * every CONFIG_EW_* symbol used is defined in Kconfig.projbuild, and the default microphone
    pins are ADC1 pins of their chip;
  * main.c, the ESP32 port and the TFLM glue compile (-Wall -Wextra -Werror) against stub
    ESP-IDF / FreeRTOS / TFLM headers that declare the documented v5.3 signatures, with the
    real core headers (ew_app.h, ew_port.h, ...) and the real generated model header when
    firmware/model has one: this catches mismatches between the port and the core's API;
  * the lock-free capture ring (port_esp32/ew_spsc.h) under a real producer and consumer
    thread: order preserved, nothing lost or duplicated, drops reported exactly.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "firmware" / "src"
CORE_INC = ROOT / "firmware" / "lib" / "ewcore" / "include"
MODEL = ROOT / "firmware" / "model"
SOURCE_SUFFIXES = (".c", ".cc", ".cpp")

# Headers of ESP-IDF v5.3, FreeRTOS and esp-tflite-micro the firmware may include, with the
# ESP-IDF component that provides them (None: common requirement or managed component).
KNOWN_HEADERS = {
    "esp_log.h": None,
    "esp_err.h": None,
    "sdkconfig.h": None,
    "esp_attr.h": None,
    "esp_system.h": None,
    "esp_mac.h": None,
    "esp_heap_caps.h": None,
    "soc/soc_caps.h": None,
    "freertos/FreeRTOS.h": None,
    "freertos/task.h": None,
    "freertos/semphr.h": None,
    "freertos/stream_buffer.h": None,
    "esp_task_wdt.h": None,
    "esp_timer.h": "esp_timer",
    "esp_adc/adc_continuous.h": "esp_adc",
    "driver/uart.h": "driver",
    "driver/usb_serial_jtag.h": "driver",
    "driver/gpio.h": "driver",
    "nvs.h": "nvs_flash",
    "nvs_flash.h": "nvs_flash",
    "tensorflow/lite/micro/micro_interpreter.h": None,
    "tensorflow/lite/micro/micro_mutable_op_resolver.h": None,
    "tensorflow/lite/micro/system_setup.h": None,
    "tensorflow/lite/schema/schema_generated.h": None,
}
GENERATED_MODEL_HEADERS = ("ew_model.h", "ew_model_ops.h")


def sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*") if p.suffix in SOURCE_SUFFIXES)


def cmake_register_args() -> dict[str, list[str]]:
    text = "\n".join(
        line.split("#", 1)[0] for line in (SRC / "CMakeLists.txt").read_text().splitlines()
    )
    m = re.search(r"idf_component_register\s*\(([^)]*)\)", text)
    assert m, "no idf_component_register() in firmware/src/CMakeLists.txt"
    out: dict[str, list[str]] = {}
    key = None
    for tok in re.findall(r'"[^"]*"|\S+', m.group(1)):
        if re.fullmatch(r"[A-Z_]+", tok):
            key = tok
            out.setdefault(key, [])
        else:
            assert key, tok
            out[key].append(tok.strip('"'))
    return out


def includes(path: Path) -> list[tuple[str, str]]:
    """(kind, name) of every #include: kind '"' or '<'."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


# ----------------------------------------------------------------------------- build files


def test_cmakelists_lists_every_source_and_the_model():
    args = cmake_register_args()
    listed = {(SRC / s).resolve() for s in args["SRCS"]}
    on_disk = {p.resolve() for p in sources()}
    assert on_disk <= listed, f"not in CMakeLists.txt: {sorted(on_disk - listed)}"
    assert (SRC / "../model/ew_model_data.c").resolve() in listed, (
        "the exported model array (../model/ew_model_data.c) must be compiled into the firmware"
    )
    assert "../model" in args["INCLUDE_DIRS"] and "." in args["INCLUDE_DIRS"]
    for s in args["SRCS"]:
        if not s.startswith("../model/"):
            assert (SRC / s).is_file(), f"CMakeLists.txt lists missing {s}"


def test_cmakelists_requires_the_components_it_includes():
    required = set(cmake_register_args().get("PRIV_REQUIRES", [])) | set(
        cmake_register_args().get("REQUIRES", [])
    )
    needed = set()
    for src in sources():
        for _kind, name in includes(src):
            comp = KNOWN_HEADERS.get(name)
            if comp:
                needed.add(comp)
    assert needed <= required, f"add to PRIV_REQUIRES: {sorted(needed - required)}"


def test_includes_resolve():
    """Quoted includes must be project files, generated model headers or known SDK headers."""
    search = [SRC, CORE_INC, MODEL]
    for src in sorted(SRC.rglob("*")):
        if src.suffix not in SOURCE_SUFFIXES + (".h",):
            continue
        for kind, name in includes(src):
            if kind == "<":
                continue  # C / C++ standard headers
            if name in KNOWN_HEADERS or name in GENERATED_MODEL_HEADERS:
                continue
            here = src.parent / name
            assert here.is_file() or any((d / name).is_file() for d in search), (
                f'{src.relative_to(ROOT)} includes unknown "{name}"'
            )


def test_tflm_glue_is_the_only_cxx():
    cxx = [p for p in sources() if p.suffix in (".cc", ".cpp")]
    assert [p.name for p in cxx] == ["tflm_glue.cc"]


def test_kconfig_defines_every_symbol_used():
    kconfig = (SRC / "Kconfig.projbuild").read_text(encoding="utf-8")
    defined = set(re.findall(r"^\s*config\s+(EW_\w+)", kconfig, flags=re.M))
    used = set()
    for src in sorted(SRC.rglob("*")):
        if src.suffix in SOURCE_SUFFIXES + (".h",):
            used |= set(re.findall(r"CONFIG_(EW_\w+)", src.read_text(encoding="utf-8")))
    assert used, "no CONFIG_EW_* used"
    assert used <= defined, f"undefined Kconfig symbols: {sorted(used - defined)}"


def test_kconfig_mic_defaults_are_adc1_pins():
    kconfig = (SRC / "Kconfig.projbuild").read_text(encoding="utf-8")
    block = kconfig[kconfig.index("config EW_MIC_GPIO") :]
    block = block[: block.index("\n    config ", 1)]
    defaults = dict(
        (t, int(v)) for v, t in re.findall(r"default\s+(\d+)\s+if\s+IDF_TARGET_(\w+)", block)
    )
    # ADC1 pads (ESP32 / S3 / C3 datasheets): ESP32 GPIO32-39, S3 GPIO1-10, C3 GPIO0-4
    adc1 = {"ESP32": range(32, 40), "ESP32S3": range(1, 11), "ESP32C3": range(0, 5)}
    assert set(defaults) == set(adc1)
    for target, pin in defaults.items():
        assert pin in adc1[target], f"{target}: GPIO{pin} is not an ADC1 pin"


def test_sdkconfig_firmware_defaults():
    text = (ROOT / "sdkconfig.defaults").read_text(encoding="utf-8")
    for line in (
        "CONFIG_ESP_TASK_WDT_PANIC=y",
        "CONFIG_NN_OPTIMIZED=y",
        "CONFIG_ESP_TASK_WDT_INIT=y",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, flags=re.M), line


# ----------------------------------------------------------------------------- host compile

STUBS = {
    "sdkconfig.h": """
        #pragma once
        #define CONFIG_IDF_TARGET_ESP32 1
        #define CONFIG_FREERTOS_HZ 1000
        #define CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ 240
        #define CONFIG_EW_BOARD_NAME "esp32dev"
        #define CONFIG_EW_MIC_GPIO 36
        #define CONFIG_EW_ADC_DECIM_FACTOR 2
        #define CONFIG_EW_ALARM_GPIO 2
        #define CONFIG_EW_ALARM_ACTIVE_HIGH 1
        #define CONFIG_EW_SERIAL_BAUD 921600
        #define CONFIG_EW_TFLM_ARENA_MARGIN 16384
    """,
    "esp_err.h": """
        #pragma once
        #include <stdint.h>
        typedef int esp_err_t;
        #define ESP_OK 0
        #define ESP_FAIL -1
        #define ESP_ERR_NO_MEM 0x101
        #define ESP_ERR_INVALID_ARG 0x102
        #define ESP_ERR_INVALID_STATE 0x103
        #define ESP_ERR_INVALID_SIZE 0x104
        #define ESP_ERR_NOT_FOUND 0x105
        #define ESP_ERR_TIMEOUT 0x107
        const char *esp_err_to_name(esp_err_t code);
        void esp_abort_on_error(esp_err_t e);
        #define ESP_ERROR_CHECK(x) do { esp_err_t e_ = (x); if (e_ != ESP_OK) esp_abort_on_error(e_); } while (0)
    """,
    "esp_log.h": """
        #pragma once
        #include <stdarg.h>
        #include <stdio.h>
        #include "esp_err.h"
        typedef int (*vprintf_like_t)(const char *, va_list);
        vprintf_like_t esp_log_set_vprintf(vprintf_like_t func);
        #define ESP_LOGE(tag, fmt, ...) printf("E %s: " fmt "\\n", tag, ##__VA_ARGS__)
        #define ESP_LOGW(tag, fmt, ...) printf("W %s: " fmt "\\n", tag, ##__VA_ARGS__)
        #define ESP_LOGI(tag, fmt, ...) printf("I %s: " fmt "\\n", tag, ##__VA_ARGS__)
    """,
    "esp_attr.h": "#pragma once\n#define IRAM_ATTR\n",
    "esp_system.h": """
        #pragma once
        #include "esp_err.h"
        typedef enum { ESP_RST_UNKNOWN, ESP_RST_POWERON, ESP_RST_EXT, ESP_RST_SW, ESP_RST_PANIC,
                       ESP_RST_INT_WDT, ESP_RST_TASK_WDT, ESP_RST_WDT, ESP_RST_DEEPSLEEP,
                       ESP_RST_BROWNOUT, ESP_RST_SDIO } esp_reset_reason_t;
        esp_reset_reason_t esp_reset_reason(void);
        void esp_restart(void) __attribute__((noreturn));
    """,
    "esp_mac.h": '#pragma once\n#include <stdint.h>\n#include "esp_err.h"\n'
    "esp_err_t esp_efuse_mac_get_default(uint8_t *mac);\n",
    "esp_heap_caps.h": """
        #pragma once
        #include <stddef.h>
        #include <stdint.h>
        #define MALLOC_CAP_8BIT (1 << 2)
        #define MALLOC_CAP_INTERNAL (1 << 11)
        #ifdef __cplusplus
        extern "C" {
        #endif
        void *heap_caps_aligned_alloc(size_t alignment, size_t size, uint32_t caps);
        size_t heap_caps_get_largest_free_block(uint32_t caps);
        #ifdef __cplusplus
        }
        #endif
    """,
    "esp_timer.h": """
        #pragma once
        #include <stdbool.h>
        #include <stdint.h>
        #include "esp_err.h"
        #ifdef __cplusplus
        extern "C" {
        #endif
        typedef struct esp_timer *esp_timer_handle_t;
        typedef void (*esp_timer_cb_t)(void *arg);
        typedef enum { ESP_TIMER_TASK, ESP_TIMER_ISR } esp_timer_dispatch_t;
        typedef struct { esp_timer_cb_t callback; void *arg; esp_timer_dispatch_t dispatch_method;
                         const char *name; bool skip_unhandled_events; } esp_timer_create_args_t;
        esp_err_t esp_timer_create(const esp_timer_create_args_t *args, esp_timer_handle_t *out);
        esp_err_t esp_timer_start_once(esp_timer_handle_t timer, uint64_t timeout_us);
        esp_err_t esp_timer_stop(esp_timer_handle_t timer);
        int64_t esp_timer_get_time(void);
        #ifdef __cplusplus
        }
        #endif
    """,
    "esp_task_wdt.h": """
        #pragma once
        #include "esp_err.h"
        #include "freertos/FreeRTOS.h"
        #include "freertos/task.h"
        esp_err_t esp_task_wdt_add(TaskHandle_t task_handle);
        esp_err_t esp_task_wdt_reset(void);
    """,
    "soc/soc_caps.h": """
        #pragma once
        #define SOC_ADC_DIGI_RESULT_BYTES (2)
        #define SOC_ADC_DIGI_DATA_BYTES_PER_CONV (4)
        #define SOC_ADC_DIGI_MAX_BITWIDTH (12)
        #define SOC_ADC_SAMPLE_FREQ_THRES_HIGH (2 * 1000 * 1000)
        #define SOC_ADC_SAMPLE_FREQ_THRES_LOW (20 * 1000)
    """,
    "freertos/FreeRTOS.h": """
        #pragma once
        #include <stdint.h>
        #include <stddef.h>
        typedef int BaseType_t;
        typedef unsigned int UBaseType_t;
        typedef uint32_t TickType_t;
        #define pdTRUE 1
        #define pdFALSE 0
        #define pdPASS 1
        #define portMAX_DELAY ((TickType_t)0xffffffffUL)
        #define configMAX_PRIORITIES 25
        #define portNUM_PROCESSORS 2
        #define tskNO_AFFINITY 0x7FFFFFFF
        #define pdMS_TO_TICKS(ms) ((TickType_t)(ms))
    """,
    "freertos/task.h": """
        #pragma once
        #include "FreeRTOS.h"
        typedef struct tskTaskControlBlock *TaskHandle_t;
        typedef void (*TaskFunction_t)(void *);
        BaseType_t xTaskCreatePinnedToCore(TaskFunction_t fn, const char *name, uint32_t stack,
                                           void *arg, UBaseType_t prio, TaskHandle_t *out,
                                           BaseType_t core);
        void vTaskDelete(TaskHandle_t t);
        void vTaskDelay(TickType_t ticks);
        TaskHandle_t xTaskGetCurrentTaskHandle(void);
        uint32_t ulTaskNotifyTake(BaseType_t clear, TickType_t wait);
        BaseType_t xTaskNotifyGive(TaskHandle_t t);
        void vTaskNotifyGiveFromISR(TaskHandle_t t, BaseType_t *woken);
    """,
    "freertos/semphr.h": """
        #pragma once
        #include "FreeRTOS.h"
        typedef struct QueueDefinition *SemaphoreHandle_t;
        SemaphoreHandle_t xSemaphoreCreateRecursiveMutex(void);
        BaseType_t xSemaphoreTakeRecursive(SemaphoreHandle_t m, TickType_t wait);
        BaseType_t xSemaphoreGiveRecursive(SemaphoreHandle_t m);
    """,
    "freertos/stream_buffer.h": """
        #pragma once
        #include "FreeRTOS.h"
        typedef struct StreamBufferDef_t *StreamBufferHandle_t;
        StreamBufferHandle_t xStreamBufferCreate(size_t size, size_t trigger);
        size_t xStreamBufferSend(StreamBufferHandle_t b, const void *data, size_t n, TickType_t w);
        size_t xStreamBufferReceive(StreamBufferHandle_t b, void *data, size_t n, TickType_t w);
    """,
    "esp_adc/adc_continuous.h": """
        #pragma once
        #include <stdbool.h>
        #include <stdint.h>
        #include "esp_err.h"
        #include "soc/soc_caps.h"
        typedef enum { ADC_UNIT_1, ADC_UNIT_2 } adc_unit_t;
        typedef enum { ADC_CHANNEL_0, ADC_CHANNEL_1, ADC_CHANNEL_2, ADC_CHANNEL_3, ADC_CHANNEL_4,
                       ADC_CHANNEL_5, ADC_CHANNEL_6, ADC_CHANNEL_7, ADC_CHANNEL_8,
                       ADC_CHANNEL_9 } adc_channel_t;
        typedef enum { ADC_ATTEN_DB_0, ADC_ATTEN_DB_2_5, ADC_ATTEN_DB_6, ADC_ATTEN_DB_12 } adc_atten_t;
        typedef enum { ADC_CONV_SINGLE_UNIT_1 = 1, ADC_CONV_SINGLE_UNIT_2 = 2 } adc_digi_convert_mode_t;
        typedef enum { ADC_DIGI_OUTPUT_FORMAT_TYPE1, ADC_DIGI_OUTPUT_FORMAT_TYPE2 } adc_digi_output_format_t;
        typedef struct { uint8_t atten; uint8_t channel; uint8_t unit; uint8_t bit_width; }
            adc_digi_pattern_config_t;
        typedef struct { union { struct { uint16_t data: 12; uint16_t channel: 4; } type1;
                                 uint16_t val; }; } adc_digi_output_data_t;
        typedef struct adc_continuous_ctx_t *adc_continuous_handle_t;
        typedef struct { uint32_t max_store_buf_size; uint32_t conv_frame_size;
                         struct { uint32_t flush_pool: 1; } flags; } adc_continuous_handle_cfg_t;
        typedef struct { uint32_t pattern_num; adc_digi_pattern_config_t *adc_pattern;
                         uint32_t sample_freq_hz; adc_digi_convert_mode_t conv_mode;
                         adc_digi_output_format_t format; } adc_continuous_config_t;
        typedef struct { uint8_t *conv_frame_buffer; uint32_t size; } adc_continuous_evt_data_t;
        typedef bool (*adc_continuous_callback_t)(adc_continuous_handle_t handle,
                      const adc_continuous_evt_data_t *edata, void *user_data);
        typedef struct { adc_continuous_callback_t on_conv_done; adc_continuous_callback_t on_pool_ovf; }
            adc_continuous_evt_cbs_t;
        esp_err_t adc_continuous_new_handle(const adc_continuous_handle_cfg_t *c, adc_continuous_handle_t *h);
        esp_err_t adc_continuous_config(adc_continuous_handle_t h, const adc_continuous_config_t *c);
        esp_err_t adc_continuous_register_event_callbacks(adc_continuous_handle_t h,
                      const adc_continuous_evt_cbs_t *cbs, void *user_data);
        esp_err_t adc_continuous_start(adc_continuous_handle_t h);
        esp_err_t adc_continuous_stop(adc_continuous_handle_t h);
        esp_err_t adc_continuous_read(adc_continuous_handle_t h, uint8_t *buf, uint32_t length_max,
                                      uint32_t *out_length, uint32_t timeout_ms);
        esp_err_t adc_continuous_io_to_channel(int io_num, adc_unit_t *unit, adc_channel_t *channel);
    """,
    "driver/uart.h": """
        #pragma once
        #include <stddef.h>
        #include <stdint.h>
        #include "esp_err.h"
        #include "freertos/FreeRTOS.h"
        typedef enum { UART_NUM_0, UART_NUM_1, UART_NUM_2 } uart_port_t;
        typedef enum { UART_DATA_5_BITS, UART_DATA_6_BITS, UART_DATA_7_BITS, UART_DATA_8_BITS } uart_word_length_t;
        typedef enum { UART_PARITY_DISABLE = 0, UART_PARITY_EVEN = 2, UART_PARITY_ODD = 3 } uart_parity_t;
        typedef enum { UART_STOP_BITS_1 = 1, UART_STOP_BITS_1_5 = 2, UART_STOP_BITS_2 = 3 } uart_stop_bits_t;
        typedef enum { UART_HW_FLOWCTRL_DISABLE = 0 } uart_hw_flowcontrol_t;
        typedef enum { UART_SCLK_APB = 1, UART_SCLK_DEFAULT = 1 } uart_sclk_t;
        typedef struct { int baud_rate; uart_word_length_t data_bits; uart_parity_t parity;
                         uart_stop_bits_t stop_bits; uart_hw_flowcontrol_t flow_ctrl;
                         uint8_t rx_flow_ctrl_thresh; uart_sclk_t source_clk; } uart_config_t;
        typedef void *QueueHandle_t;
        esp_err_t uart_driver_install(uart_port_t n, int rx_size, int tx_size, int queue_size,
                                      QueueHandle_t *queue, int intr_flags);
        esp_err_t uart_param_config(uart_port_t n, const uart_config_t *c);
        int uart_read_bytes(uart_port_t n, void *buf, uint32_t length, TickType_t wait);
        int uart_write_bytes(uart_port_t n, const void *src, size_t size);
        esp_err_t uart_wait_tx_done(uart_port_t n, TickType_t wait);
        esp_err_t uart_set_baudrate(uart_port_t n, uint32_t baud);
    """,
    "driver/usb_serial_jtag.h": """
        #pragma once
        #include <stddef.h>
        #include <stdint.h>
        #include "esp_err.h"
        typedef struct { uint32_t tx_buffer_size; uint32_t rx_buffer_size; } usb_serial_jtag_driver_config_t;
        esp_err_t usb_serial_jtag_driver_install(usb_serial_jtag_driver_config_t *cfg);
        int usb_serial_jtag_read_bytes(void *buf, uint32_t length, uint32_t ticks_to_wait);
        int usb_serial_jtag_write_bytes(const void *src, size_t size, uint32_t ticks_to_wait);
    """,
    "driver/gpio.h": """
        #pragma once
        #include <stdint.h>
        #include "esp_err.h"
        typedef int gpio_num_t;
        typedef enum { GPIO_MODE_DISABLE = 0, GPIO_MODE_INPUT = 1, GPIO_MODE_OUTPUT = 2 } gpio_mode_t;
        typedef enum { GPIO_PULLUP_DISABLE = 0, GPIO_PULLUP_ENABLE = 1 } gpio_pullup_t;
        typedef enum { GPIO_PULLDOWN_DISABLE = 0, GPIO_PULLDOWN_ENABLE = 1 } gpio_pulldown_t;
        typedef enum { GPIO_INTR_DISABLE = 0 } gpio_int_type_t;
        typedef struct { uint64_t pin_bit_mask; gpio_mode_t mode; gpio_pullup_t pull_up_en;
                         gpio_pulldown_t pull_down_en; gpio_int_type_t intr_type; } gpio_config_t;
        esp_err_t gpio_config(const gpio_config_t *c);
        esp_err_t gpio_set_level(gpio_num_t pin, uint32_t level);
    """,
    "nvs.h": """
        #pragma once
        #include <stddef.h>
        #include <stdint.h>
        #include "esp_err.h"
        #define ESP_ERR_NVS_BASE 0x1100
        #define ESP_ERR_NVS_NOT_FOUND (ESP_ERR_NVS_BASE + 0x02)
        #define ESP_ERR_NVS_NO_FREE_PAGES (ESP_ERR_NVS_BASE + 0x0d)
        #define ESP_ERR_NVS_NEW_VERSION_FOUND (ESP_ERR_NVS_BASE + 0x10)
        typedef uint32_t nvs_handle_t;
        typedef enum { NVS_READONLY, NVS_READWRITE } nvs_open_mode_t;
        esp_err_t nvs_open(const char *ns, nvs_open_mode_t mode, nvs_handle_t *out);
        esp_err_t nvs_get_blob(nvs_handle_t h, const char *key, void *out, size_t *length);
        esp_err_t nvs_set_blob(nvs_handle_t h, const char *key, const void *value, size_t length);
        esp_err_t nvs_erase_key(nvs_handle_t h, const char *key);
        esp_err_t nvs_commit(nvs_handle_t h);
        void nvs_close(nvs_handle_t h);
    """,
    "nvs_flash.h": '#pragma once\n#include "nvs.h"\nesp_err_t nvs_flash_init(void);\n'
    "esp_err_t nvs_flash_erase(void);\n",
    # TFLM: the declarations tflm_glue.cc uses, as in tflite-micro's micro_interpreter.h
    "tensorflow/lite/micro/micro_interpreter.h": """
        #pragma once
        #include <cstddef>
        #include <cstdint>
        #include "tensorflow/lite/schema/schema_generated.h"
        #define TFLITE_SCHEMA_VERSION (3)
        typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
        typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt32 = 2, kTfLiteUInt8 = 3,
                       kTfLiteInt64 = 4, kTfLiteInt16 = 7, kTfLiteInt8 = 9 } TfLiteType;
        typedef struct { int size; int data[8]; } TfLiteIntArray;
        typedef struct { float scale; int32_t zero_point; } TfLiteQuantizationParams;
        typedef union { int8_t *int8; uint8_t *uint8; float *f; void *raw; } TfLitePtrUnion;
        typedef struct { TfLiteType type; TfLitePtrUnion data; TfLiteIntArray *dims;
                         TfLiteQuantizationParams params; size_t bytes; } TfLiteTensor;
        namespace tflite {
        class MicroOpResolver { public: virtual ~MicroOpResolver() {} };
        class MicroResourceVariables;
        class MicroProfilerInterface;
        class MicroInterpreter {
         public:
          MicroInterpreter(const Model *model, const MicroOpResolver &op_resolver,
                           uint8_t *tensor_arena, size_t tensor_arena_size,
                           MicroResourceVariables *resource_variables = nullptr,
                           MicroProfilerInterface *profiler = nullptr,
                           bool preserve_all_tensors = false);
          TfLiteStatus AllocateTensors();
          TfLiteStatus Invoke();
          TfLiteTensor *input(size_t index);
          TfLiteTensor *output(size_t index);
          size_t inputs_size() const;
          size_t outputs_size() const;
          size_t arena_used_bytes() const;
        };
        }
    """,
    "tensorflow/lite/micro/micro_mutable_op_resolver.h": """
        #pragma once
        #include "tensorflow/lite/micro/micro_interpreter.h"
        namespace tflite {
        template <unsigned int tOpCount>
        class MicroMutableOpResolver : public MicroOpResolver {
         public:
          TfLiteStatus AddAdd() { return kTfLiteOk; }
          TfLiteStatus AddAveragePool2D() { return kTfLiteOk; }
          TfLiteStatus AddConcatenation() { return kTfLiteOk; }
          TfLiteStatus AddConv2D() { return kTfLiteOk; }
          TfLiteStatus AddDepthwiseConv2D() { return kTfLiteOk; }
          TfLiteStatus AddDequantize() { return kTfLiteOk; }
          TfLiteStatus AddFullyConnected() { return kTfLiteOk; }
          TfLiteStatus AddLogistic() { return kTfLiteOk; }
          TfLiteStatus AddMaxPool2D() { return kTfLiteOk; }
          TfLiteStatus AddMean() { return kTfLiteOk; }
          TfLiteStatus AddMul() { return kTfLiteOk; }
          TfLiteStatus AddPack() { return kTfLiteOk; }
          TfLiteStatus AddQuantize() { return kTfLiteOk; }
          TfLiteStatus AddRelu() { return kTfLiteOk; }
          TfLiteStatus AddRelu6() { return kTfLiteOk; }
          TfLiteStatus AddReshape() { return kTfLiteOk; }
          TfLiteStatus AddSoftmax() { return kTfLiteOk; }
          TfLiteStatus AddSplit() { return kTfLiteOk; }
          TfLiteStatus AddSplitV() { return kTfLiteOk; }
          TfLiteStatus AddSqueeze() { return kTfLiteOk; }
          TfLiteStatus AddStridedSlice() { return kTfLiteOk; }
          TfLiteStatus AddSub() { return kTfLiteOk; }
          TfLiteStatus AddTanh() { return kTfLiteOk; }
          TfLiteStatus AddUnpack() { return kTfLiteOk; }
          TfLiteStatus AddTranspose() { return kTfLiteOk; }
          TfLiteStatus AddPad() { return kTfLiteOk; }
          TfLiteStatus AddHardSwish() { return kTfLiteOk; }
          TfLiteStatus AddUnidirectionalSequenceLSTM() { return kTfLiteOk; }
          TfLiteStatus AddShape() { return kTfLiteOk; }
        };
        }
    """,
    "tensorflow/lite/micro/system_setup.h": "#pragma once\nnamespace tflite { void InitializeTarget(); }\n",
    "tensorflow/lite/schema/schema_generated.h": """
        #pragma once
        #include <cstdint>
        namespace tflite {
        struct Model { uint32_t version() const; };
        const Model *GetModel(const void *buf);
        }
    """,
}

STUB_MODEL_H = """
    /* test stub of the generated firmware/model/ew_model.h (contract names) */
    #ifndef EW_MODEL_H
    #define EW_MODEL_H
    #define EW_MODEL_SCHEMA_VERSION 1
    #define EW_MODEL_N_CLASSES 8
    #define EW_MODEL_LABELS { "gunshot", "glass_breaking", "scream", "siren", \\
        "fireworks_explosion", "baby_cry", "dog_bark", "other" }
    #define EW_MODEL_NEGATIVE_INDEX 7
    #define EW_MODEL_THRESHOLDS_Q8 { 141, 141, 141, 141, 141, 141, 141, 256 }
    #define EW_MODEL_INPUT_SCALE 0.75f
    #define EW_MODEL_INPUT_ZERO_POINT (-128)
    #define EW_MODEL_OUTPUT_SCALE 0.00390625f
    #define EW_MODEL_OUTPUT_ZERO_POINT (-128)
    #define EW_MODEL_INPUT_FRAMES 64
    #define EW_MODEL_INPUT_BANDS 40
    #define EW_MODEL_ARENA_BYTES 40960
    #define EW_MODEL_SHA256_STR "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    #define EW_MODEL_HASH8 { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 }
    #define EW_MODEL_FEATURE_HASH_STR "0"
    #define EW_MODEL_MIN_FW_VERSION_MAJOR 0
    #define EW_MODEL_MIN_FW_VERSION_MINOR 2
    #define EW_MODEL_MIN_FW_VERSION_PATCH 0
    #ifdef __cplusplus
    extern "C" {
    #endif
    extern const unsigned char ew_model_tflite[];
    extern const unsigned int ew_model_tflite_len;
    #ifdef __cplusplus
    }
    #endif
    #endif
"""
STUB_MODEL_OPS_H = """
    #pragma once
    #define EW_MODEL_OP_COUNT 3
    template <class R> static inline bool ew_model_register_ops(R &r) {
        return r.AddConv2D() == kTfLiteOk && r.AddFullyConnected() == kTfLiteOk &&
               r.AddSoftmax() == kTfLiteOk;
    }
"""


def _stub_dir(tmp_path: Path, real_model: bool) -> Path:
    d = tmp_path / "stubs"
    for name, text in STUBS.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    if not real_model:
        (d / "ew_model.h").write_text(textwrap.dedent(STUB_MODEL_H))
        (d / "ew_model_ops.h").write_text(textwrap.dedent(STUB_MODEL_OPS_H))
    return d


def _real_model() -> bool:
    return all((MODEL / h).is_file() for h in GENERATED_MODEL_HEADERS)


def _compile(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def cc():
    c = shutil.which("gcc") or shutil.which("cc")
    if c is None:
        pytest.skip("no host C compiler")
    return c


@pytest.mark.parametrize("model", ["stub", "real"])
@pytest.mark.parametrize("serial", ["uart", "usb_jtag"])
def test_firmware_c_compiles_on_host(tmp_path, cc, model, serial):
    """main.c + port_esp32/*.c against stub ESP-IDF headers and the real core headers."""
    if model == "real" and not _real_model():
        pytest.skip("firmware/model has no generated headers yet")
    stubs = _stub_dir(tmp_path, real_model=(model == "real"))
    flags = ["-DCONFIG_EW_SERIAL_USB_JTAG=1"] if serial == "usb_jtag" else []
    inc = [f"-I{stubs}", f"-I{SRC}", f"-I{CORE_INC}"] + ([f"-I{MODEL}"] if model == "real" else [])
    for p in sources():
        if p.suffix == ".c":  # compile (not only parse): -O2 enables the flow warnings
            _compile(
                [
                    cc,
                    "-std=gnu17",
                    "-O2",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-Wformat=2",
                    *flags,
                    *inc,
                    "-c",
                    str(p),
                    "-o",
                    str(tmp_path / (p.stem + ".o")),
                ]
            )


@pytest.mark.parametrize("model", ["stub", "real"])
def test_tflm_glue_compiles_on_host(tmp_path, model):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler")
    if model == "real" and not _real_model():
        pytest.skip("firmware/model has no generated headers yet")
    stubs = _stub_dir(tmp_path, real_model=(model == "real"))
    inc = [f"-I{stubs}", f"-I{SRC}", f"-I{CORE_INC}"] + ([f"-I{MODEL}"] if model == "real" else [])
    _compile(
        [
            cxx,
            "-std=gnu++17",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            *inc,
            "-c",
            str(SRC / "tflm_glue.cc"),
            "-o",
            str(tmp_path / "tflm_glue.o"),
        ]
    )


# ----------------------------------------------------------------------------- capture ring

SPSC_TEST = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "ew_spsc.h"

#define CAP 64u
#define TOTAL 2000000u
static uint16_t buf[CAP];
static ew_spsc_t ring;
static unsigned long long full_pushes;

static void *producer(void *arg) {
    (void)arg;
    uint32_t next = 0, seed = 12345;
    uint16_t chunk[48];
    while (next < TOTAL) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 48;
        if (n > TOTAL - next) n = TOTAL - next;
        for (size_t i = 0; i < n; i++) chunk[i] = (uint16_t)(next + i);
        size_t k = ew_spsc_push(&ring, chunk, n);
        if (k > n) { fprintf(stderr, "push returned %zu > %zu\n", k, n); exit(3); }
        if (k < n) full_pushes++;
        next += (uint32_t)k;          /* dropped codes are offered again: exact stream */
    }
    return NULL;
}

int main(void) {
    /* single-threaded semantics first */
    uint16_t b4[4], in[6] = {1, 2, 3, 4, 5, 6}, out[8];
    ew_spsc_t r;
    if (ew_spsc_init(&r, b4, 3) == 0) return 10;          /* not a power of two */
    if (ew_spsc_init(&r, b4, 4) != 0) return 11;
    if (ew_spsc_push(&r, in, 6) != 4) return 12;           /* full: 2 dropped */
    if (ew_spsc_level(&r) != 4) return 13;
    if (ew_spsc_pop(&r, out, 3) != 3 || out[0] != 1 || out[2] != 3) return 14;
    if (ew_spsc_push(&r, in + 4, 2) != 2) return 15;       /* wraps */
    if (ew_spsc_pop(&r, out, 8) != 3 || out[0] != 4 || out[1] != 5 || out[2] != 6) return 16;
    if (ew_spsc_pop(&r, out, 8) != 0) return 17;

    /* two threads */
    if (ew_spsc_init(&ring, buf, CAP) != 0) return 20;
    pthread_t t;
    pthread_create(&t, NULL, producer, NULL);
    uint32_t expect = 0;
    uint16_t got[40];
    while (expect < TOTAL) {
        size_t n = ew_spsc_pop(&ring, got, 1 + expect % 40);
        for (size_t i = 0; i < n; i++, expect++) {
            if (got[i] != (uint16_t)expect) {
                fprintf(stderr, "at %u got %u\n", expect, got[i]);
                return 21;
            }
        }
    }
    pthread_join(t, NULL);
    if (ew_spsc_level(&ring) != 0) return 22;
    printf("ok %llu\n", full_pushes);
    return 0;
}
"""


def test_spsc_ring_two_threads(tmp_path, cc):
    src = tmp_path / "spsc_test.c"
    src.write_text(SPSC_TEST)
    exe = tmp_path / "spsc_test"
    _compile(
        [
            cc,
            "-std=gnu11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
            f"-I{SRC / 'port_esp32'}",
            str(src),
            "-o",
            str(exe),
        ]
    )
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (res.returncode, res.stderr)
    assert res.stdout.startswith("ok")


# ----------------------------------------------------------------------------- RAM budget

#: static DRAM the firmware + core may use: the ESP32 allows at most 160 KiB of static DRAM
#: (ESP-IDF Programming Guide, "Memory Types"); ~20 KiB of it is ESP-IDF's own.
STATIC_RAM_BUDGET = 140 * 1024


def test_static_ram_fits_the_esp32_budget(tmp_path):
    """.data + .bss of main.c, the port and the core, compiled for rv32imc (ILP32, the same
    type sizes and alignments as the ESP32's Xtensa ABI) against the stub headers."""
    rv = shutil.which("riscv64-unknown-elf-gcc")
    size = shutil.which("riscv64-unknown-elf-size")
    if rv is None or size is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed (make setup installs it)")
    stubs = _stub_dir(tmp_path, real_model=_real_model())
    inc = [f"-I{stubs}", f"-I{SRC}", f"-I{CORE_INC}"] + ([f"-I{MODEL}"] if _real_model() else [])
    files = [p for p in sources() if p.suffix == ".c"] + sorted(
        (CORE_INC.parent / "src").glob("*.c")
    )
    objs = []
    for p in files:
        o = tmp_path / f"{p.parent.name}_{p.stem}.o"
        _compile(
            [
                rv,
                "-march=rv32imc",
                "-mabi=ilp32",
                "--specs=picolibc.specs",
                "-O2",
                "-std=gnu17",
                *inc,
                "-c",
                str(p),
                "-o",
                str(o),
            ]
        )
        objs.append(str(o))
    res = subprocess.run([size, "-t", *objs], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    text, data, bss = (int(v) for v in res.stdout.strip().splitlines()[-1].split()[:3])
    assert bss > 100_000, "the app state and the capture ring are expected in .bss"
    assert data + bss <= STATIC_RAM_BUDGET, f"static RAM {data + bss} bytes > {STATIC_RAM_BUDGET}"
