"""The pseudo-terminal plumbing of the simulators (twin, romsim, faultproxy) and of the tests'
fake node: a raw pty pair, and writing to its master end."""

from __future__ import annotations

import errno
import os
import time
import tty
from collections.abc import Callable


def open_raw_pty(nonblocking: bool = False) -> tuple[int, int]:
    """A new pty pair (master, slave), both raw (bytes pass unchanged); the slave's path is
    os.ttyname(slave)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    if nonblocking:
        os.set_blocking(master, False)
    return master, slave


def write_all(
    fd: int, data, stop: Callable[[], bool] | None = None, deadline: float | None = None
) -> int:
    """Write all of `data` to `fd`; while the pty is full, wait 1 ms and retry, until `stop()`
    is true or time.monotonic() passes `deadline`.  An OSError (the other end is gone) ends it
    without raising.  Returns the number of bytes written."""
    view = memoryview(data)
    done = 0
    while view:
        if (stop is not None and stop()) or (deadline is not None and time.monotonic() >= deadline):
            break
        try:
            n = os.write(fd, view)
        except (BlockingIOError, InterruptedError):
            time.sleep(0.001)
            continue
        except OSError:
            break
        done += n
        view = view[n:]
    return done


def write_some(fd: int, buf: bytearray) -> None:
    """Write as much of `buf` as the pty takes now (non-blocking `fd`), removing what was written.
    A full pty, or one that nobody has open (EIO), just leaves the rest; other errors raise."""
    while buf:
        try:
            n = os.write(fd, buf[:65536])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return
            raise
        del buf[:n]
