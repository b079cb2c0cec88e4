"""Pictures of an autoregressive model (PixelCNN): completing the bottom half of test images, a
sample being written pixel by pixel, and the blur of emitting too many pixels at once.

`complete`, `order` and `blur` take runs (the commands `genlab complete`, `genlab pixel-order`
and `genlab ar-blur` save what they return).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from genlab.errors import GenlabError
from genlab.models.pixelcnn import PixelCNN, from_blocks
from genlab.pictures import Picture, frames_gif, frames_strip
from genlab.sampling import class_ids, model_of, one_per_class, test_data


def pixelcnn_model(run: str | os.PathLike) -> PixelCNN:
    """The model of a PixelCNN run of pixels, or a one-line error (also for a prior over a
    VQ-VAE's codes, which writes codes, not pixels)."""
    hint = "; train one with `genlab train pixelcnn --out RUN`"
    model = model_of(run, PixelCNN, "PixelCNN", hint)
    if model.vqvae is not None:
        raise GenlabError(
            f"{run}: a prior over a VQ-VAE's codes writes codes, not pixels: draw from it with "
            f"`genlab sample {run}`"
        )
    return model


def complete(
    run: str | os.PathLike,
    n: int = 8,
    samples: int = 5,
    seed: int = 0,
    temperature: float = 1.0,
    keep: float = 0.5,
) -> Picture:
    """The classic PixelCNN picture: n test images (one per class in turn), one per row: the
    original, the kept top part (the rest grey), then `samples` completions of the rest."""
    model = pixelcnn_model(run)
    if not 0.0 < keep < 1.0:
        raise GenlabError(f"--keep {keep}: keep a fraction of the rows between 0 and 1")
    rows = model.grid[0]
    start = round(rows * keep)
    if not 0 < start < rows:
        raise GenlabError(
            f"{run}: the model emits {model.config.pixels_per_step} pixels per step, "
            f"{rows} row(s) of blocks: nothing to keep and complete"
        )
    test = test_data(run)
    pick = one_per_class(test.labels, n)
    images = test.images[pick]
    if model.config.binarize:
        from genlab.data import binarized

        images = binarized(images)
    x = images.float() / 255.0
    y = test.labels[pick] if model.config.num_classes else None
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        repeated = x.repeat_interleave(samples, 0)
        ys = None if y is None else y.repeat_interleave(samples, 0)
        done = model.sample(
            n * samples, generator=g, y=ys, temperature=temperature, x0=repeated, start_row=start
        ).cpu()
    bh = model.config.block[0]
    masked = x.clone()
    masked[:, :, start * bh :] = 0.5
    tiles = torch.cat([x[:, None], masked[:, None], done.view(n, samples, *x.shape[1:])], 1)
    info = {"run": str(run), "seed": str(seed), "kept_rows": str(start * bh)}
    note = f"columns: original, top {start * bh} rows kept, {samples} completions"
    return Picture(tiles.flatten(0, 1), samples + 2, info, note)


class Animation(NamedTuple):
    """Frames (each (n, C, H, W) in [0, 1]) of samples being written, and what made them."""

    frames: list[torch.Tensor]
    info: dict[str, str]

    def save_gif(self, path: str | os.PathLike, duration_ms: int = 80) -> Path:
        """An animated GIF of the frames (the last held for a while)."""
        return frames_gif(self.frames, path, duration_ms, hold=12)

    def strip(self, rows: int = 4) -> Picture:
        """The first `rows` samples across all frames, one row each."""
        return frames_strip(self.frames, rows, self.info)


def written_so_far(model: PixelCNN, v: torch.Tensor, done: int) -> torch.Tensor:
    """Images being sampled, as `sample`'s callback sees them (level ids on the block grid
    (n, P, h, w), on the model's device): the first `done` positions in raster order, the rest
    grey. (n, C, H, W) on the CPU."""
    h, w = model.grid
    v = v.cpu()
    written = torch.zeros(1, model.positions, h, w, dtype=torch.bool)
    written.view(-1, h * w)[:, :done] = True
    grey = torch.full((len(v), model.config.channels, *model.config.block), 0.5).flatten(1)
    x = torch.where(written, v.float() / (model.config.levels - 1), grey[:, :, None, None])
    return from_blocks(x, model.config.block, model.config.channels)


def order(
    run: str | os.PathLike,
    n: int = 16,
    frames: int = 28,
    seed: int = 0,
    class_name: str | None = None,
    temperature: float = 1.0,
) -> Animation:
    """n samples being written in raster order, in `frames` snapshots; the pixels not yet
    written are grey."""
    model = pixelcnn_model(run)
    h, w = model.grid
    total = h * w
    frames = max(2, min(frames, total + 1))
    marks = {round(i * total / (frames - 1)) for i in range(1, frames)}
    y = class_ids(run, model, class_name, n)
    shots: list[torch.Tensor] = []

    def snapshot(done: int, v: torch.Tensor) -> None:
        if done in marks:
            shots.append(written_so_far(model, v, done))

    empty = torch.full((n, model.config.channels, *[model.config.image_size] * 2), 0.5)
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        model.sample(n, generator=g, y=y, temperature=temperature, callback=snapshot)
    return Animation([empty, *shots], {"run": str(run), "seed": str(seed)})


class BlurRow(NamedTuple):
    """One run of the "too many pixels at once" sweep, sampled both ways."""

    run: str
    pixels_per_step: int
    seconds_per_sample: float
    fd_sample: float | None
    fd_mean: float | None
    modes_sample: str
    modes_mean: str


class Blur(NamedTuple):
    """The sweep's picture (two rows per run: draws, then each pixel's mean) and its table."""

    picture: Picture
    rows: list[BlurRow]

    def table(self) -> str:
        """A markdown table of the rows."""
        lines = [
            "| pixels per step | s per sample | FD, draws | FD, means | modes, draws | "
            "modes, means |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            fd = [f"{v:.1f}" if v is not None else "" for v in (r.fd_sample, r.fd_mean)]
            lines.append(
                f"| {r.pixels_per_step} | {r.seconds_per_sample:.4f} | {fd[0]} | {fd[1]} | "
                f"{r.modes_sample} | {r.modes_mean} |"
            )
        return "\n".join(lines)


def blur(
    runs: list[str | os.PathLike],
    n: int = 10,
    seed: int = 0,
    eval_n: int = 0,
    progress: bool = False,
) -> Blur:
    """The same architecture emitting k pixels per step (one PixelCNN run per k), sampled by
    drawing each pixel from its distribution and by taking each pixel's mean: n samples per
    row, sorted by k. eval_n > 0 also scores eval_n samples of each way (FD, modes covered),
    and times the draws over those (in batches of 500) instead of over the n of the picture."""
    if not runs:
        raise GenlabError("give at least one PixelCNN run")
    models = sorted(
        ((pixelcnn_model(r), str(r)) for r in runs), key=lambda m: m[0].config.pixels_per_step
    )
    shapes = {(m.config.channels, m.config.image_size) for m, _ in models}
    if len(shapes) > 1:
        raise GenlabError("the runs' images differ in size or channels; sweep one data set")
    tiles, rows = [], []
    evaluators: dict[tuple[str, ...], Any] = {}
    for model, run in models:
        y = class_ids(run, model, None, n)
        with torch.inference_mode():
            start = time.perf_counter()
            drawn = model.sample(n, generator=torch.Generator().manual_seed(seed), y=y).cpu()
            seconds = (time.perf_counter() - start) / n
            means = model.sample(n, generator=torch.Generator().manual_seed(seed), y=y, mean=True)
        tiles += [drawn, means.cpu()]
        scores = [_score(run, model, eval_n, seed, mean, evaluators, progress) for mean in (0, 1)]
        if scores[0][2] is not None:  # timed over eval_n samples in batches: less overhead
            seconds = scores[0][2]
        rows.append(
            BlurRow(
                run, model.config.pixels_per_step, seconds, scores[0][0], scores[1][0],
                scores[0][1], scores[1][1],
            )
        )  # fmt: skip
    ks = ", ".join(str(r.pixels_per_step) for r in rows)
    note = f"rows: k = {ks} pixels per step, each drawn (upper) and as means (lower)"
    info = {"runs": " ".join(r.run for r in rows), "seed": str(seed)}
    return Blur(Picture(torch.cat(tiles), n, info, note), rows)


def _score(run, model, eval_n, seed, mean, evaluators, progress):
    """(FD, "modes/total", seconds per sample generated) of eval_n samples; Nones without."""
    if eval_n <= 0:
        return None, "", None
    from genlab.evaluation.evaluate import EvalConfig, evaluate_run

    described = {"mean": True} if mean else None
    record = evaluate_run(
        Path(run),
        EvalConfig(n=eval_n, seed=seed, references=False),
        progress=progress,
        evaluators=evaluators,
        sample_options={"mean": bool(mean)},
        described=described,
        model=model,
    )
    metrics = record["metrics"]
    modes = f"{metrics['modes_covered']}/{metrics['modes_total']}"
    return float(metrics["fd"]), modes, record["seconds"]["generate"] / eval_n
