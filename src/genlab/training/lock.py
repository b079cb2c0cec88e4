"""One writer per run: `genlab train` holds an exclusive lock on the run directory while it trains.

The lock is `flock` on the directory itself (no lock file: a run that is refused is left exactly as
it was), taken without waiting, held by the main process of a multi-process run, and released by
the kernel when that process ends, however it ends: a SIGKILLed run leaves no stale lock. Where
the file system cannot lock a directory (some network mounts), training goes on unlocked with a
warning; where there is no `fcntl` (Windows), unlocked and silently.
"""

from __future__ import annotations

import contextlib
import errno
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from genlab.errors import GenlabError


def lock_run(run_dir: Path) -> int | None:
    """Lock `run_dir` for this process; returns the open descriptor holding the lock (None when
    there is nothing to lock: no such directory, which reading the run reports, or no `fcntl`).

    Raises:
        GenlabError: another process holds the lock (its pid, where the system says).
    """
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    if not run_dir.is_dir():
        return None
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            warnings.warn(
                f"{run_dir}: cannot be locked on this file system ({e.strerror}); make sure no "
                "other `genlab train` writes this run while this one trains",
                stacklevel=2,
            )
            return None
        pid = holder(run_dir)
        who = f"process {pid}" if pid is not None else "another process"
        stop = f"`kill -INT {pid}`" if pid is not None else "Ctrl-C in its terminal"
        raise GenlabError(
            f"{run_dir}: {who} is training this run already; wait for it to end, or stop it "
            f"({stop} stops it at the next step, with a checkpoint), then resume"
        ) from None
    return fd


def unlock_run(fd: int | None) -> None:
    """Release a lock of `lock_run` (closing its descriptor releases it)."""
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def run_locked(run_dir: Path) -> Iterator[None]:
    """`lock_run` for the duration (one process)."""
    fd = lock_run(run_dir)
    try:
        yield
    finally:
        unlock_run(fd)


def holder(run_dir: Path) -> int | None:
    """The pid of the process holding the flock on `run_dir` (Linux's /proc/locks), or None."""
    try:
        st = os.stat(run_dir)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        fields = line.split()  # "1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF"
        if fields[1:2] == ["FLOCK"] and fields[5:6] == [device] and fields[4].isdigit():
            return int(fields[4])  # (waiters' lines read "1: -> FLOCK ...")
    return None
