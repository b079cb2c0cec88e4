"""GAN: losses against hand-computed values, saturation, gradient penalty, shapes, sampling."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError
from genlab.families import FAMILIES
from genlab.images import read_png_metadata
from genlab.models.gan import (
    GAN,
    LOSSES,
    GANConfig,
    d_loss_bce,
    d_loss_hinge,
    d_loss_wgan,
    g_loss_hinge,
    g_loss_minimax,
    g_loss_ns,
    g_loss_wgan,
    generator_gradient_vs_d,
    gradient_penalty,
    plot_gradient_picture,
)
from genlab.runs import build_model, load_weights, save_weights

TINY = GANConfig(latent_dim=8, g_widths=(8, 16), d_widths=(8, 16))
REAL = torch.tensor([0.5, 2.0, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 0.5])


def make(config: GANConfig = TINY, seed: int = 0) -> GAN:
    torch.manual_seed(seed)
    return GAN(config)


# -- losses ------------------------------------------------------------------------------------


def test_probability_losses_at_logit_zero():
    zero = torch.zeros(4)
    # D = 1/2 everywhere: -log(1/2) - log(1 - 1/2) = 2 log 2
    assert d_loss_bce(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert g_loss_minimax(zero).item() == pytest.approx(-math.log(2))  # log(1 - 1/2)
    assert g_loss_ns(zero).item() == pytest.approx(math.log(2))  # -log(1/2)


def test_probability_losses_by_hand():
    D_real = [1 / (1 + math.exp(-v)) for v in REAL.tolist()]  # D(x) = sigmoid(l)
    D_fake = [1 / (1 + math.exp(-v)) for v in FAKE.tolist()]
    d = -sum(map(math.log, D_real)) / 3 - sum(math.log(1 - p) for p in D_fake) / 3
    assert d_loss_bce(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    minimax = sum(math.log(1 - p) for p in D_fake) / 3
    assert g_loss_minimax(FAKE).item() == pytest.approx(minimax, rel=1e-6)
    assert g_loss_ns(FAKE).item() == pytest.approx(-sum(map(math.log, D_fake)) / 3, rel=1e-6)


def test_d_loss_bce_matches_bce_with_logits():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, generator=g) * 3, torch.randn(16, generator=g) * 3
    expected = F.binary_cross_entropy_with_logits(
        real, torch.ones(16)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros(16))
    torch.testing.assert_close(d_loss_bce(real, fake), expected)


def test_probability_losses_are_stable_at_extreme_logits():
    big = torch.tensor([100.0])
    assert g_loss_ns(-big).item() == pytest.approx(100.0)  # -log sigmoid(-100)
    assert g_loss_minimax(big).item() == pytest.approx(-100.0)  # log(1 - sigmoid(100))
    assert d_loss_bce(-big, big).item() == pytest.approx(200.0)


def test_hinge_and_wgan_by_hand():
    # relu(1 - [0.5, 2, -1]) = [0.5, 0, 2]; relu(1 + [-2, 0, 0.5]) = [0, 1, 1.5]
    assert d_loss_hinge(REAL, FAKE).item() == pytest.approx(2.5 / 3 + 2.5 / 3)
    assert g_loss_hinge(FAKE).item() == pytest.approx(0.5)
    assert d_loss_wgan(REAL, FAKE).item() == pytest.approx(-0.5 - 0.5)
    assert g_loss_wgan(FAKE).item() == pytest.approx(0.5)
    assert set(LOSSES) == {"minimax", "ns", "hinge", "wgan-gp"}


# -- saturation --------------------------------------------------------------------------------


def logit_grad(loss_fn, logit: float) -> float:
    """|d loss / d logit| for one sample."""
    lv = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
    loss_fn(lv).backward()
    return lv.grad.abs().item()


def test_minimax_saturates_where_d_rejects_the_fakes():
    # D(G(z)) = sigmoid(-10) = 4.5e-5: the minimax gradient vanishes, the ns one does not
    assert logit_grad(g_loss_minimax, -10.0) < 1e-4
    assert logit_grad(g_loss_ns, -10.0) > 0.999
    # D(G(z)) ~ 1: the opposite ordering
    assert logit_grad(g_loss_ns, 10.0) < 1e-4
    assert logit_grad(g_loss_minimax, 10.0) > 0.999


def test_autograd_matches_the_analytic_curves():
    logits = torch.linspace(-10, 10, 41, dtype=torch.float64)
    curves = generator_gradient_vs_d(logits)
    for loss_fn, analytic in ((g_loss_minimax, curves.minimax), (g_loss_ns, curves.ns)):
        lv = logits.clone().requires_grad_(True)
        (loss_fn(lv) * len(logits)).backward()  # the mean divides each gradient by N
        torch.testing.assert_close(lv.grad.abs(), analytic)
    torch.testing.assert_close(curves.d_fake, torch.sigmoid(logits))
    default = generator_gradient_vs_d()
    assert default.d_fake[0] < 1e-4 and default.d_fake[-1] > 1 - 1e-4
    assert torch.all(default.d_fake.diff() > 0)


def test_plot_gradient_picture(tmp_path):
    out = plot_gradient_picture(tmp_path / "a.png", metadata={"command": "test"})
    assert out.stat().st_size > 0 and read_png_metadata(out)["command"] == "test"
    measured = {"ns run": ([0.1, 0.3, 0.5], [1.0, 0.5, 0.2]), "minimax run": ([0.05], [1e-3])}
    assert plot_gradient_picture(tmp_path / "b.png", measured).stat().st_size > 0


# -- gradient penalty --------------------------------------------------------------------------


def test_gradient_penalty_of_linear_critics():
    g = torch.Generator().manual_seed(0)
    x_real, x_fake = torch.rand(6, 1, 4, 4, generator=g), torch.rand(6, 1, 4, 4, generator=g)
    w = torch.randn(16, generator=g)
    w = w / w.norm()  # gradient of f(x) = <w, x> is w everywhere: norm exactly 1

    def critic(scale):
        return lambda x, y: x.flatten(1) @ (scale * w)

    assert gradient_penalty(critic(1.0), x_real, x_fake).item() < 1e-10
    assert gradient_penalty(critic(3.0), x_real, x_fake).item() == pytest.approx(4.0)  # (3-1)^2


def test_gradient_penalty_is_positive_and_differentiable_for_a_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1))
    x_real, x_fake = torch.rand(6, 1, 4, 4), torch.rand(6, 1, 4, 4)
    gp = gradient_penalty(lambda x, y: net(x).squeeze(1), x_real, x_fake)
    assert gp.item() > 0
    gp.backward()
    weights = [net[1].weight, net[1].bias, net[3].weight]  # the last bias does not move grad_x
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_gradient_penalty_eps_is_seeded():
    x_real, x_fake = torch.rand(6, 2), torch.rand(6, 2)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))

    def f(x, y):
        return net(x).squeeze(1)

    a = gradient_penalty(f, x_real, x_fake, generator=torch.Generator().manual_seed(1))
    b = gradient_penalty(f, x_real, x_fake, generator=torch.Generator().manual_seed(1))
    assert a.item() == b.item()


# -- networks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (3, 64)])
@pytest.mark.parametrize("num_classes", [0, 3])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_shapes(channels, size, num_classes, spectral_norm):
    config = dataclasses.replace(
        TINY,
        channels=channels,
        image_size=size,
        num_classes=num_classes,
        spectral_norm=spectral_norm,
    )
    model = make(config)
    y = torch.tensor([0, 2, 1, 0]) if num_classes else None
    z = torch.randn(4, 8)
    x = model.generator(z, y)
    assert x.shape == (4, channels, size, size) and x.min() >= 0 and x.max() <= 1
    assert model.discriminator(torch.rand(4, channels, size, size), y).shape == (4,)
    loss_d, logs_d = model.d_loss(torch.rand(4, channels, size, size), y, z)
    loss_g, logs_g = model.g_loss(z, y)
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert set(logs_d) == {"loss_d", "d_real", "d_fake"} and set(logs_g) == {"loss_g", "d_fake_g"}
    assert not any(v.requires_grad for v in [*logs_d.values(), *logs_g.values()])
    assert model.sample(3).shape == (3, channels, size, size)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_each_loss_trains_the_right_player(loss):
    model = make(dataclasses.replace(TINY, loss=loss))
    x, z = torch.rand(4, 1, 28, 28), torch.randn(4, 8)
    loss_d, logs = model.d_loss(x, None, z)
    assert ("gp" in logs) == (loss == "wgan-gp")
    if loss in ("minimax", "ns"):
        assert 0 < logs["d_real"] < 1 and 0 < logs["d_fake"] < 1  # probabilities
    loss_d.backward()
    assert all(p.grad is None for p in model.generator.parameters())  # G's output detached
    assert all(p.grad is not None for p in model.discriminator.parameters())
    model.zero_grad(set_to_none=True)
    model.g_loss(z)[0].backward()
    assert all(p.grad is not None for p in model.generator.parameters())


def test_batch_norm_only_in_probability_and_hinge_discriminators():
    def has_bn(config):
        return any(isinstance(m, nn.BatchNorm2d) for m in GAN(config).discriminator.modules())

    assert has_bn(TINY) and has_bn(dataclasses.replace(TINY, loss="hinge"))
    assert not has_bn(dataclasses.replace(TINY, loss="wgan-gp"))
    assert not has_bn(dataclasses.replace(TINY, spectral_norm=True))


def test_spectral_norm_normalises_the_discriminator():
    model = make(dataclasses.replace(TINY, spectral_norm=True))
    x = torch.rand(8, 1, 28, 28)
    for _ in range(30):  # one power iteration per forward in train mode
        model.discriminator(x)
    w = model.discriminator.linear.weight  # (1, F): sigma is the vector's norm
    assert w.norm().item() == pytest.approx(1.0, abs=1e-4)
    conv = model.discriminator.net[0].weight  # (out, in, 4, 4)
    assert torch.linalg.matrix_norm(conv.flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_sample_is_seeded_and_matches_decode():
    model = make().eval()
    a = model.sample(5, generator=torch.Generator().manual_seed(3))
    b = model.sample(5, generator=torch.Generator().manual_seed(3))
    c = model.sample(5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    z = torch.randn(5, model.latent_dim, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model.decode(z), a)


def test_conditional_sampling_cycles_classes_and_checks_labels():
    model = make(dataclasses.replace(TINY, num_classes=3)).eval()
    g = torch.Generator().manual_seed(0)
    cycled = model.sample(5, generator=g)
    given = model.sample(5, generator=g.manual_seed(0), y=torch.tensor([0, 1, 2, 0, 1]))
    other = model.sample(5, generator=g.manual_seed(0), y=torch.tensor([2, 2, 2, 2, 2]))
    assert torch.equal(cycled, given) and not torch.equal(cycled, other)
    with pytest.raises(GenlabError, match="labels in"):
        model.sample(2, y=torch.tensor([0, 3]))
    with pytest.raises(GenlabError, match="needs the labels"):
        model.d_loss(torch.rand(2, 1, 28, 28), None, torch.randn(2, 8))


def test_bad_configs_error():
    with pytest.raises(GenlabError, match="loss must be one of"):
        GAN(dataclasses.replace(TINY, loss="lsgan"))
    with pytest.raises(GenlabError, match="n_critic"):
        GAN(dataclasses.replace(TINY, n_critic=0))
    with pytest.raises(GenlabError, match="unsupported image_size"):
        GAN(dataclasses.replace(TINY, image_size=30))


def test_registered_family_builds_from_a_json_config():
    assert (FAMILIES["gan"].config, FAMILIES["gan"].model) == (GANConfig, GAN)
    as_json = json.loads(json.dumps(dataclasses.asdict(TINY)))  # tuples become lists
    model = build_model({"family": "gan", "model": as_json})
    assert isinstance(model, GAN) and model.config == TINY
    assert model.latent_dim == 8


def test_weights_round_trip_through_safetensors(tmp_path):
    config = dataclasses.replace(TINY, num_classes=3, spectral_norm=True)
    model = make(config)
    model.d_loss(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 0]), torch.randn(4, 8))
    save_weights(tmp_path / "w.safetensors", model.state_dict())
    loaded = make(config, seed=1)
    loaded.load_state_dict(load_weights(tmp_path / "w.safetensors"))
    model.eval()
    loaded.eval()
    z, y, x = torch.randn(3, 8), torch.tensor([2, 0, 1]), torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(loaded.decode(z, y), model.decode(z, y))
    torch.testing.assert_close(loaded.discriminator(x, y), model.discriminator(x, y))


def test_discriminator_steps_decrease_its_loss():
    model = make()
    x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 8)
    opt = torch.optim.Adam(model.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    first, _ = model.d_loss(x, None, z)
    for _ in range(8):
        loss, _ = model.d_loss(x, None, z)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.d_loss(x, None, z)[0].item() < 0.7 * first.item()


def test_minibatch_std_lets_d_see_the_rest_of_the_batch():
    torch.manual_seed(0)
    config = GANConfig(num_classes=3, g_widths=(4, 8), d_widths=(4, 8), spectral_norm=True,
                       loss="hinge", minibatch_std=True)  # fmt: skip
    d = GAN(config).discriminator.eval()
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 3
    other = x.clone()
    other[4] = 0.0  # sample 4 shares a group with sample 0 (groups: i, i + 2, i + 4, i + 6)
    before, after = d(x, y), d(other, y)
    assert before.shape == (8,) and not torch.isclose(before[0], after[0])
    plain = GAN(dataclasses.replace(config, minibatch_std=False)).discriminator.eval()
    torch.testing.assert_close(plain(x, y)[0], plain(other, y)[0])  # without it: per sample


def test_mode_seeking_pays_g_for_letting_z_change_the_image():
    from genlab.models.gan import mode_seeking_ratio

    x1, x2 = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    z1, z2 = torch.randn(3, 5), torch.randn(3, 5)
    expected = (x1 - x2).abs().mean() / (z1 - z2).abs().mean()
    torch.testing.assert_close(mode_seeking_ratio(x1, x2, z1, z2), expected)
    torch.manual_seed(0)
    config = GANConfig(num_classes=3, g_widths=(4, 8), d_widths=(4, 8), latent_dim=6)
    plain, seeking = GAN(config), GAN(dataclasses.replace(config, mode_seeking=2.0))
    seeking.load_state_dict(plain.state_dict())
    z, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 1, 2, 2])
    loss, logs = seeking.g_loss(z, y)
    paired = torch.tensor([0, 1, 2, 0, 0, 1, 2, 0])  # pairs (i, i + 4) share a label
    base, _ = plain.g_loss(z, paired)
    ratio = mode_seeking_ratio(*plain.generator(z, paired).split(4), *z.split(4))
    torch.testing.assert_close(logs["ms_ratio"], ratio.detach())
    torch.testing.assert_close(loss, base + 2.0 / (ratio + 1e-5))
