"""StyleGAN2: the modulated convolution (both forms) against a direct per-sample computation,
R1 against a closed-form gradient and against autograd through the model, the truncation trick,
style mixing, minibatch std, DiffAugment and exact resume of the training loop (the pictures:
tests/pictures/test_style.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from helpers import metric_rows

from genlab.data import DataSpec, load_data
from genlab.data.types import Shard
from genlab.errors import GenlabError
from genlab.models.stylegan import (
    FAMILY,
    StyleGAN,
    StyleGANConfig,
    diff_augment,
    minibatch_std,
    mix_styles,
    modulated_conv2d,
    r1_penalty,
)
from genlab.runs import load_weights
from genlab.training import TrainConfig, create_run, train

TINY = StyleGANConfig(latent_dim=8, mapping_layers=2, g_widths=(4, 8), d_widths=(4, 8))
TINY_TRAIN = TrainConfig(
    **{**FAMILY.train_defaults, "ema_decay": 0.9, "batch_size": 8},
    max_steps=6, log_every=2, sample_every=1000, checkpoint_every=3, seed=3,
)  # fmt: skip


def tiny_model(seed: int = 0, **changes) -> StyleGAN:
    torch.manual_seed(seed)
    model = StyleGAN(dataclasses.replace(TINY, **changes)).double().eval()
    model.w_avg.normal_()  # a mean w away from 0, as after training
    return model


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
        for grouped in (False, True):  # the paper's grouped conv and the activation-scaling form
            got = modulated_conv2d(x, weight, style, demodulate=demodulate, grouped=grouped)
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


def test_r1_of_the_model_is_gamma_half_the_squared_input_gradient_on_centred_images():
    model = tiny_model()
    real = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    centred = (2 * real - 1).requires_grad_(True)
    logits = model.discriminator((centred + 1) / 2)
    (grad,) = torch.autograd.grad(logits.sum(), centred)
    expected = 0.5 * TINY.r1_gamma * grad.square().flatten(1).sum(1).mean()
    torch.testing.assert_close(model.r1_loss(real).double(), expected)


def test_truncation_at_psi_0_gives_the_mean_w_image_for_every_z():
    model = tiny_model()
    z = torch.randn(5, TINY.latent_dim, dtype=torch.float64)
    noise = [m.double() for m in model.noise(1, torch.Generator().manual_seed(1))]  # shared
    ws = model.mapping(z, psi=0.0)
    assert torch.equal(ws, model.w_avg.expand(5, -1))
    x = model.synthesize(ws, noise)
    mean_image = model.synthesize(model.w_avg[None], noise)
    torch.testing.assert_close(x, mean_image.expand(5, -1, -1, -1))
    far = model.synthesize(model.mapping(z, psi=1.0), noise)  # not vacuous: psi = 1 differs
    assert (far - x).abs().amax() > 1e-3
    half = model.mapping(z, 0.5)
    torch.testing.assert_close(half, model.w_avg + 0.5 * (model.mapping(z) - model.w_avg))


def test_style_mixing_takes_the_coarse_layers_from_the_first_w():
    a, b = torch.randn(3, 6), torch.randn(3, 6)
    for cutoff in range(5):
        ws = mix_styles(a, b[:, None].expand(-1, 4, -1), torch.tensor(cutoff))
        assert torch.equal(ws[:, :cutoff], a[:, None].expand(-1, cutoff, -1))
        assert torch.equal(ws[:, cutoff:], b[:, None].expand(-1, 4 - cutoff, -1))
    per_sample = mix_styles(a, b[:, None].expand(-1, 4, -1), torch.tensor([0, 2, 4]))
    assert torch.equal(per_sample[1, :2], a[1].expand(2, -1))
    assert torch.equal(per_sample[1, 2:], b[1].expand(2, -1))


def test_the_coarse_styles_decide_the_layers_that_read_them():
    model = tiny_model()
    noise = [m.double() for m in model.noise(1, torch.Generator().manual_seed(0))]
    wa, wb = model.mapping(torch.randn(2, TINY.latent_dim, dtype=torch.float64)).chunk(2)
    n = model.num_ws
    all_a = model.synthesize(mix_styles(wa, wb[:, None].expand(-1, n, -1), torch.tensor(n)), noise)
    all_b = model.synthesize(mix_styles(wa, wb[:, None].expand(-1, n, -1), torch.tensor(0)), noise)
    torch.testing.assert_close(all_a, model.synthesize(wa, noise))
    torch.testing.assert_close(all_b, model.synthesize(wb, noise))
    # Changing only the fine styles leaves the coarse feature maps (the first conv) unchanged.
    first = model.generator.synthesis.convs[0]
    const = model.generator.synthesis.const[None]
    mixed = mix_styles(wa, wb[:, None].expand(-1, n, -1), torch.tensor(1))
    torch.testing.assert_close(first(const, mixed[:, 0], noise[0]), first(const, wa, noise[0]))


def test_minibatch_std_matches_a_direct_computation():
    x = torch.randn(8, 3, 2, 2, dtype=torch.float64)
    out = minibatch_std(x, 4)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    for i in range(8):
        group = x[i % 2 :: 2]  # samples i, i + B/G, ... share a group
        expected = (group.var(0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[i, 3], expected.expand(2, 2).float().double())
    assert minibatch_std(torch.randn(6, 2, 1, 1), 4).shape == (6, 3, 1, 1)  # G = 3 divides 6


def test_diffaugment_translates_cuts_out_and_keeps_gradients():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 16, 16, requires_grad=True)
    assert torch.equal(diff_augment(x, ()), x)
    t = diff_augment(x, ("translation",))
    assert t.shape == x.shape and not torch.equal(t, x)
    for i in range(16):  # each image is its own shift: its sum is a sub-sum of the original
        assert t[i].sum() <= x[i].sum() + 1e-4
    c = diff_augment(torch.ones(16, 1, 16, 16), ("cutout",))
    assert ((1 - c).flatten(1).sum(1) <= 64).all() and (c == 0).any()
    t.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.manual_seed(5)
    a = diff_augment(x.detach(), ("color", "translation", "cutout"))
    torch.manual_seed(5)
    assert torch.equal(a, diff_augment(x.detach(), ("color", "translation", "cutout")))
    two = Shard(0, 2), Shard(1, 2)  # two processes draw the rows one process would
    torch.manual_seed(7)
    one = diff_augment(x.detach(), ("translation",))
    parts = []
    for shard in two:
        torch.manual_seed(7)
        parts.append(diff_augment(x.detach()[shard.rank :: 2], ("translation",), shard))
    torch.testing.assert_close(one[0::2], parts[0])
    torch.testing.assert_close(one[1::2], parts[1])
    with pytest.raises(GenlabError, match="unknown augmentation"):
        StyleGAN(dataclasses.replace(TINY, diffaug="colour"))


def test_g_loss_tracks_the_mean_w():
    model = StyleGAN(TINY)
    z = torch.randn(16, TINY.latent_dim)
    model.g_loss(z)
    w = model.generator.mapping(z).mean(0)
    torch.testing.assert_close(model.w_avg, (1 - TINY.w_avg_beta) * w, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def fm_train(fmnist_dir):
    return load_data(DataSpec("fashion-mnist", str(fmnist_dir)), "train")


def _run(path, fmnist_dir, model=TINY, config=TINY_TRAIN):
    spec = DataSpec("fashion-mnist", str(fmnist_dir))
    return create_run(path, "stylegan", model, config, spec)


@pytest.mark.kernels
@pytest.mark.parametrize("diffaug", ["", "color,translation,cutout"])
def test_resume_equals_uninterrupted_run_with_r1_and_mixing(
    tmp_path, fmnist_dir, fm_train, diffaug
):
    model = dataclasses.replace(TINY, r1_every=2, diffaug=diffaug)
    straight = _run(tmp_path / "straight", fmnist_dir, model)
    assert train(straight, data=fm_train, progress=False).step == 6
    split = _run(tmp_path / "split", fmnist_dir, model)
    assert train(split, data=fm_train, progress=False, stop_at=3).step == 3
    assert train(split, data=fm_train, progress=False).step == 6
    for name in ("model.safetensors", "ema.safetensors", "state/optimizer.safetensors"):
        a, b = load_weights(straight / name), load_weights(split / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)
    rows = metric_rows(split)
    assert rows == metric_rows(straight)
    assert float(rows[-1]["r1"]) > 0  # R1 ran
    trained = load_weights(split / "model.safetensors")
    assert trained["generator.mapping.w_avg"].abs().sum() > 0  # the mean w is tracked


@pytest.mark.parametrize("size, channels, num_ws", [(28, 1, 6), (32, 3, 8), (64, 3, 10)])
def test_sizes_and_channels(size, channels, num_ws):
    model = StyleGAN(dataclasses.replace(TINY, image_size=size, channels=channels))
    assert model.num_ws == num_ws  # one conv at the bottom, two per doubling, + the last toRGB
    x = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, channels, size, size) and x.min() >= 0 and x.max() <= 1
    assert model.discriminator(x).shape == (4,)
