"""StyleGAN2's modulated convolution against a direct per-sample computation, and R1 against a
discriminator whose input gradient is known in closed form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genlab.models.stylegan import modulated_conv2d, r1_penalty


def direct(x, weight, style, demodulate, eps=1e-8):
    outs = []
    for i in range(x.shape[0]):
        w = weight * style[i][None, :, None, None]  # s_i scales input channel i
        if demodulate:
            norm = torch.sqrt((w**2).sum(dim=(1, 2, 3)) + eps)  # per output channel j
            w = w / norm[:, None, None, None]
        outs.append(F.conv2d(x[i : i + 1], w, padding=1))
    return torch.cat(outs)


def test_modulated_convolution_equals_the_direct_computation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    style = torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.5
    for demodulate in (False, True):
        got = modulated_conv2d(x, weight, style, demodulate=demodulate)
        assert torch.allclose(got, direct(x, weight, style, demodulate), atol=1e-12)


def test_demodulation_gives_unit_norm_kernels_whatever_the_style():
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    x = torch.zeros(2, 3, 3, 3, dtype=torch.float64)
    x[:, :, 1, 1] = 1.0  # a delta per channel: the output is the kernel's centre column
    a = modulated_conv2d(x, weight, torch.full((2, 3), 0.1, dtype=torch.float64))
    b = modulated_conv2d(x, weight, torch.full((2, 3), 10.0, dtype=torch.float64))
    assert torch.allclose(a, b)  # a uniform style scale is removed by demodulation


def test_r1_matches_the_closed_form_gradient():
    a = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    real = torch.randn(5, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    logits = (a * real).flatten(1).sum(1) + (real**2).flatten(1).sum(1)  # grad: a + 2x
    penalty = r1_penalty(real, logits, gamma=3.0)
    expected = 0.5 * 3.0 * ((a + 2 * real.detach()) ** 2).flatten(1).sum(1).mean()
    assert torch.allclose(penalty, expected)
    penalty.backward()  # differentiable for the discriminator's update
    assert real.grad is not None
