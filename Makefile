# earwitness: `make demo` (main job), `make test` (everything CI runs), `make bench` (figures).
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT_PKGS := gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc clang libclang-rt-14-dev libsndfile1

.PHONY: setup sysdeps test bench demo gen check clean

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

$(STAMP): pyproject.toml setup.py $(wildcard firmware/lib/ewcore/src/*.c firmware/lib/ewcore/include/*.h)
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev,train]'
	touch $(STAMP)

test: setup
	$(VPY) -m pytest -q

bench: setup
	$(VPY) -m tools.bench

demo: setup
	$(VPY) -m tools.demo

# regenerate the parameter header/tables and check the golden vectors against the reference
gen: setup
	$(VPY) -m tools.gen_params
	$(VPY) -m tools.golden

clean:
	rm -rf build $(VENV) tools/_ewcore*.so *.egg-info
