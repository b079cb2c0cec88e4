"""StyleGAN2 building blocks (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), sized for a CPU. This module holds the pieces whose maths the family rests on;
the generator, discriminator and the family record come with them (issue 14).

- Modulated convolution (eq. 1-3): each output pixel's style s (from w by an affine map) scales
  the input channels of the kernel, w'_ijk = s_i w_ijk, and demodulation rescales each output
  channel to unit expected norm, w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps). Implemented as
  one grouped convolution over the batch.
- R1 (Mescheder et al. 2018): gamma / 2 E_x[||grad_x D(x)||^2] on real images, applied lazily
  (every k steps, scaled by k).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    style: torch.Tensor,
    demodulate: bool = True,
    padding: int = 1,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Convolve each sample with its own modulated (and demodulated) kernel.

    Args:
        x: (B, C_in, H, W) inputs.
        weight: (C_out, C_in, k, k) the shared kernel.
        style: (B, C_in) the per-sample scales s.
        demodulate: rescale each sample's output channels to unit expected norm.

    Returns:
        (B, C_out, H', W').
    """
    b, c_in, h, w = x.shape
    c_out = weight.shape[0]
    wt = weight[None] * style[:, None, :, None, None]  # (B, C_out, C_in, k, k)
    if demodulate:
        wt = wt * torch.rsqrt(wt.pow(2).sum(dim=(2, 3, 4), keepdim=True) + eps)
    out = F.conv2d(
        x.reshape(1, b * c_in, h, w),
        wt.reshape(b * c_out, c_in, *weight.shape[2:]),
        padding=padding,
        groups=b,
    )
    return out.reshape(b, c_out, *out.shape[2:])


def r1_penalty(real: torch.Tensor, logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """gamma / 2 * mean over the batch of ||grad_x D(x)||^2, from D's logits on `real` (which
    must require grad); differentiable (create_graph), for the discriminator's loss."""
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()
