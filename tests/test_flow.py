"""The rectified-flow process (genlab.flow): the path, its velocity, the time sampling, the ODE
solvers' orders and counts, and the Euler step against diffusers' FlowMatchEulerDiscreteScheduler.
"""

import math

import pytest
import torch

from genlab.errors import GenlabError
from genlab.flow import (
    SOLVERS,
    euler_step,
    interpolate,
    nfe,
    ode_step,
    sample,
    solve,
    steps_for,
    time_from_normal,
    time_grid,
    velocity_target,
)


def test_the_path_joins_data_and_noise_and_its_derivative_is_the_target():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    assert torch.equal(interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(interpolate(x0, eps, torch.ones(3)), eps)
    t, h = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), 1e-6
    x0, eps = x0.double(), eps.double()
    numeric = (interpolate(x0, eps, t + h) - interpolate(x0, eps, t - h)) / (2 * h)
    torch.testing.assert_close(numeric, velocity_target(x0, eps), rtol=1e-6, atol=1e-8)


def test_time_sampling_stays_inside_the_interval_and_centres_where_asked():
    n = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    t = time_from_normal(n, "logit-normal", 0.0, 1.0)
    assert t.min() > 0 and t.max() < 1
    assert abs(float(t.median()) - 0.5) < 0.01
    shifted = time_from_normal(n, "logit-normal", 1.0, 1.0)
    assert abs(float(shifted.median()) - 1 / (1 + math.exp(-1))) < 0.01
    u = torch.rand(10)
    assert torch.equal(time_from_normal(u, "uniform"), u)
    with pytest.raises(GenlabError, match="time sampling"):
        time_from_normal(u, "beta")


def test_the_grid_runs_from_noise_to_data():
    grid = time_grid(4)
    assert grid.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    with pytest.raises(GenlabError):
        time_grid(0)


@pytest.mark.parametrize("solver", ["euler", "midpoint"])
def test_one_data_point_is_reached_exactly_from_any_noise(solver):
    """For data that is one point c, the exact velocity is (x_t - c) / t: the paths are straight,
    so a solver that never evaluates at t = 0 reaches c in any number of steps (the sign
    convention of the whole module)."""
    c = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)

    def velocity(x_t, t):
        return (x_t - c) / t[:, None]

    x_1 = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for steps in (1, 2, 7):
        torch.testing.assert_close(solve(velocity, x_1, steps, solver).x0, c.expand(5, 3))


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_exact_velocity_of_gaussian_data_carries_the_noise_to_the_data(solver):
    """Data x0 ~ N(mu, s^2): x_t is Gaussian with mean (1 - t) mu and variance
    V = (1 - t)^2 s^2 + t^2, and the velocity E[eps - x0 | x_t] is
    (t - (1 - t) s^2) / V (x - (1 - t) mu) - mu. Its flow maps x_1 to mu + s x_1."""
    mu, s2 = 1.5, 0.25

    def velocity(x, t):
        t = t.view(-1, 1)
        V = (1 - t) ** 2 * s2 + t**2
        return (t - (1 - t) * s2) / V * (x - (1 - t) * mu) - mu

    x_1 = torch.randn(64, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    exact = mu + math.sqrt(s2) * x_1
    err = lambda steps: (solve(velocity, x_1, steps, solver).x0 - exact).abs().max()  # noqa: E731
    assert err(400) < (1e-2 if solver == "euler" else 1e-5)
    assert err(400) < err(20)


def test_the_solvers_converge_at_their_orders():
    """dx/dt = x from t = 1 to 0: x(0) = x(1) / e. Halving h halves Euler's error and quarters
    the second-order solvers'."""
    x_1 = torch.ones(1, 1, dtype=torch.float64)
    exact = math.exp(-1.0)

    def error(solver, steps):
        return abs(float(solve(lambda x, t: x, x_1, steps, solver).x0) - exact)

    assert 1.8 < error("euler", 32) / error("euler", 64) < 2.2
    for solver in ("midpoint", "heun"):
        assert 3.6 < error(solver, 32) / error(solver, 64) < 4.4
        assert error(solver, 16) < error("euler", 32) / 10


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_solvers_evaluate_the_network_as_often_as_nfe_says(solver):
    calls = []

    def velocity(x, t):
        calls.append(float(t[0]))
        assert t.shape == (x.shape[0],) and 0.0 <= float(t[0]) <= 1.0
        return torch.zeros_like(x)

    sample(velocity, (2, 1, 3, 3), 5, solver, torch.Generator().manual_seed(0))
    assert len(calls) == nfe(solver, 5)
    assert calls[0] == 1.0
    assert steps_for(solver, nfe(solver, 5)) == 5 and steps_for(solver, 1) == 1


def test_snapshots_and_seeds():
    v = lambda x, t: -x  # noqa: E731
    a = sample(v, (2, 1, 4, 4), 8, "heun", torch.Generator().manual_seed(3), n_snapshots=3)
    b = sample(v, (2, 1, 4, 4), 8, "heun", torch.Generator().manual_seed(3))
    assert torch.equal(a.x0, b.x0) and torch.equal(a.x_1, b.x_1)
    assert [s.t for s in a.snapshots] == [875, 375, 0]
    assert torch.equal(a.snapshots[-1].x_t, a.x0)
    with pytest.raises(GenlabError, match="unknown solver"):
        solve(v, a.x_1, 2, "rk4")


# ----------------------------------------------------------------------------- vs diffusers


@pytest.mark.parametrize("steps", [1, 4, 25])
def test_the_euler_step_equals_diffusers_flow_match_euler_scheduler(steps):
    """Our Euler step on diffusers' own time grid equals FlowMatchEulerDiscreteScheduler.step for
    every step of a whole sampling loop, with a velocity that depends on x and t."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas.tolist()  # t from near 1 down to 0, as in genlab.flow
    assert len(sigmas) == steps + 1 and sigmas[-1] == 0.0 and sigmas[0] == 1.0
    g = torch.Generator().manual_seed(0)
    ours = theirs = torch.randn(2, 1, 6, 6, generator=g)
    w = torch.randn(1, 1, 6, 6, generator=g)

    def velocity(x, t):
        return torch.tanh(w * x) + t.view(-1, 1, 1, 1)

    for i, timestep in enumerate(scheduler.timesteps):
        t = torch.full((2,), sigmas[i])
        theirs = scheduler.step(velocity(theirs, t), timestep, theirs).prev_sample
        ours = euler_step(ours, sigmas[i], sigmas[i + 1], velocity(ours, t))
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    same = ode_step(velocity, theirs, 0.5, 0.25, "euler")
    torch.testing.assert_close(same, theirs - 0.25 * velocity(theirs, torch.full((2,), 0.5)))
