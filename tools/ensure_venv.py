"""python tools/ensure_venv.py VENV — make sure VENV is a virtualenv of the Python running this script.

The Makefile runs it with the requested interpreter (`make demo PY=python3.12`) before it
installs anything.  A VENV whose interpreter is another Python version, or no longer runs at
all (its base Python was removed or upgraded in place), is deleted and created again with one
line saying why; a matching one is left alone.  Standard library only, and it runs on any
Python 3 so that an interpreter that is too old gets a clear line instead of a pip error.

Exit status: 0 ok (VENV is usable), 2 the requested Python is too old or VENV is not a
virtualenv this script may replace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv

MIN_PYTHON = (3, 11)  # pyproject.toml: requires-python
PROG = "ensure_venv"


def version_of(python: str) -> str | None:
    """X.Y.Z of an interpreter, or None when it does not run."""
    try:
        res = subprocess.run(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = res.stdout.strip()
    return out if res.returncode == 0 and out else None


def venv_python(path: str) -> str:
    return os.path.join(path, "Scripts" if os.name == "nt" else "bin", "python")


def check(path: str, want: str) -> str | None:
    """Why the virtualenv at `path` must be rebuilt for Python `want`, or None if it is fine
    (or does not exist yet)."""
    if not os.path.exists(path):
        return None
    have = version_of(venv_python(path))
    if have is None:
        return f"{path}/bin/python does not run"
    if have != want:
        return f"it runs Python {have}, the requested one is {want}"
    return None


def ensure(path: str, out=sys.stdout) -> int:
    want = ".".join(str(v) for v in sys.version_info[:3])
    if sys.version_info[:2] < MIN_PYTHON:
        print(
            f"{PROG}: error: {sys.executable} is Python {want}; earwitness needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer (make PY=python3.11 ...)",
            file=sys.stderr,
        )
        return 2
    why = check(path, want)
    if why is not None:
        if not os.path.isfile(os.path.join(path, "pyvenv.cfg")):
            print(
                f"{PROG}: error: {path} exists but is not a virtualenv; move it away",
                file=sys.stderr,
            )
            return 2
        print(f"rebuilding {path}: {why} ({sys.executable})", file=out, flush=True)
        shutil.rmtree(path)
    if not os.path.exists(path):
        print(f"creating {path} with Python {want} ({sys.executable})", file=out, flush=True)
        venv.EnvBuilder(with_pip=True).create(path)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python tools/ensure_venv.py VENV", file=sys.stderr)
        return 2
    return ensure(argv[0])


if __name__ == "__main__":
    sys.exit(main())
