"""Noise-aware classifier and classifier guidance: shapes, training on noisy images, and the
guidance formula against the closed form of a Gaussian mixture."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from genlab.data import Batch
from genlab.data.fashion_mnist import load_fashion_mnist
from genlab.diffusion import Schedule, make_schedule, sample
from genlab.errors import GenlabError
from genlab.models.noisy_classifier import (
    NoisyClassifier,
    NoisyClassifierConfig,
    classifier_guidance,
    evaluate_noisy_accuracy,
)

TINY = NoisyClassifierConfig(width=8, mults=(1, 2), groups=4)


def make(config: NoisyClassifierConfig = TINY, seed: int = 0) -> NoisyClassifier:
    torch.manual_seed(seed)
    return NoisyClassifier(config)


# ----------------------------------------------------------------------------- the network


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (3, 7)])
def test_shapes(channels, size):
    config = dataclasses.replace(TINY, channels=channels, image_size=size, num_classes=5)
    model = make(config).eval()
    logits = model(torch.randn(3, channels, size, size), torch.tensor([0, 500, 999]))
    assert logits.shape == (3, 5)


def test_default_config_builds_and_rejects_bad_configs():
    model = NoisyClassifier(NoisyClassifierConfig())
    assert model(torch.randn(2, 1, 28, 28), torch.tensor([3, 900])).shape == (2, 10)
    with pytest.raises(GenlabError, match="2 classes"):
        NoisyClassifier(dataclasses.replace(TINY, num_classes=1))
    with pytest.raises(GenlabError, match="groups"):
        NoisyClassifier(dataclasses.replace(TINY, groups=3))
    with pytest.raises(GenlabError, match="schedule"):
        NoisyClassifier(dataclasses.replace(TINY, schedule="nope"))


def test_state_dict_holds_only_weights():
    model = make()
    assert not any("alpha" in k or "beta" in k for k in model.state_dict())
    assert set(model.state_dict()) == {k for k, _ in model.named_parameters()}
    other = make(seed=1)
    other.load_state_dict(model.state_dict())
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 700])
    torch.testing.assert_close(other.eval()(x, t), model.eval()(x, t))


def test_loss_rejects_unlabelled_data():
    with pytest.raises(GenlabError, match="labelled"):
        make().loss(Batch(torch.rand(2, 1, 28, 28), torch.full((2,), -1)))


def test_loss_is_reproducible_from_the_global_rng():
    model = make()
    batch = Batch(torch.rand(4, 1, 28, 28), torch.arange(4))
    torch.manual_seed(5)
    a, _ = model.loss(batch)
    torch.manual_seed(5)
    b, _ = model.loss(batch)
    assert a.item() == b.item()


def test_trains_on_noisy_images_and_accuracy_falls_with_t(fmnist_dir):
    train = load_fashion_mnist("train", str(fmnist_dir))
    test = load_fashion_mnist("test", str(fmnist_dir))
    model = make()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(80):
        loss, logs = model.loss(train.batch(torch.randint(0, len(train), (64,))))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss) and not logs["acc"].requires_grad
    acc = evaluate_noisy_accuracy(model, test, (0, 900, 999))
    assert acc[0] > 0.5  # chance is 0.1; 0.7-0.9 over seeds
    assert acc[900] < acc[0] - 0.2  # alpha_bar_900 is about 0.024 on the cosine schedule
    assert acc[999] < 0.25  # x_{T-1} is (nearly) pure noise


# ----------------------------------------------------------------------------- guidance

PI, MU, S = (0.3, 0.7), (-1.0, 1.5), (0.3, 0.5)  # a 1-D mixture of two Gaussians


def noised_components(schedule: Schedule, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log pi_k + log N(x_t; sqrt(abar) mu_k, abar s_k^2 + 1 - abar): x_t (B, 1) -> (B, 2)."""
    a = schedule.alpha_bar_at(t.cpu()).to(x_t)[:, None]  # (B, 1)
    mu, s2, pi = (torch.tensor(v, dtype=x_t.dtype) for v in (MU, [s**2 for s in S], PI))
    mean, var = a.sqrt() * mu, a * s2 + 1 - a  # (B, 2)
    return pi.log() - 0.5 * ((x_t - mean) ** 2 / var + var.log() + math.log(2 * math.pi))


class ExactClassifier(nn.Module):
    """The Bayes classifier log p(y | x_t) of the noised mixture."""

    def __init__(self, schedule: Schedule):
        super().__init__()
        self.schedule = schedule

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return noised_components(self.schedule, x_t, t)  # logits, up to log q(x_t)


def exact_eps(schedule: Schedule, y: int | None = None):
    """eps(x_t, t) = -sqrt(1 - abar) grad log q(x_t) (or of q(x_t | y)), in closed form."""

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = schedule.alpha_bar_at(t.cpu()).to(x_t)[:, None]  # (B, 1)
        mean = a.sqrt() * torch.tensor(MU, dtype=x_t.dtype)
        var = a * torch.tensor([s**2 for s in S], dtype=x_t.dtype) + 1 - a  # (B, 2)
        scores = -(x_t - mean) / var  # (B, 2), grad log N of each component
        if y is None:
            weights = noised_components(schedule, x_t, t).softmax(1)
            score = (weights * scores).sum(1, keepdim=True)
        else:
            score = scores[:, y : y + 1]
        return -(1 - a).sqrt() * score

    return model_fn


def test_guidance_with_the_exact_classifier_gives_the_exact_conditional_eps():
    schedule = make_schedule("cosine", 1000)
    torch.manual_seed(0)
    x_t = 2 * torch.randn(64, 1, dtype=torch.float64)
    t = torch.randint(0, 1000, (64,))
    for y in (0, 1):
        labels = torch.full((64,), y)
        guided = classifier_guidance(
            exact_eps(schedule), ExactClassifier(schedule), labels, 1.0, schedule
        )
        torch.testing.assert_close(
            guided(x_t, t), exact_eps(schedule, y)(x_t, t), atol=1e-5, rtol=0
        )
    unguided = classifier_guidance(
        exact_eps(schedule), ExactClassifier(schedule), labels, 0.0, schedule
    )
    torch.testing.assert_close(unguided(x_t, t), exact_eps(schedule)(x_t, t))


def guided_samples(schedule: Schedule, y: int, scale: float, sampler: str, steps: int):
    n = 4000
    guided = classifier_guidance(
        exact_eps(schedule), ExactClassifier(schedule), torch.full((n,), y), scale, schedule
    )
    generator = torch.Generator().manual_seed(0)
    return sample(schedule, guided, (n, 1), sampler, steps=steps, generator=generator).x0


@pytest.mark.parametrize(
    ("sampler", "steps", "y"), [("ddim", 100, 0), ("ddim", 100, 1), ("dpmpp_2m", 20, 0)]
)
def test_guided_samples_match_the_component(sampler, steps, y):
    # y = 0 has weight 0.3: unguided, 70% of the samples would land near the other mean
    x0 = guided_samples(make_schedule("cosine", 1000), y, 1.0, sampler, steps)
    assert abs(x0.mean().item() - MU[y]) < 0.05
    assert abs(x0.std().item() - S[y]) < 0.05


def test_larger_guidance_scales_concentrate():
    schedule = make_schedule("cosine", 1000)
    std_1 = guided_samples(schedule, 1, 1.0, "ddim", 100).std().item()
    std_4 = guided_samples(schedule, 1, 4.0, "ddim", 100).std().item()
    assert std_4 < 0.9 * std_1


def test_guidance_works_under_inference_mode():
    model = make().eval()
    schedule = model.schedule
    y = torch.tensor([0, 3, 7])
    x_t, t = torch.randn(3, 1, 28, 28), torch.tensor([5, 300, 900])
    eps_model = lambda x, t: 0.1 * x  # noqa: E731
    expected = classifier_guidance(eps_model, model, y, 2.0, schedule)(x_t, t)
    with torch.inference_mode():
        x_inf, t_inf, y_inf = x_t.clone(), t.clone(), y.clone()  # inference tensors
        guided = classifier_guidance(eps_model, model, y_inf, 2.0, schedule)
        got = guided(x_inf, t_inf)
        out = sample(schedule, guided, (3, 1, 28, 28), "ddim", steps=3).x0
    torch.testing.assert_close(got, expected)
    assert not torch.equal(got, eps_model(x_t, t))  # the classifier gradient is not zero
    assert not got.requires_grad and out.shape == (3, 1, 28, 28) and torch.isfinite(out).all()
    # manual check of the formula with the network
    x_in = x_t.clone().requires_grad_()
    log_p = torch.log_softmax(model(x_in, t), 1)[torch.arange(3), y].sum()
    (grad,) = torch.autograd.grad(log_p, x_in)
    sigma = (1 - schedule.alpha_bar_at(t)).sqrt().float()[:, None, None, None]
    torch.testing.assert_close(expected, eps_model(x_t, t) - 2.0 * sigma * grad)
