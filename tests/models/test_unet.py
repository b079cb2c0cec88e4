"""Tests for the noise-prediction U-Net."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from genlab.diffusion import make_schedule
from genlab.errors import GenlabError
from genlab.models.unet import UNet, UNetConfig, drop_labels, timestep_embedding

TINY = UNetConfig(width=8, mults=(1, 2), blocks=1, attention_levels=(1,), heads=2, groups=4)


def perturb_output(model: UNet) -> UNet:
    """Make the zero-initialised output conv non-zero so conditioning becomes visible."""
    with torch.no_grad():
        model.out.weight.normal_(0, 0.1)
    return model


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (1, 32), (3, 32), (3, 64)])
def test_output_shape_equals_input_shape(channels, size):
    cfg = UNetConfig(channels=channels, image_size=size, width=8, heads=2, groups=4)
    x = torch.randn(2, channels, size, size)
    assert UNet(cfg)(x, torch.tensor([0, 99])).shape == x.shape


def test_odd_sizes_with_three_levels():
    cfg = UNetConfig(image_size=28, width=8, mults=(1, 2, 2, 2), heads=2, groups=4)
    x = torch.randn(1, 1, 28, 28)  # 28 -> 14 -> 7 -> 4 -> 7 -> 14 -> 28
    assert UNet(cfg)(x, torch.tensor([3])).shape == x.shape


def test_output_is_exactly_zero_at_init():
    out = UNet(TINY)(torch.randn(3, 1, 16, 16), torch.tensor([0, 5, 9]))
    assert torch.equal(out, torch.zeros_like(out))


def test_timestep_embedding_matches_formula():
    t, dim = torch.tensor([0, 7, 250]), 6
    emb = timestep_embedding(t, dim)
    for b, tb in enumerate(t.tolist()):
        for i in range(dim // 2):
            w = 10000.0 ** (-i / (dim // 2))
            assert emb[b, i].item() == pytest.approx(math.cos(tb * w), abs=1e-5)
            assert emb[b, dim // 2 + i].item() == pytest.approx(math.sin(tb * w), abs=1e-5)


def test_different_timesteps_give_different_outputs_and_float_t_works():
    model = perturb_output(UNet(TINY))
    x = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1)
    out = model(x, torch.tensor([1, 80]))
    assert not torch.allclose(out[0], out[1])
    assert torch.allclose(model(x, torch.tensor([1.0, 80.0])), out)


def test_class_conditioning_changes_output_and_accepts_null_id():
    model = perturb_output(UNet(replace(TINY, num_classes=10)))
    x, t = torch.randn(1, 1, 16, 16).expand(3, -1, -1, -1), torch.full((3,), 20)
    out = model(x, t, torch.tensor([0, 3, 10]))  # 10 is the null class
    assert not torch.allclose(out[0], out[1])
    assert not torch.allclose(out[1], out[2])
    assert torch.allclose(model(x, t, None), model(x, t, torch.full((3,), 10)))


def test_cross_attention_context_changes_output_and_is_optional():
    model = perturb_output(UNet(replace(TINY, context_dim=12)))
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 40])
    a = model(x, t, context=torch.randn(2, 5, 12))
    b = model(x, t, context=torch.randn(2, 5, 12))
    assert not torch.allclose(a, b)
    assert model(x, t).shape == x.shape


def test_drop_labels_drops_about_p_and_is_seeded():
    y = torch.arange(10).repeat(1000)  # (10000,)
    dropped = drop_labels(y, 0.2, 10, torch.Generator().manual_seed(1))
    frac = (dropped == 10).float().mean().item()
    assert 0.18 < frac < 0.22
    kept = dropped != 10
    assert torch.equal(dropped[kept], y[kept])
    again = drop_labels(y, 0.2, 10, torch.Generator().manual_seed(1))
    assert torch.equal(dropped, again)
    assert torch.equal(drop_labels(y, 0.0, 10), y)
    with pytest.raises(GenlabError):
        drop_labels(y, 1.5, 10)


@pytest.mark.parametrize("extra", [{}, {"num_classes": 4, "context_dim": 6}])
def test_gradients_reach_every_parameter(extra):
    model = UNet(replace(TINY, **extra))
    perturb_output(model)
    cond = torch.tensor([1, 4]) if extra else None
    context = torch.randn(2, 3, 6) if extra else None
    out = model(torch.randn(2, 1, 16, 16), torch.tensor([2, 50]), cond, context)
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_width_not_divisible_by_groups_raises():
    with pytest.raises(GenlabError, match="groups"):
        UNet(UNetConfig(width=6, groups=4))


def test_tiny_unet_learns_the_noise_on_a_fixed_batch():
    torch.manual_seed(0)
    schedule = make_schedule("cosine", 100)
    model = UNet(replace(TINY, image_size=8))
    x0 = torch.randn(8, 1, 8, 8).sign() * 0.8  # (8, 1, 8, 8) fixed batch
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(100):
        loss = schedule.training_loss(model, x0, target="eps", generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # The zero-initialised output predicts eps = 0 at step 0, so the first loss is mean(eps^2) ~ 1;
    # over seeds 0-2 the mean of the last 10 losses is 0.39-0.43.
    assert 0.8 < losses[0] < 1.2
    assert sum(losses[-10:]) / 10 < 0.6


def test_state_dict_round_trips_through_safetensors(tmp_path):
    model = perturb_output(UNet(replace(TINY, num_classes=3)))
    save_file(model.state_dict(), tmp_path / "unet.safetensors")
    clone = UNet(model.config)
    clone.load_state_dict(load_file(tmp_path / "unet.safetensors"))
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([5, 60]), torch.tensor([0, 3])
    assert torch.equal(clone(x, t, y), model(x, t, y))
