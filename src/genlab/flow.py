"""The rectified-flow process (flow matching): the straight path between data and noise, the
velocity it implies, how training picks t, and the ODE solvers that sample.

Flow matching (Lipman et al. 2023, "Flow Matching for Generative Modeling") with the linear
path of rectified flow (Liu et al. 2023, "Flow Straight and Fast") joins a data point x0 and
noise eps ~ N(0, I) by

    x_t = (1 - t) x0 + t eps,        t in [0, 1]  (t = 0 data, t = 1 noise, as in SD3),

whose velocity dx_t/dt = eps - x0 is the regression target of a network v_theta(x_t, t):

    L = E_{t, x0, eps} || v_theta(x_t, t) - (eps - x0) ||^2.

The minimiser is the conditional mean E[eps - x0 | x_t], the velocity of an ODE whose solution
carries N(0, I) at t = 1 to the data at t = 0. Sampling integrates dx/dt = v_theta(x, t) from
t = 1 down to t = 0 with Euler, midpoint or Heun steps on an even grid of t; the number of
network evaluations (NFE) is the cost.

Training draws t uniformly or from the logit-normal of Esser et al. 2024 ("Scaling Rectified
Flow Transformers", SD3, sec. 3.1): t = sigmoid(m + s n), n ~ N(0, 1), which spends more of the
training on the middle of the path, where the velocity is hardest to predict.

Everything here is a pure function of tensors and plain numbers: the network and its
conditioning come in as `velocity(x_t, t) -> v` (t a (B,) float tensor in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from genlab.diffusion import Snapshot, randn_on
from genlab.errors import GenlabError
from genlab.samplers import FLOW_SAMPLERS

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""v_theta(x_t (B, ...), t (B,) float in [0, 1]) -> (B, ...)."""

SOLVERS = FLOW_SAMPLERS
"""The ODE solvers of `sample`: Euler (1 evaluation per step), the explicit midpoint rule and
Heun's method (2 per step, second order)."""
EVALUATIONS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2}
TIME_SAMPLING = ("uniform", "logit-normal")


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps, t (B,) broadcast over the other dimensions."""
    t = t.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1.0 - t) * x0 + t * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """dx_t/dt = eps - x0 of the straight path."""
    return eps - x0


def time_from_normal(n: torch.Tensor, sampling: str, m: float = 0.0, s: float = 1.0):
    """t in (0, 1) from standard normal draws n (logit-normal: sigmoid(m + s n)) or from
    uniform draws in [0, 1) (`sampling` "uniform": n is then the uniform draw itself)."""
    if sampling == "uniform":
        return n
    if sampling == "logit-normal":
        return torch.sigmoid(m + s * n)
    raise GenlabError(f"time sampling must be one of {TIME_SAMPLING}, got {sampling!r}")


def flow_matching_loss(
    velocity: Velocity, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The mean squared error between v_theta(x_t, t) and eps - x0, in float32."""
    v = velocity(interpolate(x0, eps, t), t)
    return (v.float() - velocity_target(x0, eps).float()).square().mean()


def time_grid(steps: int, dtype=torch.float64) -> torch.Tensor:
    """t_0 = 1 > t_1 > ... > t_steps = 0, evenly spaced: (steps + 1,)."""
    if steps < 1:
        raise GenlabError(f"steps must be at least 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=dtype)


def nfe(solver: str, steps: int) -> int:
    """Network evaluations of `steps` steps of `solver`."""
    return EVALUATIONS_PER_STEP[solver] * steps


def steps_for(solver: str, evaluations: int) -> int:
    """The most steps of `solver` within `evaluations` network evaluations (at least 1)."""
    return max(1, evaluations // EVALUATIONS_PER_STEP[solver])


def euler_step(x: torch.Tensor, t: float, t_next: float, v: torch.Tensor) -> torch.Tensor:
    """x_{t_next} = x_t + (t_next - t) v(x_t, t): one step of the explicit Euler rule."""
    return x + (t_next - t) * v


def ode_step(
    velocity: Velocity, x: torch.Tensor, t: float, t_next: float, solver: str
) -> torch.Tensor:
    """One step of `solver` from t to t_next (< t)."""
    h = t_next - t  # negative: towards the data

    def v(x_s: torch.Tensor, s: float) -> torch.Tensor:
        return velocity(x_s, torch.full((x.shape[0],), s, device=x.device, dtype=x.dtype))

    v_t = v(x, t)
    if solver == "euler":
        return euler_step(x, t, t_next, v_t)
    if solver == "midpoint":
        return x + h * v(x + 0.5 * h * v_t, t + 0.5 * h)
    if solver == "heun":  # the trapezoid of the velocities at both ends (Euler predictor)
        return x + 0.5 * h * (v_t + v(x + h * v_t, t_next))
    raise GenlabError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")


class Trajectory(NamedTuple):
    """Result of `sample`: the final x0, a few intermediate x_t (empty unless asked for) and the
    starting noise x_1."""

    x0: torch.Tensor
    snapshots: list[Snapshot]
    x_1: torch.Tensor


def solve(
    velocity: Velocity,
    x_1: torch.Tensor,
    steps: int,
    solver: str = "euler",
    n_snapshots: int = 0,
) -> Trajectory:
    """Integrate dx/dt = v(x, t) from x_1 at t = 1 to t = 0 with `steps` steps of `solver`.

    Snapshots carry the time as an integer in per mille (Snapshot.t = round(1000 t)), the unit
    the pictures label diffusion steps in.
    """
    if solver not in SOLVERS:
        raise GenlabError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    grid = time_grid(steps).tolist()
    keep = {round(i * (steps - 1) / max(n_snapshots - 1, 1)) for i in range(n_snapshots)}
    x, snapshots = x_1, []
    for i in range(steps):
        x = ode_step(velocity, x, grid[i], grid[i + 1], solver)
        if i in keep:
            snapshots.append(Snapshot(round(1000 * grid[i + 1]), x))
    return Trajectory(x, snapshots, x_1)


def sample(
    velocity: Velocity,
    shape: tuple[int, ...],
    steps: int,
    solver: str = "euler",
    generator: torch.Generator | None = None,
    *,
    n_snapshots: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Trajectory:
    """Draw x_1 ~ N(0, I) of `shape` (on the generator's device, then moved) and `solve`."""
    x_1 = randn_on(shape, generator, device, dtype)
    return solve(velocity, x_1, steps, solver, n_snapshots)
