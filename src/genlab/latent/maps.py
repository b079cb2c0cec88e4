"""Latent maps: embed a data set, project it to 2-D, scatter it by class, decode a 2-D manifold.

Works on any model with `encode(x, y=None) -> z (B, D)` and `decode(z, y=None) -> x in [0, 1]`.
`encode_batched` and `decode_batched` also take a spatial latent (B, c, s, s) (a VAE with
`latent_channels`); the maps need a vector and refuse it (`require_vector_latent`).
Models run under `torch.inference_mode()` in eval mode on their own device; every tensor these
functions return is on the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from genlab.data import ImageData
from genlab.errors import GenlabError

# ---------------------------------------------------------------------------------------------
# Running a model: shared by interpolate.py and arithmetic.py


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with none."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block (dropout off, batch-norm statistics fixed), then restore."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train(True)


def is_conditional(model: nn.Module) -> bool:
    """Whether the model takes class labels: its config has `num_classes` > 0."""
    return int(getattr(getattr(model, "config", None), "num_classes", 0) or 0) > 0


def require_vector_latent(model: nn.Module, what: str) -> None:
    """Raise a one-line GenlabError if the model's latent is not a vector (a spatial VAE).

    Args:
        model: any model; one with a `latent_shape` of more than one axis is refused.
        what: the tool that needs a vector, for the message.
    """
    shape = tuple(getattr(model, "latent_shape", ()) or ())
    if len(shape) > 1:
        dims = "x".join(str(d) for d in shape)
        raise GenlabError(
            f"{what} needs a vector latent and this model's latent is a {dims} feature map "
            "(a spatial VAE): use interpolate, morph, arithmetic or reconstruct"
        )


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """Images as floats in [0, 1]: uint8 tensors are scaled by 1/255."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def encode_batched(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 512
) -> torch.Tensor:
    """Encode images in batches.

    Args:
        model: has `encode(x, y=None) -> z (B, D)` (or (B, c, s, s), a spatial latent).
        x: (N, C, H, W) floats in [0, 1] or uint8.
        y: (N,) class ids for conditional encoders, or None.
        batch_size: images per forward pass.

    Returns:
        z: (N, D) (or (N, c, s, s)) float32 on the CPU.
    """
    if not callable(getattr(model, "encode", None)):
        raise GenlabError(
            f"{type(model).__name__} has no encoder: pass latents directly "
            "(e.g. attribute_vector_from_latents) or use a model with encode()"
        )
    if x.ndim != 4 or x.shape[0] == 0:
        raise GenlabError(f"expected a non-empty (N, C, H, W) image batch, got {tuple(x.shape)}")
    device = model_device(model)
    zs = []
    with torch.inference_mode(), _eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            x_b = _as_float(x[i : i + batch_size]).to(device)
            if y is None:
                z = model.encode(x_b)
            else:
                z = model.encode(x_b, y[i : i + batch_size].to(device))
            zs.append(z.float().cpu())
    return torch.cat(zs)


def decode_batched(
    model: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 512
) -> torch.Tensor:
    """Decode latents in batches.

    Args:
        model: has `decode(z, y=None) -> x` in [0, 1].
        z: (N, D) latents, or (N, c, s, s) for a spatial latent.
        y: (N,) class ids for conditional decoders, or None.
        batch_size: latents per forward pass.

    Returns:
        x: (N, C, H, W) float32 in [0, 1] on the CPU.
    """
    device = model_device(model)
    xs = []
    with torch.inference_mode(), _eval_mode(model):
        for i in range(0, z.shape[0], batch_size):
            z_b = z[i : i + batch_size].to(device=device, dtype=torch.float32)
            if y is None:
                x = model.decode(z_b)
            else:
                x = model.decode(z_b, y[i : i + batch_size].to(device))
            xs.append(x.float().cpu())
    return torch.cat(xs)


# ---------------------------------------------------------------------------------------------
# Embedding and projection


def embed(
    model: nn.Module,
    data_or_images: ImageData | torch.Tensor,
    batch_size: int = 512,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Encode a whole data set.

    Args:
        model: has `encode(x, y=None) -> z (B, D)`.
        data_or_images: an `ImageData` (uint8) or images (N, C, H, W) in [0, 1] or uint8.
        batch_size: images per forward pass.
        y: (N,) class ids to condition a conditional encoder on, or None. With an `ImageData`
            and a conditional model (`is_conditional`), the data's labels are used.

    Returns:
        z: (N, D) float32 on the CPU.

    Raises:
        GenlabError: the model's latent is spatial (see `require_vector_latent`).
    """
    require_vector_latent(model, "embedding a data set (embed, latent-map, walk)")
    if isinstance(data_or_images, ImageData):
        if y is None and is_conditional(model):
            y = data_or_images.labels
        data_or_images = data_or_images.images
    return encode_batched(model, data_or_images, y, batch_size)


def embed_run(run, split: str = "test") -> tuple[torch.Tensor, ImageData]:
    """The latents (N, D) of one split of a run's data, and the split: `genlab embed RUN`."""
    from genlab.runs import Run
    from genlab.sampling import run_data

    run = Run.of(run)
    model = run.model()
    if not hasattr(model, "encode"):
        raise GenlabError(f"{run}: its model has no encoder; embed needs an ae or a vae run")
    data = run_data(run, split)
    return embed(model, data), data


class Projection(NamedTuple):
    """2-D coordinates of latents: coords (N, 2) and how they were made ("identity" or "pca")."""

    coords: torch.Tensor
    method: str


def project_2d(z: torch.Tensor) -> Projection:
    """Project latents to 2-D: the identity when D == 2, PCA on the centred latents otherwise.

    Each principal axis is signed so that its largest-magnitude loading is positive, so the
    same latents always give the same picture.

    Args:
        z: (N, D) latents, D >= 1.

    Returns:
        Projection(coords (N, 2) float32, method).
    """
    if z.ndim != 2 or z.shape[0] == 0:
        raise GenlabError(f"project_2d expects non-empty (N, D) latents, got {tuple(z.shape)}")
    n, d = z.shape
    if d == 2:
        return Projection(z.float().clone(), "identity")
    if d == 1:
        return Projection(torch.cat([z.float(), torch.zeros(n, 1)], dim=1), "identity")
    z64 = z.double()
    zc = z64 - z64.mean(dim=0)  # (N, D)
    _, _, vh = torch.linalg.svd(zc, full_matrices=False)  # rows of vh: principal axes
    axes = vh[:2].T  # (D, 2)
    if axes.shape[1] < 2:  # one sample: a single (zero) axis
        axes = torch.cat([axes, torch.zeros(d, 2 - axes.shape[1], dtype=axes.dtype)], dim=1)
    signs = torch.sign(axes.gather(0, axes.abs().argmax(dim=0, keepdim=True)))  # (1, 2)
    axes = axes * torch.where(signs == 0, 1.0, signs)
    return Projection((zc @ axes).float(), "pca")


# ---------------------------------------------------------------------------------------------
# Pictures


def plot_latent_map(
    coords: torch.Tensor,
    labels: torch.Tensor | None,
    class_names: tuple[str, ...] | list[str],
    path: str | os.PathLike,
    title: str | None = None,
    metadata: dict[str, str] | None = None,
    axis_labels: tuple[str, str] = ("coordinate 1", "coordinate 2"),
) -> Path:
    """Scatter 2-D latent coordinates coloured by class, with a legend; write a PNG atomically.

    Points are drawn in a fixed shuffled order so that no class hides another.

    Args:
        coords: (N, 2) coordinates, e.g. from `project_2d`.
        labels: (N,) class ids (-1 = unlabelled, drawn near-black), or None when there are none.
        class_names: names indexed by class id.
        path: where to write the PNG.
        title: the figure title.
        metadata: PNG tEXt chunks (command, seed, run).
        axis_labels: the x and y axis labels, e.g. ("PC 1", "PC 2") after PCA or ("z0", "z1").

    Returns:
        The path written.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    coords = torch.as_tensor(coords).detach().float().cpu()
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise GenlabError(f"plot_latent_map expects (N, 2) coordinates, got {tuple(coords.shape)}")
    n = coords.shape[0]
    labels = torch.full((n,), -1) if labels is None else torch.as_tensor(labels).long().cpu()
    if labels.shape != (n,):
        raise GenlabError(
            f"expected {n} labels to match the coordinates, got {tuple(labels.shape)}"
        )

    k = max(len(class_names), int(labels.max()) + 1 if n else 0)
    names = [*class_names, *(str(i) for i in range(len(class_names), k))]
    cmap = colormaps["tab10" if k <= 10 else "tab20" if k <= 20 else "turbo"]
    if k > 20:
        cmap = cmap.resampled(k)  # k evenly spaced colours
    palette = torch.tensor([cmap(i) for i in range(k)] + [(0.1, 0.1, 0.1, 1.0)])  # last: -1
    colors = palette[torch.where(labels < 0, k, labels)]  # (N, 4)

    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    size = 12.0 if n <= 2_000 else 4.0 if n <= 20_000 else 1.5
    fig = Figure(figsize=(7.5, 6.0), dpi=120, layout="constrained")
    ax = fig.subplots()
    ax.scatter(
        coords[order, 0].numpy(),
        coords[order, 1].numpy(),
        c=colors[order].numpy(),
        s=size,
        alpha=0.7,
        linewidths=0,
    )
    present = sorted(set(labels.tolist()))
    handles = [
        Line2D([], [], marker="o", ls="", color=tuple(palette[c].tolist()), label=names[c])
        for c in present
        if c >= 0
    ]
    if -1 in present and handles:
        handles.append(Line2D([], [], marker="o", ls="", color="0.1", label="unlabelled"))
    if handles:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    if title:
        ax.set_title(title)

    from genlab.plots import save_figure

    return save_figure(fig, path, metadata)


def _latent_dim(model: nn.Module) -> int | None:
    """The latent size D if the model or its config states it."""
    for owner in (model, getattr(model, "config", None)):
        d = getattr(owner, "latent_dim", None)
        if isinstance(d, int):
            return d
    return None


def decoded_manifold(
    model: nn.Module,
    coords_range: tuple[float, float] | tuple[tuple[float, float], tuple[float, float]] = (
        -3.0,
        3.0,
    ),
    n: int = 15,
    y: int | None = None,
) -> torch.Tensor:
    """Decode an n x n grid of 2-D latents (models with D == 2 only).

    Row r, column c decodes z = (z0_c, z1_r) with z0 rising left to right and z1 falling top to
    bottom, so `make_grid(x, nrow=n)` lines up with a latent map's axes.

    Args:
        model: has `decode(z, y=None)` and a 2-D latent space.
        coords_range: (lo, hi) for both axes, or ((z0_lo, z0_hi), (z1_lo, z1_hi)).
        n: grid points per axis, >= 2.
        y: a class id for conditional decoders, or None.

    Returns:
        x: (n * n, C, H, W) in [0, 1], row-major.
    """
    if n < 2:
        raise GenlabError(f"decoded_manifold needs n >= 2 grid points per axis, got {n}")
    require_vector_latent(model, "decoded_manifold")
    d = _latent_dim(model)
    if d is not None and d != 2:
        raise GenlabError(
            f"decoded_manifold needs a 2-D latent space, this model has {d}: "
            "use plot_latent_map with project_2d instead"
        )
    if isinstance(coords_range[0], (tuple, list)):
        (x_lo, x_hi), (y_lo, y_hi) = coords_range
    else:
        (x_lo, x_hi), (y_lo, y_hi) = coords_range, coords_range
    z0 = torch.linspace(float(x_lo), float(x_hi), n)
    z1 = torch.linspace(float(y_hi), float(y_lo), n)  # top row = largest z1
    grid_z1, grid_z0 = torch.meshgrid(z1, z0, indexing="ij")
    z = torch.stack([grid_z0, grid_z1], dim=-1).reshape(n * n, 2)  # (n*n, 2)
    y_t = None if y is None else torch.full((n * n,), int(y), dtype=torch.long)
    try:
        return decode_batched(model, z, y_t)
    except RuntimeError as e:
        if d is None:  # the decoder rejected 2-D latents: it has another latent size
            raise GenlabError(
                "decoded_manifold needs a 2-D latent space and this model's decoder rejects 2-D "
                "latents: use plot_latent_map with project_2d instead"
            ) from e
        raise
