"""The setup path a new user takes: tools/ensure_venv.py (a .venv of another Python, or a broken
one, is rebuilt with one line) and the Makefile's split between the demo set and the full set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import ensure_venv

ROOT = Path(__file__).resolve().parents[1]
TEST_ONLY_APT = (
    "gcc-riscv64-unknown-elf",
    "picolibc-riscv64-unknown-elf",
    "qemu-system-misc",
    "clang",
    "libclang-rt-14-dev",
)
HERE = ".".join(str(v) for v in sys.version_info[:3])


def fake_venv(path: Path, script: str) -> Path:
    """A directory that looks like a virtualenv whose bin/python is `script` (sh)."""
    (path / "bin").mkdir(parents=True)
    (path / "pyvenv.cfg").write_text("home = /nonexistent\n")
    py = path / "bin" / "python"
    py.write_text("#!/bin/sh\n" + script + "\n")
    py.chmod(0o755)
    return path


def test_check_matching_other_broken(tmp_path):
    assert ensure_venv.check(str(tmp_path / "absent"), HERE) is None
    same = fake_venv(tmp_path / "same", f"echo {HERE}")
    assert ensure_venv.check(str(same), HERE) is None
    other = fake_venv(tmp_path / "other", "echo 3.10.14")
    assert (
        ensure_venv.check(str(other), HERE)
        == f"it runs Python 3.10.14, the requested one is {HERE}"
    )
    broken = fake_venv(
        tmp_path / "broken", "echo 'error while loading shared libraries' >&2; exit 127"
    )
    assert "does not run" in ensure_venv.check(str(broken), HERE)
    dangling = tmp_path / "dangling"
    (dangling / "bin").mkdir(parents=True)
    (dangling / "bin" / "python").symlink_to(tmp_path / "removed-python3.10")
    assert "does not run" in ensure_venv.check(str(dangling), HERE)


def test_not_a_venv_is_left_alone(tmp_path, capsys):
    d = tmp_path / "data"
    (d / "bin").mkdir(parents=True)  # no pyvenv.cfg: not ours to delete
    (d / "keep.txt").write_text("x")
    assert ensure_venv.ensure(str(d)) == 2
    assert (d / "keep.txt").exists()
    assert "is not a virtualenv" in capsys.readouterr().err


@pytest.mark.slow
def test_make_venv_rebuilds_a_venv_of_another_python(tmp_path):
    """`make venv` (what `make demo` and `make setup` run first) with the requested PY replaces
    a .venv made by another Python, says so in one line, and leaves a matching one alone."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    venv = tmp_path / ".venv"
    fake_venv(venv, "echo 3.10.14")  # what `make demo PY=python3.10` left behind
    (venv / ".installed-demo").touch()  # ...with its install stamp
    cmd = ["make", "-s", "-C", str(ROOT), "venv", f"PY={sys.executable}", f"VENV={venv}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert (
        lines[0]
        == f"rebuilding {venv}: it runs Python 3.10.14, the requested one is {HERE} ({sys.executable})"
    )
    assert lines[1].startswith(f"creating {venv} with Python {HERE}")
    assert not (venv / ".installed-demo").exists()  # the stamp went with it: deps reinstall
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sys, pip; print('%d.%d.%d' % sys.version_info[:3])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == HERE
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout == ""


def _make_n(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("no make")
    # -B: print every recipe as on a fresh clone, whatever .venv holds here
    r = subprocess.run(
        ["make", "-nB", "-C", str(ROOT), target, "PY=python3"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_make_demo_installs_only_the_demo_set():
    demo = _make_n("demo")
    assert "install -e '.[demo]'" in demo and "tools.demo_hil" in demo
    for word in (*TEST_ONLY_APT, "apt-get", "sudo", "dev,train", "platformio", "tensorflow"):
        assert word not in demo, word
    full = _make_n("test")  # the control: the test set does name them
    assert all(p in full for p in TEST_ONLY_APT) and "apt-get" in full
    assert "install -e '.[demo,dev,train]'" in full and "pytest" in full
