"""Pictures of a diffusion model: the forward process, the reverse process, a guidance sweep.

`forward`, `denoise` and `guidance` take a run (the commands of the same names save what they
return); the functions below them work on a model and return images (N, C, H, W) in [0, 1] (or
a list of them, one per frame). Latent models show their latents through the VAE's decoder:
x_t of a latent model decoded is what the image "is" at that noise level.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

from genlab.diffusion import randn_on
from genlab.errors import GenlabError
from genlab.models.ddpm import Diffusion
from genlab.pictures import Picture, frames_gif, frames_strip
from genlab.sampling import (
    class_ids,
    diffusion_model,
    one_per_class,
    prompt_context,
    sampling_options,
    test_data,
)


def forward(run: str | os.PathLike, n: int = 4, columns: int = 10, seed: int = 0) -> Picture:
    """The forward process as a strip: n test images (one per class in turn), noised by
    q(x_t | x_0) from t = 0 (clean) to T - 1 (noise), one row each."""
    model, test = diffusion_model(run), test_data(run)
    ts = strip_timesteps(model.config.T, columns)
    g = torch.Generator().manual_seed(seed)
    images = test.images[one_per_class(test.labels, n)].float() / 255.0
    x = forward_strip(model, images, ts, g)
    info = {"run": str(run), "seed": str(seed), "timesteps": " ".join(map(str, ts))}
    return Picture(x, columns, info, f"t = {', '.join(map(str, ts))}")


class Denoising(NamedTuple):
    """The reverse process of n samples as frames, each (n, C, H, W) in [0, 1], from x_T (pure
    noise, timestep T) to x_0 (timestep -1)."""

    frames: list[torch.Tensor]
    timesteps: list[int]
    info: dict[str, str]

    def save_gif(self, path: str | os.PathLike, duration_ms: int = 120) -> Path:
        """An animated GIF of the frames (the last held for a while)."""
        return frames_gif(self.frames, path, duration_ms, hold=10)

    def strip(self, rows: int = 4) -> Picture:
        """The first `rows` samples across all frames, one row each."""
        return frames_strip(self.frames, rows, self.info)


def denoise(
    run: str | os.PathLike,
    n: int = 16,
    frames: int = 20,
    seed: int = 0,
    class_name: str | None = None,
    prompt: str | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
) -> Denoising:
    """The reverse process: n samples from pure noise to images, in `frames` snapshots."""
    model = diffusion_model(run)
    options = sampling_options(model, sampler, steps, None, guidance)
    y = class_ids(run, model, class_name, n) if prompt is None else None
    context = prompt_context(model, run, prompt) if prompt is not None else None
    g = torch.Generator().manual_seed(seed)
    pictures, ts = reverse_frames(model, n, frames, g, y=y, context=context, **options)
    return Denoising(pictures, ts, {"run": str(run), "seed": str(seed)})


def guidance(
    run: str | os.PathLike,
    scales: tuple[float, ...] = (0, 1, 2, 3, 5),
    columns: int = 10,
    class_name: str | None = None,
    prompt: str | None = None,
    classifier: str | os.PathLike | None = None,
    seed: int = 0,
    sampler: str | None = None,
    steps: int | None = None,
) -> Picture:
    """One row per guidance scale, the same noise in every row (classes in turn along a row):
    classifier-free guidance weights w, or with `classifier` (a noisy-classifier run)
    classifier-guidance scales s."""
    model = diffusion_model(run)
    if not scales:
        raise GenlabError("--scales is empty: give guidance weights, e.g. 0,1,3")
    if classifier is None and not model.config.num_classes:
        raise GenlabError(
            f"{run}: unconditional; guide it with --classifier RUN (a noisy-classifier run) "
            "or train with --conditional"
        )
    options = sampling_options(model, sampler, steps)
    y = class_ids(run, model, class_name, columns) if prompt is None else None
    context = prompt_context(model, run, prompt) if prompt is not None else None
    if classifier is not None:
        clf = sampling_options(model, classifier=classifier)["classifier"]
        if y is None:  # an unconditional model: the classifier's classes in turn
            y = torch.arange(columns) % clf.config.num_classes
        fns = [model.classifier_guided(model.model_fn(), clf, y, columns, w) for w in scales]
        x = guidance_sweep(model, list(scales), columns, seed, model_fns=fns, **options)
    else:
        x = guidance_sweep(model, list(scales), columns, seed, y=y, context=context, **options)
    info = {"run": str(run), "seed": str(seed), "scales": ",".join(map(str, scales))}
    return Picture(x, columns, info, f"rows: w = {', '.join(map(str, scales))}")


def strip_timesteps(T: int, columns: int) -> list[int]:
    """`columns` timesteps from 0 (clean) to T - 1 (pure noise), evenly spaced."""
    return [round(i * (T - 1) / max(columns - 1, 1)) for i in range(columns)]


@torch.inference_mode()
def forward_strip(
    model: Diffusion,
    images: torch.Tensor,
    timesteps: list[int],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Each image noised by q(x_t | x_0) at each timestep, with one noise draw per image.

    Args:
        images: (N, C, H, W) in [0, 1] (moved to the model's device).
        timesteps: the columns, e.g. `strip_timesteps(T, 9)`.
        generator: the noise, drawn on its own device (the same on every device for a CPU one).

    Returns:
        (N * len(timesteps), C, H, W) on the CPU, row-major: one row per image.
    """
    x0 = model.to_diffusion_space(images.to(model.device), generator=generator)  # (N, *latent)
    eps = randn_on(x0.shape, generator, x0.device, x0.dtype)
    rows = [model.schedule.q_sample(x0, t, eps) for t in timesteps]  # each (N, ...)
    x_t = torch.stack(rows, dim=1).flatten(0, 1)  # (N * columns, ...)
    return model.to_images(x_t).cpu()


@torch.inference_mode()
def reverse_frames(
    model: Diffusion, n: int, frames: int, generator: torch.Generator | None = None, **options
) -> tuple[list[torch.Tensor], list[int]]:
    """The reverse process as `frames` pictures of n samples: x_T, intermediate x_t, x_0.

    `options` go to `Diffusion.sample_process` (y, sampler, steps, guidance, context,
    model_fn). Returns the frames, each (n, C, H, W) in [0, 1] on the CPU, and their timesteps
    (T for the pure noise, -1 for the end).
    """
    result = model.sample_process(n, generator=generator, n_snapshots=max(frames - 1, 1), **options)
    steps = [result.x_T] + [s.x_t for s in result.snapshots]
    pictures = [model.to_images(x_t).cpu() for x_t in steps]
    timesteps = [model.schedule.T] + [s.t for s in result.snapshots]
    return pictures, timesteps


@torch.inference_mode()
def guidance_sweep(
    model: Diffusion,
    scales: list[float],
    columns: int,
    seed: int = 0,
    y: torch.Tensor | None = None,
    context: tuple[torch.Tensor, torch.Tensor] | None = None,
    model_fns=None,
    **options,
) -> torch.Tensor:
    """One row per guidance scale, the same starting noise in every row.

    Args:
        scales: guidance weights w (classifier-free) or classifier scales (with `model_fns`).
        columns: samples per row.
        y: (columns,) classes, or None with `context` (a prompt) for text models.
        model_fns: for classifier guidance, one `model_fn` per scale (replacing the model's).

    Returns:
        (len(scales) * columns, C, H, W) on the CPU.
    """
    rows = []
    for i, w in enumerate(scales):
        g = torch.Generator(device=model.device).manual_seed(seed)
        kwargs = dict(options)
        if model_fns is not None:
            kwargs["model_fn"] = model_fns[i]
        else:
            kwargs["guidance"] = w
        x0 = model.sample_process(columns, generator=g, y=y, context=context, **kwargs).x0
        rows.append(model.to_images(x0).cpu())
    return torch.cat(rows)
