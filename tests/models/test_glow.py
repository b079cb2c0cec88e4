"""Glow: every layer inverts and its log-determinant equals log|det J| from autograd, as does the
whole multi-scale flow's; a 2-D flow of the same layers integrates to 1; the dequantizer's
log q is the density of its u; ActNorm's data-dependent init (in bf16 too), kept through save,
load and exact resume; the loss falls on one batch; seeded sampling; encode/decode; the CLI
(nll, sample --temperature, interpolate) on a tiny run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.autograd.functional import jacobian

import genlab
from genlab.cli import main
from genlab.data import Batch, DataSpec, ImageData
from genlab.errors import GenlabError
from genlab.models.glow import (
    ActNorm,
    AffineCoupling,
    Dequantizer,
    FlowStep,
    Glow,
    GlowConfig,
    InvConv1x1,
    SplitPrior,
    squeeze,
    standard_normal_log_prob,
    unsqueeze,
)
from genlab.runs import load_weights
from genlab.training import TrainConfig, create_run, train

TINY = {"image_size": 4, "levels": 2, "depth": 2, "width": 8, "dequant_width": 8}


def randomized(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """The module in float64 with noise added to every parameter (zero-initialised layers are
    not the identity any more)."""
    module = module.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def tiny(seed: int = 0, **fields) -> Glow:
    torch.manual_seed(seed)
    return randomized(Glow(GlowConfig(**{**TINY, **fields})), seed=seed).eval()


def log_abs_det(f, x: torch.Tensor) -> torch.Tensor:
    """log|det df/dx| of f on one example x (1, ...) by autograd."""
    J = jacobian(lambda t: f(t.view_as(x)).flatten(), x.flatten())
    return torch.linalg.slogdet(J).logabsdet


def images(n: int = 6, side: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, side, side), generator=g).double() / 255


# ------------------------------------------------------------------------------ the layers

LAYERS = {
    "actnorm": lambda: ActNorm(4),
    "invconv": lambda: InvConv1x1(4),
    "coupling": lambda: AffineCoupling(4, 8),
    "step": lambda: FlowStep(4, 8),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_each_layer_inverts_and_its_logdet_is_log_abs_det_of_its_jacobian(name):
    torch.manual_seed(0)
    layer = randomized(LAYERS[name]())
    x = torch.randn(3, 4, 2, 3, dtype=torch.float64)
    y, logdet = layer(x)
    torch.testing.assert_close(layer.inverse(y), x, atol=1e-5, rtol=0)
    assert logdet.shape == (3,)
    for i in range(3):
        expected = log_abs_det(lambda t: layer(t)[0], x[i : i + 1])
        torch.testing.assert_close(logdet[i], expected, atol=1e-8, rtol=1e-8)


def test_the_split_prior_is_an_affine_flow_of_z_given_h():
    prior = randomized(SplitPrior(2))
    h, z = torch.randn(2, 2, 3, 3, dtype=torch.float64).unbind(0)
    h, z = h[None], z[None]
    eps, logdet = prior(h, z)
    torch.testing.assert_close(prior.inverse(h, eps), z, atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet[0], log_abs_det(lambda t: prior(h, t)[0], z))


def test_squeeze_is_a_permutation_and_unsqueeze_its_inverse():
    x = torch.arange(2 * 3 * 4 * 6.0).reshape(2, 3, 4, 6)
    s = squeeze(x)
    assert s.shape == (2, 12, 2, 3)
    assert torch.equal(unsqueeze(s), x) and torch.equal(s.flatten(1).sort(1).values, x.flatten(1))
    assert torch.equal(s[0, :4, 0, 0], x[0, 0, :2, :2].flatten())  # one 2x2 block, 4 channels


def test_the_whole_flow_inverts_and_its_logdet_is_that_of_its_jacobian():
    model = tiny()
    y = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    eps, logdet = model.flow(y)
    assert [tuple(e.shape[1:]) for e in eps] == model.latent_shapes == [(2, 2, 2), (8, 1, 1)]
    torch.testing.assert_close(model.reverse(eps), y, atol=1e-5, rtol=0)

    def flat(t):
        return torch.cat([e.flatten(1) for e in model.flow(t)[0]], 1)

    for i in range(3):
        torch.testing.assert_close(logdet[i], log_abs_det(flat, y[i : i + 1]))


@pytest.mark.parametrize("preprocess", ["center", "logit"])
def test_the_preprocessing_logdet_counts_the_256_levels_and_the_logit(preprocess):
    model = tiny(preprocess=preprocess)
    a = torch.rand(1, 1, 4, 4, dtype=torch.float64) * 256  # v + u
    _, logdet = model.to_flow(a / 256)
    torch.testing.assert_close(logdet[0], log_abs_det(lambda t: model.to_flow(t / 256)[0], a))
    y = model.to_flow(a / 256)[0]
    assert torch.equal(model.from_flow(y), torch.floor(a).clamp(0, 255).float() / 255)


def test_the_dequantizers_log_q_is_the_density_of_its_u():
    torch.manual_seed(0)
    q = randomized(Dequantizer(1, 8, 2), std=0.1)
    x = images(1) - 0.5
    e = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    u, log_q = q(x, e)
    assert ((u > 0) & (u < 1)).all()
    # change of variables: log q(u) = log N(e) - log|det du/de|
    expected = standard_normal_log_prob(e) - log_abs_det(lambda t: q(x, t)[0], e)
    torch.testing.assert_close(log_q, expected)


def test_a_2d_flow_of_the_same_layers_integrates_to_one():
    torch.manual_seed(0)
    flow = torch.nn.ModuleList(randomized(FlowStep(2, 8), std=0.2, seed=i) for i in range(3))

    def log_p(points: torch.Tensor) -> torch.Tensor:  # points (N, 2) -> (N,)
        h, logdet = points[:, :, None, None], 0
        for step in flow:
            h, ld = step(h)
            logdet = logdet + ld
        return standard_normal_log_prob(h) + logdet

    side = torch.linspace(-20, 20, 401, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        mass = torch.exp(log_p(grid)).sum() * (side[1] - side[0]) ** 2
    assert abs(float(mass) - 1) < 0.01


# ------------------------------------------------------------------------------ the model


def test_actnorm_initialises_on_the_first_training_batch_only():
    torch.manual_seed(0)
    model = Glow(GlowConfig(**TINY)).double()
    x = images(16)
    assert not model.ready()
    model.loss(Batch(x, torch.zeros(16, dtype=torch.long)))
    assert model.ready() and bool(model.actnorm_ready)
    # the first step's ActNorm output: zero mean and unit variance per channel on that batch
    first = model.levels[0].steps[0].actnorm
    y = first(squeeze(model.to_flow((model.levels_of(x) + 0.5) / 256)[0]))[0]
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(4, dtype=y.dtype), atol=0.05, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3)), torch.ones(4, dtype=y.dtype), atol=0.05, rtol=0)
    before = first.b.detach().clone()
    model.loss(Batch(x.flip(0) * 0.5, torch.zeros(16, dtype=torch.long)))
    assert torch.equal(first.b, before)  # a later batch does not initialise again


def test_the_loss_is_in_bits_per_dim_and_bf16_autocast_leaves_the_density_in_float32():
    torch.manual_seed(0)
    model = Glow(GlowConfig(**TINY))
    batch = Batch(images(8).float(), torch.zeros(8, dtype=torch.long))
    torch.manual_seed(1)
    loss, logs = model.loss(batch)
    torch.manual_seed(1)
    with torch.autocast("cpu", torch.bfloat16):
        loss_bf16, _ = model.loss(batch)
    assert loss.dtype == loss_bf16.dtype == torch.float32
    # the networks start at zero, so only the flow's own maps could run in bf16: they must not
    assert abs(float(loss.detach()) - float(loss_bf16.detach())) < 1e-4
    torch.manual_seed(1)
    u = torch.rand(batch.x.shape)
    nats = -model.terms(batch.x, u).log_px
    torch.testing.assert_close(loss, nats.mean() / (16 * math.log(2)))
    assert set(logs) == {"bpd", "logdet"}


@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_the_loss_is_finite_and_falls_when_overfitting_one_batch(dequantization):
    torch.manual_seed(0)
    model = Glow(GlowConfig(**{**TINY, "dequantization": dequantization}))
    batch = Batch(images(16).float(), torch.zeros(16, dtype=torch.long))  # ~8 bits/dim at first
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss, _ = model.loss(batch)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0


def test_log_prob_is_seeded_and_nll_rows_bound_the_discrete_nll():
    model = tiny()
    x = images(5)
    a = model.log_prob(x, generator=torch.Generator().manual_seed(3))
    b = model.log_prob(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5,) and torch.equal(a, b)
    [(what, nats, exact)] = model.likelihoods(x, generator=torch.Generator().manual_seed(3))
    assert "uniform" in what and not exact and torch.equal(nats, -a)


def test_encode_decode_round_trip_and_sampling_is_seeded():
    model = tiny(preprocess="logit")
    x = images(5)
    z = model.encode(x)
    assert z.shape == (5, 16)
    torch.testing.assert_close(model.decode(z), x.float(), atol=1e-6, rtol=0)
    s1 = model.sample(4, generator=torch.Generator().manual_seed(0))
    s2 = model.sample(4, generator=torch.Generator().manual_seed(0))
    hot = model.sample(4, generator=torch.Generator().manual_seed(0), temperature=1.0)
    assert s1.shape == (4, 1, 4, 4) and torch.equal(s1, s2) and not torch.equal(s1, hot)
    assert s1.min() >= 0 and s1.max() <= 1
    with pytest.raises(GenlabError, match="temperature"):
        model.sample(2, temperature=0.0)


def test_image_sizes_the_levels_do_not_divide_are_one_line():
    with pytest.raises(GenlabError, match=r"--levels 3 does not fit a 28x28 image.*1 to 2"):
        Glow(GlowConfig(levels=3))
    with pytest.raises(GenlabError, match="dequantization"):
        Glow(GlowConfig(dequantization="gaussian"))


def test_train_refuses_levels_the_image_size_does_not_allow(fmnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "glow", "--data-dir", str(fmnist_dir), "--levels", "3", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "--levels 3" in err
    assert not out.exists()


# ------------------------------------------------------------------------------ runs


def random_data(n: int = 64) -> ImageData:
    g = torch.Generator().manual_seed(0)
    pictures = torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    return ImageData(pictures, torch.zeros(n, dtype=torch.long), ("c0",))


def test_resume_equals_the_uninterrupted_run_and_keeps_the_actnorm_init(tmp_path):
    data, config = random_data(), GlowConfig(image_size=8, levels=2, depth=1, width=4)
    train_config = TrainConfig(batch_size=16, max_steps=4, warmup_steps=1, log_every=1,
                               checkpoint_every=2, ema_decay=0.9, seed=1)  # fmt: skip
    spec = DataSpec("fashion-mnist", "unused")
    straight = create_run(tmp_path / "straight", "glow", config, train_config, spec)
    train(straight, data=data, progress=False)
    split = create_run(tmp_path / "split", "glow", config, train_config, spec)
    train(split, data=data, progress=False, stop_at=2)
    assert bool(load_weights(split / "model.safetensors")["actnorm_ready"])
    train(split, data=data, progress=False)  # re-initialising ActNorm here would diverge
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_weights(straight / name), load_weights(split / name)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)


@pytest.fixture(scope="module")
def run(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("glow") / "run"
    args = ["train", "glow", "--data-dir", str(fmnist_dir), "--max-steps", "3",
            "--batch-size", "16", "--width", "4", "--depth", "1", "--no-progress",
            "--sample-every", "1000", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def test_load_reproduces_log_prob_from_the_saved_weights(run):
    model = genlab.load(run)
    assert isinstance(model, Glow) and model.ready()
    x = images(4, side=28).float()
    got = model.log_prob(x, generator=torch.Generator().manual_seed(0))
    again = Glow(model.config)
    again.load_state_dict(load_weights(run / "ema.safetensors"))
    assert again.ready()
    torch.testing.assert_close(again.log_prob(x, generator=torch.Generator().manual_seed(0)), got)
    fresh = Glow(model.config).log_prob(x, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(fresh, got)


def test_cli_nll_sample_with_temperature_and_interpolate(run, tmp_path, capsys):
    assert main(["nll", str(run), "--n", "8"]) == 0
    out = capsys.readouterr().out
    assert "uniform dequantization" in out and "bits/dim (upper bound)" in out
    png = tmp_path / "s.png"
    assert main(["sample", str(run), "--n", "4", "--temperature", "0.7", "--out", str(png)]) == 0
    assert png.is_file()
    strip = tmp_path / "i.png"
    assert main(["interpolate", str(run), "--pairs", "2", "--steps", "3", "--out", str(strip)]) == 0
    assert strip.is_file()


def test_eval_samples_at_the_temperature_it_records(run, tmp_path, capsys):
    records = {}
    for T in ("0.5", "2.0"):
        out = tmp_path / f"t{T}.json"
        assert main(["eval", str(run), "--n", "20", "--temperature", T, "--no-references",
                     "--no-progress", "--json", str(out)]) == 0  # fmt: skip
        records[T] = json.loads(out.read_text())
        assert records[T]["source"]["sampling"] == {"T": T}
    assert records["0.5"]["metrics"]["fd"] != records["2.0"]["metrics"]["fd"]
    assert (run / "eval" / "eval-n20-seed0-T_0.5.json").is_file()
    capsys.readouterr()
    png = tmp_path / "s.png"
    assert main(["sample", str(run), "--n", "4", "--out", str(png)]) == 0
    assert main(["eval", "--images", str(png), "--temperature", "0.5", "--no-progress"]) == 2
    assert "--temperature needs a run" in capsys.readouterr().err
