# earwitness: `make demo` (main job), `make test` (everything CI runs), `make bench` (figures).
# Also: `make twin` (simulated node on a pty), `make flash` (build + flash a board), `make demo-core`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT_PKGS := gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc clang libclang-rt-14-dev libsndfile1

.PHONY: setup sysdeps test bench demo demo-core twin flash train crossval gen check clean

setup: sysdeps $(STAMP)

# System packages for the rv32imc/QEMU proof and libFuzzer (Debian/Ubuntu). Installs only what
# is missing; needs root (CI runs as root) or passwordless sudo.
sysdeps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml setup.py $(wildcard firmware/lib/ewcore/src/*.c firmware/lib/ewcore/src/*.h firmware/lib/ewcore/include/*.h)
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev,train]'
	touch $(STAMP)

test: setup
	$(VPY) -m pytest -q

bench: setup
	$(VPY) -m tools.bench

# the main job: the simulated node (real C core + shipped int8 model in TFLM) on a pty,
# validated by tools/hil.py against the shipped reference recordings (report in build/hil/)
demo: setup
	$(VPY) -m tools.demo_hil

# what the gate and the front end see on each shipped clip (no model)
demo-core: setup
	$(VPY) -m tools.demo

# make twin [AUDIO="tests/audio --loop"]: a simulated node on a pty; tools take --port /dev/pts/N
twin: setup
	$(VPY) -m tools.twin $(AUDIO)

# make flash [ENV=esp32dev | FIRMWARE=path] [PORT=/dev/ttyUSB0] [ALL=1]
flash: setup
	$(VPY) tools/flash.py $(if $(FIRMWARE),--firmware $(FIRMWARE),--env $(or $(ENV),esp32dev)) $(if $(PORT),--port $(PORT)) $(if $(ALL),--all)

# the shipped model from ../shared/data (train, quantise, parity checks, export to firmware/model)
DATA ?= ../shared/data
train: setup
	$(VPY) -m training ship --root $(DATA)

# 5-fold cross-validation through the node pipeline, DS-CNN vs CRNN (~50 min on 2 cores)
crossval: setup
	$(VPY) -m training crossval --csv $(DATA)/all_metadata.csv --root $(DATA) --json firmware/model/crossval.json --epochs 15

# regenerate the parameter header/tables, check the golden vectors against the reference and
# the model's generated C against firmware/model/model.tflite + manifest.json
gen: setup
	$(VPY) -m tools.gen_params
	$(VPY) -m tools.golden
	$(VPY) -m training export --check

clean:
	rm -rf build $(VENV) tools/_ewcore*.so *.egg-info
