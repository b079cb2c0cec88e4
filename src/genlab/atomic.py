"""Atomic file writes: a crash never leaves a half-written file where a good one was."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


class atomic_path:
    """Context manager giving a temporary path next to `path`, renamed onto it on success.

    A crash or an exception leaves `path` untouched (the previous version survives).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        os.close(fd)
        os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600; give files the usual mode
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
