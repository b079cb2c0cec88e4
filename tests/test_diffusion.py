"""Tests of genlab.diffusion: schedules, the forward process, targets, and the samplers, with
single steps cross-checked against diffusers' schedulers."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.diffusion import (
    Schedule,
    cfg_model,
    cosine_betas,
    ddim_timesteps,
    dpm_timesteps,
    linear_betas,
    make_schedule,
    sample,
    sigmoid_betas,
)
from genlab.errors import GenlabError

T = 1000


# ----------------------------------------------------------------------------- schedules


def test_linear_endpoints():
    betas = linear_betas(T)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)


@pytest.mark.parametrize("fn", [linear_betas, cosine_betas, sigmoid_betas])
def test_schedules_monotone_and_bounded(fn):
    betas = fn(T)
    assert betas.dtype == torch.float64
    assert bool((betas > 0).all()) and bool((betas <= 0.999).all())
    alpha_bar = make_schedule(
        {linear_betas: "linear", cosine_betas: "cosine"}.get(fn, "sigmoid"), T
    )
    assert bool((alpha_bar.alpha_bar.diff() < 0).all())


def test_cosine_alpha_bar_closed_form():
    s = 0.008
    sched = Schedule.from_betas(cosine_betas(T, s))
    t = torch.arange(1, T + 1, dtype=torch.float64)
    f = (
        torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
        / math.cos(s / (1 + s) * math.pi / 2) ** 2
    )
    # exact until the 0.999 clip, which bites only at the very end
    torch.testing.assert_close(sched.alpha_bar[:-5], f[:-5], rtol=1e-10, atol=1e-12)
    assert cosine_betas(T, s).max().item() == pytest.approx(0.999)


def test_unknown_schedule_is_a_user_error():
    with pytest.raises(GenlabError, match="unknown schedule"):
        make_schedule("quadratic", 10)


# ----------------------------------------------------------------------------- process


def test_q_sample_statistics():
    sched = make_schedule("linear", T)
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([1.5, -0.5], dtype=torch.float64)
    t = 300
    eps = torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    x_t = sched.q_sample(x0.expand(200_000, 2), torch.full((200_000,), t), eps)
    a = sched.alpha_bar[t]
    torch.testing.assert_close(x_t.mean(0), a.sqrt() * x0, atol=0.01, rtol=0)
    torch.testing.assert_close(x_t.var(0), (1 - a).expand(2), atol=0.01, rtol=0)


def test_target_conversions_round_trip():
    sched = make_schedule("cosine", T)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 8, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, T, (8,), generator=g)
    x_t = sched.q_sample(x0, t, eps)
    a = sched.alpha_bar[t][:, None]
    v = sched.v_target(x0, eps, t)
    torch.testing.assert_close(v, a.sqrt() * eps - (1 - a).sqrt() * x0)
    torch.testing.assert_close(sched.predict_x0_from_eps(x_t, t, eps), x0)
    torch.testing.assert_close(sched.predict_eps_from_x0(x_t, t, x0), eps)
    torch.testing.assert_close(sched.predict_x0_from_v(x_t, t, v), x0)
    torch.testing.assert_close(sched.predict_eps_from_v(x_t, t, v), eps)
    for target, out in [("eps", eps), ("x0", x0), ("v", v)]:
        got_x0, got_eps = sched.to_x0_eps(x_t, t, out, target)
        torch.testing.assert_close(got_x0, x0)
        torch.testing.assert_close(got_eps, eps)


def test_min_snr_weights():
    sched = make_schedule("linear", T)
    t = torch.arange(T)
    snr = sched.alpha_bar / (1 - sched.alpha_bar)
    torch.testing.assert_close(sched.snr(t), snr)
    gamma = 5.0
    m = snr.clamp(max=gamma)
    torch.testing.assert_close(sched.min_snr_weight(t, gamma, "eps"), m / snr)
    torch.testing.assert_close(sched.min_snr_weight(t, gamma, "x0"), m)
    torch.testing.assert_close(sched.min_snr_weight(t, gamma, "v"), m / (snr + 1))
    assert sched.min_snr_weight(t, gamma, "eps")[-1].item() == pytest.approx(1.0)
    assert sched.min_snr_weight(t, gamma, "eps")[0].item() < 0.01


@pytest.mark.parametrize("target", ["eps", "x0", "v"])
def test_training_loss_zero_for_the_exact_target(target):
    sched = make_schedule("linear", 100)
    x0 = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(2))

    def oracle(x_t, t, cond):  # sees the same draws as the loss: replays the generator
        g = torch.Generator().manual_seed(3)
        t2 = torch.randint(0, sched.T, (6,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        assert torch.equal(t, t2) and cond is None
        return {"eps": eps, "x0": x0, "v": sched.v_target(x0, eps, t)}[target]

    g = torch.Generator().manual_seed(3)
    loss = sched.training_loss(oracle, x0, target=target, min_snr_gamma=5.0, generator=g)
    assert loss.item() < 1e-10
    g = torch.Generator().manual_seed(3)
    wrong = sched.training_loss(
        lambda x_t, t, c: torch.zeros_like(x_t), x0, target=target, generator=g
    )
    assert wrong.item() > 0.01


def test_cfg_model_combines_predictions():
    def model(x_t, t, c):
        return x_t * c

    fn = cfg_model(model, torch.tensor(3.0), torch.tensor(1.0), w=2.0)
    x = torch.ones(2, 2)
    torch.testing.assert_close(fn(x, torch.zeros(2)), x * (1 + 2 * (3 - 1)))


# ----------------------------------------------------------------------------- vs diffusers


def _inputs(seed, shape=(2, 3, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(shape, generator=g, dtype=torch.float64)
    return x_t, torch.randn(shape, generator=g, dtype=torch.float64)


def _float64(ref, sched: Schedule):
    """Give a diffusers scheduler our float64 alpha_bar, after checking its own float32 one: in
    float32, 1 - alpha_bar_t near t = 0 has relative errors ~1e-3 in both implementations."""
    torch.testing.assert_close(sched.alpha_bar.float(), ref.alphas_cumprod, atol=1e-6, rtol=0)
    ref.alphas_cumprod = sched.alpha_bar.clone()
    ref.alphas, ref.betas = sched.alphas.clone(), sched.betas.clone()
    return ref


@pytest.mark.kernels
def test_alphas_cumprod_match_diffusers():
    from diffusers import DDPMScheduler

    for name, beta_schedule in [("linear", "linear"), ("cosine", "squaredcos_cap_v2")]:
        ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule)
        ours = make_schedule(name, T)
        torch.testing.assert_close(ours.alpha_bar.float(), ref.alphas_cumprod, atol=1e-6, rtol=0)


@pytest.mark.kernels
@pytest.mark.parametrize("variance", [("beta_tilde", "fixed_small"), ("beta", "fixed_large")])
@pytest.mark.parametrize("prediction", [("eps", "epsilon"), ("v", "v_prediction")])
@pytest.mark.parametrize("t", [999, 500, 1, 0])
def test_ddpm_step_matches_diffusers(variance, prediction, t):
    from diffusers import DDPMScheduler

    ours_type, ref_type = prediction
    ref = DDPMScheduler(
        num_train_timesteps=T,
        beta_schedule="linear",
        variance_type=variance[1],
        clip_sample=False,
        prediction_type=ref_type,
    )
    ours = make_schedule("linear", T)
    _float64(ref, ours)
    x_t, out = _inputs(t)
    want = ref.step(out, t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    got = ours.ddpm_step(x_t, t, out, ours_type, torch.Generator().manual_seed(7), variance[0])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.kernels
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize(
    "prediction", [("eps", "epsilon"), ("v", "v_prediction"), ("x0", "sample")]
)
def test_ddim_step_matches_diffusers(eta, prediction):
    from diffusers import DDIMScheduler

    ours_type, ref_type = prediction
    ref = DDIMScheduler(
        num_train_timesteps=T,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=False,
        prediction_type=ref_type,
    )
    ours = make_schedule("cosine", T)
    _float64(ref, ours)
    ref.set_timesteps(10)
    timesteps = ddim_timesteps(T, 10)
    assert timesteps == ref.timesteps.tolist()
    for i in [0, 4, 9]:
        t, t_prev = timesteps[i], timesteps[i + 1] if i < 9 else -1
        x_t, out = _inputs(i)
        g1, g2 = torch.Generator().manual_seed(i), torch.Generator().manual_seed(i)
        want = ref.step(out, t, x_t, eta=eta, generator=g1).prev_sample
        got = ours.ddim_step(x_t, t, t_prev, out, eta, g2, ours_type)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.kernels
@pytest.mark.parametrize("prediction", [("eps", "epsilon"), ("v", "v_prediction")])
def test_dpmpp_2m_steps_match_diffusers(prediction):
    from diffusers import DPMSolverMultistepScheduler

    ours_type, ref_type = prediction
    ref = DPMSolverMultistepScheduler(
        num_train_timesteps=T,
        beta_schedule="linear",
        algorithm_type="dpmsolver++",
        solver_order=2,
        prediction_type=ref_type,
    )
    steps = 8
    ours = make_schedule("linear", T)
    _float64(ref, ours)
    ref.set_timesteps(steps)
    timesteps = dpm_timesteps(T, steps)
    assert timesteps == ref.timesteps.tolist()
    x_ref = x_ours = _inputs(0)[0]
    state = None
    for i, t in enumerate(timesteps):  # all steps: first order, 2M, and the final one
        out = _inputs(i + 1)[1]
        t_prev = timesteps[i + 1] if i + 1 < steps else -1
        x_ref = ref.step(out, t, x_ref).prev_sample
        x_ours, state = ours.dpmpp_2m_step(x_ours, t, t_prev, out, state, ours_type)
        torch.testing.assert_close(x_ours, x_ref, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- end to end


MU, S = 1.5, 0.5


def _exact_eps(sched: Schedule):
    """E[eps | x_t] for data N(MU, S^2): x_t ~ N(sqrt(a) MU, a S^2 + 1 - a), cov(eps, x_t) =
    sqrt(1 - a)."""

    def model_fn(x_t, t):
        a = sched.alpha_bar[t].to(x_t.dtype)[:, None]
        return (1 - a).sqrt() * (x_t - a.sqrt() * MU) / (a * S**2 + 1 - a)

    return model_fn


@pytest.mark.parametrize("sampler,steps", [("ddim", 50), ("dpmpp_2m", 20), ("ddpm", 0)])
def test_toy_gaussian_end_to_end(sampler, steps):
    # cosine: alpha_bar_{T-1} ~ 0, so x_T ~ N(0, I) is the true marginal (the linear schedule
    # at T = 200 leaves alpha_bar_{T-1} ~ 0.13 of signal)
    sched = make_schedule("cosine", 200 if sampler == "ddpm" else T)
    g = torch.Generator().manual_seed(0)
    out = sample(
        sched,
        _exact_eps(sched),
        (20_000, 1),
        sampler=sampler,
        steps=steps,
        generator=g,
        dtype=torch.float64,
        n_snapshots=3,
    )
    assert out.x0.shape == (20_000, 1) and len(out.snapshots) == 3
    assert out.snapshots[-1].t == -1 and torch.equal(out.snapshots[-1].x_t, out.x0)
    assert out.x0.mean().item() == pytest.approx(MU, rel=0.03)
    assert out.x0.std().item() == pytest.approx(S, rel=0.03)


def test_sample_is_reproducible_and_validates():
    sched = make_schedule("linear", 100)
    fn = _exact_eps(sched)
    a = sample(sched, fn, (4, 1), steps=5, eta=1.0, generator=torch.Generator().manual_seed(4))
    b = sample(sched, fn, (4, 1), steps=5, eta=1.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.x0, b.x0) and a.snapshots == []
    with pytest.raises(GenlabError, match="unknown sampler"):
        sample(sched, fn, (4, 1), sampler="euler")
    with pytest.raises(GenlabError, match="steps"):
        sample(sched, fn, (4, 1), steps=0)


def test_training_loss_applies_min_snr_weights():
    sched = make_schedule("linear", 100)
    x0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    t = torch.randint(0, sched.T, (16,), generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    mse = sched.v_target(x0, eps, t).square().mean(1)  # a zero network's error on v
    want = (sched.min_snr_weight(t, 2.0, "v") * mse).mean()
    got = sched.training_loss(
        lambda x_t, t, c: torch.zeros_like(x_t),
        x0,
        target="v",
        min_snr_gamma=2.0,
        generator=torch.Generator().manual_seed(6),
    )
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, mse.mean())
