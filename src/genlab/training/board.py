"""TensorBoard event files beside metrics.csv: RUN/tensorboard/.

Every run writes, unless `--no-tensorboard`: each metrics.csv row as scalars (tag = the column,
step = the row's step), each sample grid of RUN/samples as the image "samples", and each
`genlab eval` record's metrics as hparams (RUN/tensorboard/eval-...: the run's family, step and
sampling options against the metrics). `genlab board RUNS_DIR` serves them on 127.0.0.1.

metrics.csv stays the record: the events are a view of it. A resumed run opens its writer with
`purge_step` one past the checkpoint's step (0 for a run that starts again without one), so
TensorBoard's readers drop the events that an interrupted session logged after the checkpoint,
as metrics.csv drops those rows; the writer is
flushed before every checkpoint so that the events up to it are on disk when the process dies.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

BOARD = "tensorboard"


class Board:
    """The event writer of one training session (main process only)."""

    def __init__(self, run_dir: Path, step: int):
        """Open RUN/tensorboard/ for a session starting at `step` (0: a new run)."""
        from torch.utils.tensorboard import SummaryWriter

        self.last_grid = -1
        after_earlier_sessions(Path(run_dir) / BOARD)
        self.writer = SummaryWriter(
            str(Path(run_dir) / BOARD), purge_step=step + 1 if step > 0 else 0, flush_secs=30
        )

    def row(self, row: dict[str, Any]) -> None:
        """A metrics.csv row as scalars; text and non-finite cells are left out."""
        step = int(row["step"])
        for key, value in row.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(key, value, step)

    def grid(self, path: Path | None, step: int) -> None:
        """The sample grid PNG written at `step` as the image "samples"."""
        if path is None or not Path(path).is_file() or step == self.last_grid:
            return  # (the last grid of a run is drawn twice when a sample point ends it)
        self.last_grid = step
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        self.writer.add_image("samples", pixels, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def after_earlier_sessions(folder: Path) -> None:
    """Wait until the clock's second is past every event file in `folder` (at most a second).

    Readers take a run's event files in the order of their names, which begin with the second
    their writer opened; the purge of a resumed session works only if its file comes after the
    interrupted session's. A session resumed within the same second (a test, a crash at once)
    would otherwise sort by process id.
    """
    import time

    seconds = [int(p.name.split(".")[3]) for p in folder.glob("events.out.tfevents.*")
               if p.name.split(".")[3:4] and p.name.split(".")[3].isdigit()]  # fmt: skip
    latest = max(seconds, default=None)
    while latest is not None and int(time.time()) <= latest and time.time() > latest - 5:
        time.sleep(0.05)


def write_eval(run: Any, name: str, record: dict[str, Any]) -> Path | None:
    """An eval record's numbers as TensorBoard hparams in RUN/tensorboard/<name>, unless the run
    was trained with --no-tensorboard.

    The hparams are what was evaluated (family, step, n or episodes, seed, sampling options,
    feature network); the metrics are the record's numbers under "eval/": the sample metrics
    of a generator's record, the return statistics of an agent's.

    Args:
        run: the `genlab.runs.Run` evaluated. name: the record's file stem.

    Returns:
        The folder written (None: the run writes no events).
    """
    from torch.utils.tensorboard import SummaryWriter

    try:
        if not run.train_config.tensorboard:
            return None
    except Exception:  # noqa: BLE001 - a run without a train config (older, hand-made): write
        pass
    source = record.get("source", {})
    hparams: dict[str, Any] = {
        "family": run.name,
        "step": int(source.get("step") or record.get("step") or 0),
        "n": int(record.get("n") or record.get("episodes") or 0),
        "seed": int(record.get("seed") or 0),
    }
    for key, value in (source.get("sampling") or {}).items():
        hparams[f"sampling/{key}"] = str(value)
    features = (record.get("networks") or {}).get("features")
    if features is not None:
        hparams["features"] = features.get("name") if isinstance(features, dict) else features
    numbers = record["metrics"] if isinstance(record.get("metrics"), dict) else record
    metrics = {
        f"eval/{k}": float(v)
        for k, v in numbers.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    folder = Path(run.path) / BOARD
    with SummaryWriter(str(folder)) as writer:
        writer.add_hparams(hparams, metrics, run_name=name, global_step=hparams["step"])
    return folder / name
