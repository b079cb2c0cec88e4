"""Pictures of a diffusion model: the forward process, the reverse process, a guidance sweep.

Each function returns images (N, C, H, W) in [0, 1] (or a list of them, one per frame) laid out
for `genlab.images.make_grid`; the CLI writes them (`genlab forward`, `genlab denoise`,
`genlab guidance`). Latent models show their latents through the VAE's decoder: x_t of a latent
model decoded is what the image "is" at that noise level.
"""

from __future__ import annotations

import torch

from genlab.models.ddpm import Diffusion


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
        images: (N, C, H, W) in [0, 1].
        timesteps: the columns, e.g. `strip_timesteps(T, 9)`.

    Returns:
        (N * len(timesteps), C, H, W), row-major: one row per image.
    """
    x0 = model.to_diffusion_space(images)  # (N, *latent_shape)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    rows = [model.schedule.q_sample(x0, t, eps) for t in timesteps]  # each (N, ...)
    x_t = torch.stack(rows, dim=1).flatten(0, 1)  # (N * columns, ...)
    return model.to_images(x_t)


@torch.inference_mode()
def reverse_frames(
    model: Diffusion, n: int, frames: int, generator: torch.Generator | None = None, **options
) -> tuple[list[torch.Tensor], list[int]]:
    """The reverse process as `frames` pictures of n samples: x_T, intermediate x_t, x_0.

    `options` go to `Diffusion.sample_process` (y, sampler, steps, guidance, context,
    model_fn). Returns the frames, each (n, C, H, W) in [0, 1], and their timesteps (T for the
    pure noise, -1 for the end).
    """
    result = model.sample_process(n, generator=generator, n_snapshots=max(frames - 1, 1), **options)
    pictures = [model.to_images(result.x_T)] + [model.to_images(s.x_t) for s in result.snapshots]
    timesteps = [model.schedule.T] + [s.t for s in result.snapshots]
    return pictures, timesteps


def strip_of_frames(frames: list[torch.Tensor], rows: int) -> torch.Tensor:
    """The first `rows` samples across all frames: (rows * len(frames), C, H, W), one row each."""
    stacked = torch.stack([f[:rows] for f in frames], dim=1)  # (rows, F, C, H, W)
    return stacked.flatten(0, 1)


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
        (len(scales) * columns, C, H, W).
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
        rows.append(model.to_images(x0))
    return torch.cat(rows)
