"""Latent arithmetic: attribute vectors as differences of mean latents, applied at strengths.

The "smile vector" of White, "Sampling Generative Networks" (2016), and of Larsen et al.,
"Autoencoding beyond pixels" (2016): v = mean z of images with an attribute minus mean z of
images without it; decode(z + s v) adds the attribute with strength s.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genlab.data import ImageData
from genlab.errors import GenlabError
from genlab.latent.maps import decode_batched, encode_batched, is_conditional

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)


def attribute_vector_from_latents(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """v = mean(z_a) - mean(z_b), for decoder-only models whose latents are known.

    Args:
        z_a: (N_a, D) latents of images with the attribute.
        z_b: (N_b, D) latents of images without it.

    Returns:
        v: (D,) float32 on the CPU.
    """
    if z_a.ndim != 2 or z_b.ndim != 2 or z_a.shape[1] != z_b.shape[1]:
        raise GenlabError(
            f"expected latents (N_a, D) and (N_b, D), got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] == 0 or z_b.shape[0] == 0:
        raise GenlabError("an attribute vector needs at least one latent on each side")
    return (z_a.double().mean(0) - z_b.double().mean(0)).float().cpu()


def attribute_vector(
    model: nn.Module,
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    batch_size: int = 256,
    y_a: torch.Tensor | None = None,
    y_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """v = mean encode(images_a) - mean encode(images_b).

    Args:
        model: has `encode(x, y=None) -> z (B, D)`.
        images_a: (N_a, C, H, W) images with the attribute, in [0, 1] or uint8.
        images_b: (N_b, C, H, W) images without it.
        batch_size: images per forward pass.
        y_a, y_b: (N_a,), (N_b,) class ids for conditional encoders, or None.

    Returns:
        v: (D,) float32 on the CPU; a spatial latent (c, s, s) is flattened, D = c * s * s.
    """
    z_a = encode_batched(model, images_a, y_a, batch_size).flatten(1)  # (N_a, D)
    z_b = encode_batched(model, images_b, y_b, batch_size).flatten(1)  # (N_b, D)
    return attribute_vector_from_latents(z_a, z_b)


def apply_attribute(
    model: nn.Module,
    x: torch.Tensor,
    v: torch.Tensor,
    strengths: Sequence[float] = STRENGTHS,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode encode(x) + s v for every strength s.

    Args:
        model: has `encode` and `decode`.
        x: (B, C, H, W) images in [0, 1] (or uint8).
        v: (D,) an attribute vector; for a spatial latent (c, s, s), flat with D = c * s * s.
        strengths: the S values of s; 0 gives the plain reconstruction.
        y: (B,) class ids for conditional models, or None.

    Returns:
        (B, S, C, H, W) in [0, 1].
    """
    s = torch.as_tensor(list(strengths), dtype=torch.float32)  # (S,)
    if s.ndim != 1 or s.numel() == 0:
        raise GenlabError("apply_attribute needs at least one strength")
    z_full = encode_batched(model, x, y)  # (B, *latent_shape)
    z = z_full.flatten(1)  # (B, D)
    b, d = z.shape
    v = v.detach().reshape(-1).float().cpu()
    if v.shape[0] != d:
        raise GenlabError(f"the attribute vector has {v.shape[0]} dims, the latents {d}")
    z_s = z[:, None, :] + s[None, :, None] * v  # (B, S, D)
    y_s = None if y is None else y.cpu().repeat_interleave(len(s))
    out = decode_batched(model, z_s.reshape(b * len(s), *z_full.shape[1:]), y_s)
    return out.reshape(b, len(s), *out.shape[1:])


def _normalise(name: str) -> str:
    return " ".join(name.replace("-", " ").replace("_", " ").lower().split())


def class_index(class_names: Sequence[str], name: str) -> int:
    """The id of a class by name, case-insensitive ("ankle-boot" matches "Ankle boot").

    Raises:
        GenlabError: no class has that name; the message lists the valid names.
    """
    wanted = _normalise(name)
    for i, candidate in enumerate(class_names):
        if _normalise(candidate) == wanted:
            return i
    valid = ", ".join(repr(c) for c in class_names) or "none (the data set has no class names)"
    raise GenlabError(f"unknown class {name!r}: use one of {valid}")


def class_arithmetic(
    model: nn.Module,
    data: ImageData,
    from_class: str,
    to_class: str,
    n: int = 6,
    strengths: Sequence[float] = STRENGTHS,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Turn images of one class towards another (e.g. sneakers into ankle boots).

    v = mean latent of `to_class` minus mean latent of `from_class` over all of `data`; n images
    of `from_class` drawn with `generator` are then decoded at encode(x) + s v. A conditional
    model (`is_conditional`) encodes every image with its own label and decodes with from_class.

    Args:
        model: has `encode` and `decode`.
        data: a labelled data set.
        from_class, to_class: class names, case-insensitive.
        n: how many images (rows); fewer if the class has fewer.
        strengths: the S values of s.
        generator: a CPU generator that picks the images; None uses the global RNG.
        batch_size: images per forward pass.

    Returns:
        (n, S + 1, C, H, W) in [0, 1]: each row starts with the original image.
    """
    i_from = class_index(data.class_names, from_class)
    i_to = class_index(data.class_names, to_class)
    idx_from = torch.nonzero(data.labels == i_from).flatten()
    idx_to = torch.nonzero(data.labels == i_to).flatten()
    for name, idx in ((from_class, idx_from), (to_class, idx_to)):
        if idx.numel() == 0:
            raise GenlabError(f"the data has no images of class {name!r}: pick another class")
    if n < 1:
        raise GenlabError(f"class_arithmetic needs n >= 1 images, got {n}")

    labels = is_conditional(model)  # a conditional model encodes and decodes with the labels
    v = attribute_vector(
        model,
        data.images[idx_to],
        data.images[idx_from],
        batch_size,
        data.labels[idx_to] if labels else None,
        data.labels[idx_from] if labels else None,
    )
    pick = idx_from[torch.randperm(idx_from.numel(), generator=generator)[:n]]
    x, y = data.batch(pick)[:2]  # (n, C, H, W) in [0, 1], (n,)
    rows = apply_attribute(model, x, v, strengths, y if labels else None)  # (n, S, C, H, W)
    return torch.cat([x[:, None], rows], dim=1)
