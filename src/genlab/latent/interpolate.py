"""Paths through latent space: lerp, slerp, decoded interpolations, morph strips, latent walks.

slerp follows Shoemake (1985) as used for generative models by White, "Sampling Generative
Networks" (2016): for Gaussian latents it keeps the path at the norms the prior puts its mass
on, where a straight line would cut through the low-density centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.latent.maps import decode_batched, encode_batched, require_vector_latent

METHODS = ("slerp", "lerp")

# Below this sin(omega) the two directions are (anti)parallel to within ~1e-4 rad and slerp's
# 1/sin(omega) is ill-conditioned; lerp differs from slerp there by O(omega^2) only.
_SIN_EPS = 1e-4


def _path_shapes(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | float):
    """Broadcast z0, z1 (..., D) against t: (T,) -> (..., T, D); scalar t -> (..., D)."""
    t = torch.as_tensor(t, dtype=torch.float64, device=z0.device)
    if t.ndim > 1:
        raise ValueError(f"t must be a scalar or (T,), got shape {tuple(t.shape)}")
    if t.ndim == 1:
        z0, z1 = z0.unsqueeze(-2), z1.unsqueeze(-2)  # (..., 1, D)
    return z0, z1, t.unsqueeze(-1)  # t: (T, 1) or (1,)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Linear interpolation (1 - t) z0 + t z1.

    Args:
        z0, z1: (..., D), e.g. (B, D) or (D,).
        t: (T,) or a scalar.

    Returns:
        (..., T, D) for t of shape (T,), (..., D) for a scalar t; dtype of z0.
    """
    a, b, t = _path_shapes(z0, z1, t)
    out = (1.0 - t) * a.double() + t * b.double()
    return out.to(z0.dtype)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation along the great circle from z0 to z1, norms interpolated too.

    slerp(z0, z1; t) = sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1,
    with omega the angle between z0 and z1. Falls back to lerp where omega is near 0 or pi
    (or a vector is zero), where the direction of the great circle is undefined.

    Args:
        z0, z1: (..., D), e.g. (B, D) or (D,).
        t: (T,) or a scalar.

    Returns:
        (..., T, D) for t of shape (T,), (..., D) for a scalar t; dtype of z0.
    """
    a, b, t = _path_shapes(z0.double(), z1.double(), t)
    norm_a, norm_b = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)  # (..., 1)
    cos = (a * b).sum(-1, keepdim=True) / (norm_a * norm_b).clamp_min(1e-300)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    degenerate = (sin < _SIN_EPS) | (norm_a == 0) | (norm_b == 0)
    safe_sin = torch.where(degenerate, 1.0, sin)
    spherical = (torch.sin((1.0 - t) * omega) * a + torch.sin(t * omega) * b) / safe_sin
    linear = (1.0 - t) * a + t * b
    return torch.where(degenerate, linear, spherical).to(z0.dtype)


_PATHS = {"slerp": slerp, "lerp": lerp}


def _path_fn(method: str):
    if method not in _PATHS:
        raise GenlabError(f"unknown interpolation method {method!r}: use one of {METHODS}")
    return _PATHS[method]


def _path_labels(
    y0: torch.Tensor | None, y1: torch.Tensor | None, t: torch.Tensor
) -> torch.Tensor | None:
    """Class ids along a path for conditional models: y0 for t < 1/2, y1 from there on.

    Args:
        y0, y1: (B,) class ids, or None (a missing one copies the other).
        t: (T,).

    Returns:
        (B * T,) or None when neither is given.
    """
    if y0 is None and y1 is None:
        return None
    y0 = y1 if y0 is None else y0
    y1 = y0 if y1 is None else y1
    first_half = (t < 0.5).unsqueeze(0)  # (1, T)
    return torch.where(first_half, y0.cpu()[:, None], y1.cpu()[:, None]).reshape(-1)


def interpolate(
    model: nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    steps: int = 10,
    method: str = "slerp",
    y0: torch.Tensor | None = None,
    y1: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode the latent path between the encodings of image pairs.

    Args:
        model: has `encode` and `decode`.
        x0, x1: (B, C, H, W) start and end images in [0, 1] (or uint8).
        steps: points on the path including both ends, >= 2.
        method: "slerp" or "lerp".
        y0, y1: (B,) class ids of x0 and x1 for conditional models; the decoder is given y0 on
            the first half of the path and y1 on the second.

    Returns:
        (B, steps, C, H, W) in [0, 1]; [:, 0] decodes encode(x0), [:, -1] decodes encode(x1).
        A spatial latent (B, c, s, s) is interpolated as a flat vector and reshaped back.
    """
    if steps < 2:
        raise GenlabError(f"interpolate needs steps >= 2 (both ends), got {steps}")
    if x0.shape != x1.shape or x0.ndim != 4:
        raise GenlabError(
            f"x0 and x1 must be image batches of one shape (B, C, H, W), "
            f"got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    path = _path_fn(method)
    z0, z1 = encode_batched(model, x0, y0), encode_batched(model, x1, y1)  # (B, *latent_shape)
    t = torch.linspace(0.0, 1.0, steps)
    z = path(z0.flatten(1), z1.flatten(1), t)  # (B, T, D), D the number of latent elements
    b = z.shape[0]
    z = z.reshape(b * steps, *z0.shape[1:])
    x = decode_batched(model, z, _path_labels(y0, y1, t))
    return x.reshape(b, steps, *x.shape[1:])


def morph_strip(
    model: nn.Module,
    xa: torch.Tensor,
    xb: torch.Tensor,
    steps: int = 10,
    method: str = "slerp",
    ya: int | None = None,
    yb: int | None = None,
) -> torch.Tensor:
    """One strip from real image a through the decoded latent path to real image b.

    Args:
        model: has `encode` and `decode`.
        xa, xb: (C, H, W) or (1, C, H, W) images in [0, 1] (or uint8).
        steps: decoded points on the path, >= 2.
        method: "slerp" or "lerp".
        ya, yb: class ids for conditional models, or None.

    Returns:
        (steps + 2, C, H, W) in [0, 1]: xa, the decoded path, xb.
    """
    xa = xa.reshape(1, *xa.shape[-3:])
    xb = xb.reshape(1, *xb.shape[-3:])
    y0 = None if ya is None else torch.tensor([ya])
    y1 = None if yb is None else torch.tensor([yb])
    path = interpolate(model, xa, xb, steps, method, y0, y1)[0]  # (steps, C, H, W)
    real_a = (xa.float() / 255.0 if xa.dtype == torch.uint8 else xa.float()).cpu()
    real_b = (xb.float() / 255.0 if xb.dtype == torch.uint8 else xb.float()).cpu()
    return torch.cat([real_a, path, real_b])


def latent_walk(
    model: nn.Module,
    z: torch.Tensor,
    dims: Sequence[int],
    span: float = 3.0,
    steps: int = 9,
    std: torch.Tensor | None = None,
    y: int | None = None,
) -> torch.Tensor:
    """Vary one latent dimension at a time around z and decode (needs only `decode`).

    Row i sets z[dims[i]] += s * std[dims[i]] for s in linspace(-span, span, steps); with an odd
    number of steps the middle column decodes z itself.

    Args:
        model: has `decode`.
        z: (D,) or (1, D) the centre of the walk.
        dims: the latent dimensions to vary, one row each.
        span: how far to go each way, in units of std (or of 1 when std is None).
        steps: points per row, >= 2.
        std: (D,) the latent standard deviation per dimension (e.g. `embed(...).std(0)`), or None.
        y: a class id for conditional decoders, or None.

    Returns:
        (len(dims), steps, C, H, W) in [0, 1].

    Raises:
        GenlabError: the model's latent is spatial (see `require_vector_latent`).
    """
    require_vector_latent(model, "a latent walk")
    z = z.detach().reshape(-1).float().cpu()  # (D,)
    d = z.shape[0]
    dims = [int(i) for i in dims]
    if not dims or any(not -d <= i < d for i in dims):
        raise GenlabError(f"latent_walk needs dims in [0, {d}) for a {d}-D latent, got {dims}")
    if steps < 2:
        raise GenlabError(f"latent_walk needs steps >= 2, got {steps}")
    scale = torch.ones(d) if std is None else std.detach().reshape(-1).float().cpu()
    offsets = torch.linspace(-span, span, steps)  # (T,)
    walk = z.repeat(len(dims), steps, 1)  # (K, T, D)
    for row, i in enumerate(dims):
        walk[row, :, i] += offsets * scale[i]
    k = len(dims)
    y_t = None if y is None else torch.full((k * steps,), int(y), dtype=torch.long)
    x = decode_batched(model, walk.reshape(k * steps, d), y_t)
    return x.reshape(k, steps, *x.shape[1:])
