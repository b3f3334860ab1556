"""Build and run small C programs against the portable core, on the host and on rv32imc/QEMU.

Used by the tests (golden vectors, protocol, fuzzing) and by the benchmarks.  The rv32imc
recipe is the ESP32-C3 ISA (32-bit, no FPU): RISC-V GCC + picolibc, semihosting crt0, run on
qemu-system-riscv32's `virt` machine with deterministic instruction counting.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "firmware" / "lib" / "ewcore"
CORE_INCLUDE = CORE / "include"
CORE_SOURCES = sorted((CORE / "src").glob("*.c"))
C_TESTS = ROOT / "tests" / "c"
BENCH_C = ROOT / "tools" / "bench" / "c"  # the rv32 benchmark programs (bench_*.c, ew_instret.h)
BUILD = ROOT / "build" / "ctests"

WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
RV32_CC = "riscv64-unknown-elf-gcc"
RV32_LAYOUT = [
    "-Wl,--defsym=__flash=0x80000000",
    "-Wl,--defsym=__flash_size=0x400000",
    "-Wl,--defsym=__ram=0x80400000",
    "-Wl,--defsym=__ram_size=0x400000",
    "-Wl,--defsym=__stack_size=0x10000",
]
RV32_FLAGS = [
    "-march=rv32imc",
    "-misa-spec=2.2",
    "-mabi=ilp32",
    "-O2",
    "--specs=picolibc.specs",
    "--oslib=semihost",
    "--crt0=semihost",
]
QEMU = "qemu-system-riscv32"


def have_rv32() -> bool:
    return shutil.which(RV32_CC) is not None and shutil.which(QEMU) is not None


def _key(parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, Path):
            h.update(p.read_bytes())
        else:
            h.update(str(p).encode())
    return h.hexdigest()[:16]


def build(
    name: str,
    sources,
    *,
    target: str = "host",
    extra_flags=(),
    include_dirs=(),
    cc: str | None = None,
) -> Path:
    """Compile `sources` + the core into an executable; cached on the content of all inputs."""
    sources = [Path(s) for s in sources] + CORE_SOURCES
    headers = sorted(CORE_INCLUDE.glob("*.h")) + sorted((CORE / "src").glob("*.h"))
    incs = [CORE_INCLUDE, C_TESTS, *map(Path, include_dirs)]
    if target == "host":
        cc = cc or os.environ.get("CC", "cc")
        flags = [*WARN, "-O2", "-g", *extra_flags]
        libs = ["-lm"]
    elif target == "rv32":
        cc = RV32_CC
        flags = [*WARN, *RV32_FLAGS, *RV32_LAYOUT, *extra_flags]
        libs = []
    else:
        raise ValueError(target)
    key = _key([*sources, *headers, cc, target, *flags])
    out_dir = BUILD / target
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / f"{name}-{key}{'.elf' if target == 'rv32' else ''}"
    if exe.exists():
        return exe
    cmd = [cc, *flags, *[f"-I{i}" for i in incs], "-o", str(exe), *map(str, sources), *libs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"compile failed ({target}):\n{' '.join(cmd)}\n{res.stderr}")
    return exe


def run(
    exe: Path, *, target: str = "host", args=(), stdin: bytes | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run a program built by build(); rv32 programs run under QEMU with -icount shift=0."""
    if target == "host":
        cmd = [str(exe), *args]
    else:
        cmd = [
            QEMU,
            "-M",
            "virt",
            "-cpu",
            "rv32",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-bios",
            "none",
            "-icount",
            "shift=0",
            "-kernel",
            str(exe),
            "-chardev",
            "stdio,id=semihost0",
            "-semihosting-config",
            "enable=on,target=native,chardev=semihost0",
        ]
        if args:
            cmd += ["-append", " ".join(args)]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
