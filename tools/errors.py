"""The one error family of the host tools and the one way a command runs.

Every expected failure is a ToolError: a one-line message and the command's exit code, 2 for bad
input (BadInput: arguments, files, settings the user gave) and 1 for a node or link that failed
(NodeFailure).  The layers' own errors (LinkError, FlashError, TwinError, HilError, ...) derive
from it.  `run_cli` turns them into `prog: error: message` on stderr and the exit code, with no
traceback, and Ctrl-C into exit 130.  This module imports nothing of tools/.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_FAILURE = 1  # the node, the link or the work failed
EXIT_BAD_INPUT = 2  # the user's arguments, files or settings are wrong
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as a shell reports it


class ToolError(Exception):
    """An expected failure: a one-line message and the command's exit code."""

    def __init__(self, message: str = "", exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


class BadInput(ToolError):
    """Wrong arguments, files or settings: exit 2."""

    def __init__(self, message: str = "", exit_code: int = EXIT_BAD_INPUT):
        super().__init__(message, exit_code)


class NodeFailure(ToolError):
    """The node or the link to it failed: exit 1."""

    def __init__(self, message: str = "", exit_code: int = EXIT_FAILURE):
        super().__init__(message, exit_code)


def error_line(prog: str, message) -> str:
    """The one error line format: `prog: error: message`."""
    return f"{prog}: error: {message}"


def run_cli(main_fn: Callable[[], int], prog: str) -> int:
    """Run a command's body: ToolError -> `prog: error: ...` on stderr + its exit code, no
    traceback; Ctrl-C -> 130.  Anything else is a bug and keeps its traceback."""
    try:
        return main_fn()
    except ToolError as e:
        print(error_line(prog, e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def check_output(path, what: str, folder: bool = False) -> None:
    """BadInput unless `path` can be written: a folder (folder=True: created here if missing)
    or a file (its folder exists; it is not a folder itself), probed by creating and removing a
    temporary file in that folder.  `what` names the option in the message (`--out`).  Called
    before any work starts."""
    import os
    import tempfile

    p = os.path.abspath(os.fspath(path))
    if folder:
        if os.path.exists(p) and not os.path.isdir(p):
            raise BadInput(f"{what} {path}: exists and is not a folder")
        try:
            os.makedirs(p, exist_ok=True)
        except OSError as e:
            raise BadInput(f"{what} {path}: cannot create the folder ({e.strerror})") from None
        probe = p
    else:
        if os.path.isdir(p):
            raise BadInput(f"{what} {path}: is a folder")
        probe = os.path.dirname(p)
        if not os.path.isdir(probe):
            raise BadInput(f"{what} {path}: no such folder {probe}")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise BadInput(f"{what} {path}: cannot write in {probe} ({e.strerror})") from None


def check_positive(value, what: str) -> None:
    """BadInput unless value is None or > 0 (--duration, --count, ...)."""
    if value is not None and not value > 0:
        raise BadInput(f"{what} must be > 0 (got {value:g})")
