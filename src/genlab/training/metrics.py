"""A run's metrics.csv: one row per logged step, appended as training goes, cut back to the
checkpoint when the run resumes.

A checkpoint records the SHA-256 of metrics.csv as it was then (`MetricsWriter.digest`), so a
resume knows the rows it keeps are the ones logged: a truncated, edited or bit-flipped row among
them is refused with one line, before anything is written. Rows logged after the checkpoint are
dropped (they will be logged again), whatever state they are in; a deleted metrics.csv starts a
new log. Checkpoints of older versions, without the digest, have their kept rows parsed instead.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_path
from genlab.errors import GenlabError

METRICS = "metrics.csv"


class MetricsWriter:
    """Appends rows to metrics.csv; the header is fixed by the first row of the file."""

    def __init__(self, path: Path):
        self.path = path
        data = path.read_bytes() if path.is_file() else b""
        self.fields: list[str] | None = None
        if data:
            self.fields = next(csv.reader(io.StringIO(data.decode("utf-8"), newline="")), None)
        self._sha = hashlib.sha256(data)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        data = text.getvalue().encode("utf-8")
        try:
            with open(self.path, "ab") as f:
                f.write(data)
        except OSError as e:  # a full disk: say which file (a write's error names none)
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self._sha.update(data)

    def digest(self) -> str:
        """The SHA-256 of the file as written so far (a checkpoint stores it)."""
        return self._sha.hexdigest()


def kept_metrics(path: Path, step: int, digest: str | None) -> bytes:
    """The part of metrics.csv that a run resuming from its checkpoint at `step` keeps: the
    header and the rows up to `step` (b"" for none, or no file).

    Args:
        digest: `MetricsWriter.digest` as the checkpoint stored it (None from older versions).

    Raises:
        GenlabError: the kept part is not what was logged (with `digest`), or a row in it is
            damaged (without).
    """
    if step == 0 or not path.is_file():
        return b""
    lines = path.read_bytes().splitlines(keepends=True)
    kept, damaged = [], False
    for number, line in enumerate(lines, 1):
        try:
            row = next(csv.reader([line.decode("utf-8")]))
            cut = not line.endswith(b"\n")  # the last line, cut short
            if number == 1:
                width, cut = len(row), cut or row[:1] != ["step"]
            elif cut or len(row) != width:
                raise ValueError
            elif int(row[0]) > step:
                break
        except (ValueError, csv.Error, StopIteration):
            damaged = True
            break
        kept.append(line)
    prefix = b"".join(kept) if len(kept) > 1 else b""
    if digest is not None and hashlib.sha256(prefix).hexdigest() != digest:
        raise GenlabError(
            f"{path}: damaged (its rows up to step {step} are not those the checkpoint logged: "
            "a truncated, edited or flipped row); restore it, or delete it to start a new log, "
            "then resume"
        )
    if digest is None and damaged:
        raise GenlabError(
            f"{path}: line {number} is damaged (not a row of this log); fix or delete that line, "
            "or delete the file to start a new log, then resume"
        )
    return prefix


def truncate_metrics(path: Path, step: int, digest: str | None = None) -> None:
    """Drop rows logged after the checkpoint we resume from (they will be logged again),
    atomically; checked as `kept_metrics` checks them."""
    prefix = kept_metrics(path, step, digest)
    if not path.is_file():
        return
    if not prefix:
        path.unlink()
    elif len(prefix) < path.stat().st_size:
        with atomic_path(path) as tmp:
            tmp.write_bytes(prefix)
