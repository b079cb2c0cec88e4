"""Spatial-latent VAE (latent_channels > 0): shapes, KL, ELBO, training, CLI, latent tools."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import genlab
from genlab.cli import main
from genlab.data import Batch, DataSpec, load_data
from genlab.errors import GenlabError
from genlab.models.vae import VAE, VAEConfig
from genlab.runs import config_from_dict

TINY = VAEConfig(widths=(8, 16), latent_channels=2)
TRAIN = ["--max-steps", "4", "--batch-size", "16", "--no-progress", "--sample-every", "2"]


def make(config: VAEConfig = TINY, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(config)


@pytest.mark.parametrize(("channels", "size", "side"), [(1, 28, 7), (3, 32, 4)])
def test_shapes(channels, size, side):
    model = make(dataclasses.replace(TINY, channels=channels, image_size=size))
    assert model.latent_shape == (2, side, side)
    x = torch.rand(3, channels, size, size)
    mu, logvar = model.encode_dist(x)
    assert mu.shape == logvar.shape == (3, 2, side, side)
    assert model.encode(x).shape == (3, 2, side, side)
    x_hat = model.decode(model.reparameterize(mu, logvar))
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    assert model.decode_logits(mu).shape == x.shape
    g = torch.Generator().manual_seed(1)
    s = model.sample(5, generator=g)
    assert s.shape == (5, channels, size, size)
    torch.testing.assert_close(s, model.sample(5, generator=torch.Generator().manual_seed(1)))
    out = model.elbo(x)
    assert out.elbo.shape == out.recon.shape == out.kl.shape == (3,)
    assert model.iwae_log_likelihood(x, k=5, chunk_size=2).shape == (3,)


def test_vector_latent_shape_is_unchanged():
    assert make(VAEConfig(latent_dim=5, widths=(8, 16))).latent_shape == (5,)


def test_kl_is_the_closed_form_summed_over_all_elements():
    model = make()
    with torch.no_grad():
        model.to_stats.bias.add_(0.3)  # mu and logvar away from 0
        x = torch.rand(4, 1, 28, 28)
        mu, logvar = model.encode_dist(x)  # (4, 2, 7, 7)
        kl = model.elbo(x).kl
    q = Normal(mu.double(), torch.exp(0.5 * logvar.double()))
    expected = kl_divergence(q, Normal(0.0, 1.0)).sum((1, 2, 3))  # (4,)
    torch.testing.assert_close(kl.double(), expected, rtol=1e-5, atol=1e-5)
    assert (kl > 0).all()


def test_loss_is_recon_plus_beta_kl():
    model = make(dataclasses.replace(TINY, beta=0.25))
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(3)
    loss, logs = model.loss(Batch(x, torch.full((6,), -1)))
    torch.manual_seed(3)  # the same eps: elbo draws it like loss does
    out = model.elbo(x)
    torch.testing.assert_close(loss, -(out.recon - 0.25 * out.kl).mean())
    torch.testing.assert_close(logs["recon"], out.recon.mean())
    torch.testing.assert_close(logs["kl"], out.kl.mean())
    torch.testing.assert_close(out.elbo, out.recon - out.kl)


def test_iwae_k1_matches_the_elbo_in_expectation():
    model = make()
    x = torch.rand(3, 1, 28, 28)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        elbos = torch.stack([model.elbo(x, generator=g).elbo for _ in range(100)])  # (100, B)
        iwae1 = torch.stack([model.iwae_log_likelihood(x, k=1, generator=g) for _ in range(100)])
    se = elbos.std(0) / math.sqrt(100)
    assert ((iwae1.mean(0) - elbos.mean(0)).abs() < 5 * math.sqrt(2) * se + 1e-3).all()


def test_conditional_spatial_vae_is_refused():
    with pytest.raises(GenlabError, match="spatial latent VAE is unconditional"):
        VAE(dataclasses.replace(TINY, num_classes=10))
    with pytest.raises(GenlabError, match="latent_channels"):
        VAE(dataclasses.replace(TINY, latent_channels=-1))


def test_old_config_without_latent_channels_loads():
    old = dataclasses.asdict(VAEConfig(latent_dim=6, widths=(8, 16)))
    del old["latent_channels"]
    old["widths"] = list(old["widths"])  # as read back from JSON
    config = config_from_dict(VAEConfig, old)
    assert config.latent_channels == 0
    assert make(config).latent_shape == (6,)


def test_tiny_spatial_vae_learns_the_synthetic_data(fmnist_dir):
    train = load_data(DataSpec("fashion-mnist", str(fmnist_dir)), "train")
    held_out = load_data(DataSpec("fashion-mnist", str(fmnist_dir)), "test").batch(torch.arange(64))
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)

    def recon_of_mean() -> float:  # -log p(x | z = mu), nats per image
        with torch.no_grad():
            logits = model.decode_logits(model.encode(held_out.x))
            return -model.log_px_given_z(held_out.x, logits).mean().item()

    before = recon_of_mean()
    for _ in range(200):
        loss, _ = model.loss(train.batch(torch.randint(len(train), (16,), generator=g)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = recon_of_mean()
    assert math.isfinite(after) and after < 0.6 * before, (before, after)


@pytest.fixture(scope="module")
def spatial_run(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae_spatial"
    code = main(
        ["train", "vae", "--latent-channels", "4", "--data-dir", str(fmnist_dir), "--out", str(out)]
        + TRAIN
    )
    assert code == 0
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_cli_trains_a_spatial_vae(spatial_run):
    model = genlab.load(spatial_run)
    assert model.latent_shape == (4, 7, 7)
    assert model.sample(2).shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    "command", [["reconstruct"], ["interpolate", "--pairs", "2", "--steps", "3"], ["arithmetic"]]
)
def test_latent_tools_that_work_on_a_spatial_latent(spatial_run, tmp_path, command):
    out = tmp_path / "out.png"
    assert main([command[0], str(spatial_run), *command[1:], "--out", str(out)]) == 0
    assert out.exists()


@pytest.mark.parametrize("command", ["latent-map", "walk", "embed"])
def test_latent_tools_that_need_a_vector_refuse(spatial_run, tmp_path, capsys, command):
    out = tmp_path / ("out.csv" if command == "embed" else "out.png")
    capsys.readouterr()
    assert main([command, str(spatial_run), "--out", str(out)]) == 2
    assert "needs a vector latent" in one_error_line(capsys)
    assert not out.exists()


def test_latent_channels_is_refused_for_other_families(fmnist_dir, tmp_path, capsys):
    argv = ["--latent-channels", "4", "--data-dir", str(fmnist_dir), *TRAIN]
    assert main(["train", "gan", "--out", str(tmp_path / "g"), *argv]) == 2
    assert "--latent-channels" in one_error_line(capsys)
    assert main(["train", "vae", "--conditional", "--out", str(tmp_path / "c"), *argv]) == 2
    assert "unconditional" in one_error_line(capsys)
