# earwitness: `make demo` (main job), `make test` (everything CI runs), `make bench` (figures).
# Also: `make twin` (simulated node on a pty), `make flash` (build + flash a board), `make demo-core`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
# two install stamps: the demo set (`make demo`, `make twin`, `make demo-core`) and the full set
# (tests, bench, training, flashing); `make test` after `make demo` installs only the remainder
DEMO_STAMP := $(VENV)/.installed-demo
FULL_STAMP := $(VENV)/.installed-full
PIP     := $(VPY) -m pip --disable-pip-version-check
# system packages of the test suite only (rv32imc/QEMU proof, libFuzzer); the demo needs none
APT_PKGS := gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc clang libclang-rt-14-dev libsndfile1 clang-format
CORE_SRCS := $(wildcard firmware/lib/ewcore/src/*.c firmware/lib/ewcore/src/*.h firmware/lib/ewcore/include/*.h tools/node/_ewcore_module.c)

.PHONY: setup setup-demo venv sysdeps test bench demo demo-core twin flash firmware-c3 train crossval gen check clean lint

# everything CI needs: system packages + the demo, dev and train extras
setup: sysdeps venv
	@$(MAKE) --no-print-directory $(FULL_STAMP)

# only what `make demo` runs: numpy, soundfile, soxr, pyserial, tqdm, tflite-micro, sed_eval, matplotlib
setup-demo: venv
	@$(MAKE) --no-print-directory $(DEMO_STAMP)

# (re)create .venv with $(PY); a .venv of another Python (or a broken one) is rebuilt, with one line
venv:
	@$(PY) tools/ensure_venv.py $(VENV)

# System packages for the rv32imc/QEMU proof and libFuzzer (Debian/Ubuntu). Installs only what
# is missing; needs root (CI runs as root) or passwordless sudo.
sysdeps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing system packages of the test suite:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(DEMO_STAMP): pyproject.toml setup.py $(CORE_SRCS)
	@echo "installing demo dependencies (numpy, soundfile, soxr, pyserial, tflite-micro, sed_eval, matplotlib) and building the C core..."
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[demo]'
	touch $@

$(FULL_STAMP): $(DEMO_STAMP) pyproject.toml setup.py
	@echo "installing the test, training and flashing dependencies (tensorflow-cpu, platformio, esptool, librosa, pytest, ...; several minutes)..."
	$(PIP) install -e '.[demo,dev,train]'
	touch $@

test: setup
	$(VPY) -m pytest -q

# style: ruff (pyproject.toml) on the Python, clang-format (.clang-format) on the hand-written C
# of the core and the ESP32 port (the generated ew_params.h / ew_tables.c are left out)
RUFF        ?= $(if $(wildcard $(VENV)/bin/ruff),$(VENV)/bin/ruff,ruff)
CLANG_FORMAT ?= clang-format
C_SOURCES = $(filter-out %/ew_params.h %/ew_tables.c %/ew_settings.h %/ew_settings.c,\
            $(shell find firmware/lib/ewcore firmware/src \( -name '*.c' -o -name '*.h' -o -name '*.cc' \)))
lint:
	$(RUFF) check .
	$(RUFF) format --check .
	$(CLANG_FORMAT) --dry-run -Werror $(C_SOURCES)

bench: setup
	$(VPY) -m tools.bench

# the main job (installs only the demo set): the simulated node (real C core + shipped int8 model in TFLM) on a pty,
# validated by tools/hil.py against the shipped reference recordings (report in build/hil/)
demo: setup-demo
	$(VPY) -m tools.demo_hil

# what the gate and the front end see on each shipped clip (no model)
demo-core: setup-demo
	$(VPY) -m tools.demo

# make twin [AUDIO="tests/audio --loop"]: a simulated node on a pty; tools take --port /dev/pts/N
twin: setup-demo
	$(VPY) -m tools.twin $(AUDIO)

# make flash [ENV=esp32dev | FIRMWARE=path] [PORT=/dev/ttyUSB0] [ALL=1]
flash: setup
	$(VPY) tools/flash.py $(if $(FIRMWARE),--firmware $(FIRMWARE),--env $(or $(ENV),esp32dev)) $(if $(PORT),--port $(PORT)) $(if $(ALL),--all)

# The firmware for the ESP32-C3, built with the real ESP-IDF (v5.3.2, as PlatformIO's espressif32
# 6.10.0) offline, by the bundle in $(ESP32C3_BUNDLE) (its README.md); outputs as PlatformIO
# leaves them (bootloader.bin, partitions.bin, firmware.bin, .elf, .map, size.txt) in
# build/firmware-c3/, which `tools/flash.py --firmware` takes.  Cache: $$EW_ESP32C3_CACHE
# (default ~/.cache/earwitness-esp32c3): ~17 min the first time on 2 cores, seconds after a change.
ESP32C3_BUNDLE ?= ../shared/esp32c3
FIRMWARE_C3 := build/firmware-c3
firmware-c3:
	$(if $(wildcard $(ESP32C3_BUNDLE)/build.sh),,$(error firmware-c3: no ESP32-C3 build bundle at $(ESP32C3_BUNDLE)/build.sh (set ESP32C3_BUNDLE=DIR); elsewhere the firmware is built with PlatformIO and internet access: pio run -e esp32-c3-devkitm-1))
	bash "$(ESP32C3_BUNDLE)/build.sh" "$(CURDIR)" "$(FIRMWARE_C3)"

# the shipped model from ../shared/data (train, quantise, parity checks, export to firmware/model)
DATA ?= ../shared/data
train: setup
	$(VPY) -m training ship --root $(DATA)

# 5-fold cross-validation through the node pipeline, DS-CNN vs CRNN (~50 min on 2 cores)
crossval: setup
	$(VPY) -m training crossval --csv $(DATA)/all_metadata.csv --root $(DATA) --json-out firmware/model/crossval.json --epochs 15

# regenerate the parameter header/tables, check the golden vectors against the reference and
# the model's generated C against firmware/model/model.tflite + manifest.json
gen: setup
	$(VPY) -m tools.gen_params
	$(VPY) -m tools.golden
	$(VPY) -m training export --check

clean:
	rm -rf build $(VENV) tools/node/_ewcore*.so *.egg-info
