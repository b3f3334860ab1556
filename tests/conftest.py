"""Shared test setup: make `tests/` (cbuild, helpers) and the repository root (tools,
training) importable, and provide the common skip markers and fixtures."""

import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent
for _p in (_TESTS, _TESTS.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tools.bench.cbuild import have_rv32  # noqa: E402

#: skip a test when the RISC-V cross compiler or qemu-system-riscv32 is missing
requires_rv32 = pytest.mark.skipif(
    not have_rv32(), reason="needs riscv64-unknown-elf-gcc + qemu-system-riscv32"
)


@pytest.fixture
def romsims():
    """`make(chip="esp32", **kw)` starts a tools.sim.romsim.RomSim on a pty; all are stopped
    after the test."""
    from tools.sim.romsim import RomSim

    started = []

    def make(chip="esp32", **kw):
        s = RomSim(chip, **kw).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
