"""Gaussian diffusion: noise schedules, the forward process, training targets and samplers.

Forward process (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"):

    q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I),
    alpha_bar_t = prod_{s <= t} (1 - beta_s),

with t = 0 .. T-1 (0-based, as in diffusers). The network is any callable
`model_fn(x_t, t) -> prediction` of one target: "eps" (the noise), "x0" (the data) or "v"
(Salimans & Ho 2022). This module knows nothing about UNets. Samplers: DDPM ancestral sampling,
DDIM (Song et al. 2021) and DPM-Solver++(2M) (Lu et al. 2022). Conditioning is a wrapper the
caller builds, e.g. `cfg_model` for classifier-free guidance (Ho & Salimans 2022).

Schedules are computed and stored in float64 and cast to the dtype of x_t where used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from genlab.errors import GenlabError
from genlab.samplers import SAMPLERS

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def randn_on(shape, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """N(0, I) of `shape` in `dtype`, drawn on the generator's device (so that a seed gives the
    same noise on the CPU and on a GPU), then moved to `device`."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where, dtype=dtype).to(device)


TARGETS = ("eps", "x0", "v")


# ----------------------------------------------------------------------------- schedules


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear betas (Ho et al. 2020), (T,) float64."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021): alpha_bar(t) = f(t) / f(0),
    f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2; betas clipped at 0.999. (T,) float64."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


def sigmoid_betas(T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """Sigmoid schedule of Jabri et al. 2022 / Chen 2023 ("On the importance of noise scheduling",
    Algorithm 1): alpha_bar(t) = (sigmoid(end / tau) - sigmoid((t (end - start) + start) / tau))
    / (sigmoid(end / tau) - sigmoid(start / tau)) for t in [0, 1]; betas clipped at 0.999."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    v_start, v_end = (
        torch.sigmoid(torch.tensor(start / tau)),
        torch.sigmoid(torch.tensor(end / tau)),
    )
    f = (v_end - torch.sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)
    return (1 - f[1:] / f[:-1]).clamp(min=0.0, max=0.999)


SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
}


def make_schedule(name: str, T: int) -> Schedule:
    """The `Schedule` of T steps for a schedule name in `SCHEDULES`."""
    if name not in SCHEDULES:
        raise GenlabError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return Schedule.from_betas(SCHEDULES[name](T))


def _expand(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast per-example values (B,) or a scalar against x (B, ...), in x's dtype."""
    values = values.to(device=x.device, dtype=x.dtype)
    return values.reshape(values.shape + (1,) * (x.dim() - values.dim()))


# ----------------------------------------------------------------------------- the process


class Snapshot(NamedTuple):
    """One intermediate state of a sampler: x_t after the step to timestep t (-1 is the end)."""

    t: int
    x_t: torch.Tensor


class Samples(NamedTuple):
    """Result of `sample`: the final x0 and a few intermediate x_t (empty unless asked for)."""

    x0: torch.Tensor
    snapshots: list[Snapshot]
    x_T: torch.Tensor | None = None
    """The starting noise."""


class DPMState(NamedTuple):
    """What DPM-Solver++(2M) keeps between steps: the previous x0 prediction and its lambda."""

    x0_pred: torch.Tensor
    lambda_: float


@dataclass(frozen=True, eq=False)
class Schedule:
    """The discrete forward process; every tensor is (T,) float64.

    Attributes:
        betas: beta_t, the variance added at step t.
        alphas: 1 - beta_t.
        alpha_bar: prod_{s <= t} alpha_s, the signal fraction of x_t.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bar: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> Schedule:
        """The process of betas (T,), each in (0, 1); alpha_bar = cumprod(1 - betas) in float64."""
        betas = betas.to(torch.float64)
        if betas.dim() != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise GenlabError("betas must be a 1-D tensor with values in (0, 1)")
        alphas = 1 - betas
        return cls(betas=betas, alphas=alphas, alpha_bar=torch.cumprod(alphas, 0))

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.shape[0]

    def alpha_bar_at(self, t: torch.Tensor | int) -> torch.Tensor:
        """alpha_bar_t, with alpha_bar_{-1} = 1 (the clean data), float64."""
        t = torch.as_tensor(t)
        padded = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar])
        return padded.to(t.device)[t + 1]

    def snr(self, t: torch.Tensor | int) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) (Kingma et al. 2021), float64."""
        a = self.alpha_bar_at(t)
        return a / (1 - a)

    def _coefs(self, t: torch.Tensor | int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) broadcast against x."""
        a = self.alpha_bar_at(t)
        return _expand(a.sqrt(), x), _expand((1 - a).sqrt(), x)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (eq. 4, Ho et al.); x0 (B, ...),
        t (B,) or int."""
        a, s = self._coefs(t, x0)
        return a * x0 + s * eps

    def predict_x0_from_eps(
        self, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor
    ) -> torch.Tensor:
        """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), inverting `q_sample`."""
        a, s = self._coefs(t, x_t)
        return (x_t - s * eps) / a

    def predict_eps_from_x0(
        self, x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor
    ) -> torch.Tensor:
        """eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
        a, s = self._coefs(t, x_t)
        return (x_t - a * x0) / s

    def v_target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 (Salimans & Ho 2022)."""
        a, s = self._coefs(t, x0)
        return a * eps - s * x0

    def predict_x0_from_v(
        self, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor
    ) -> torch.Tensor:
        """x0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v."""
        a, s = self._coefs(t, x_t)
        return a * x_t - s * v

    def predict_eps_from_v(
        self, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor
    ) -> torch.Tensor:
        """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v."""
        a, s = self._coefs(t, x_t)
        return s * x_t + a * v

    def to_x0_eps(
        self, x_t: torch.Tensor, t: torch.Tensor | int, output: torch.Tensor, target: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) implied by a network output predicting `target` ("eps", "x0" or "v")."""
        if target == "eps":
            return self.predict_x0_from_eps(x_t, t, output), output
        if target == "x0":
            return output, self.predict_eps_from_x0(x_t, t, output)
        if target == "v":
            return self.predict_x0_from_v(x_t, t, output), self.predict_eps_from_v(x_t, t, output)
        raise GenlabError(f"unknown prediction target {target!r}; choose one of {TARGETS}")

    def min_snr_weight(self, t: torch.Tensor | int, gamma: float, target: str) -> torch.Tensor:
        """Min-SNR-gamma loss weight (Hang et al. 2023) for an MSE on `target`, float64:
        eps: min(snr, gamma) / snr; x0: min(snr, gamma); v: min(snr, gamma) / (snr + 1)."""
        snr = self.snr(t)
        clipped = snr.clamp(max=gamma)
        denominators = {"eps": snr, "x0": torch.ones_like(snr), "v": snr + 1}
        if target not in denominators:
            raise GenlabError(f"unknown prediction target {target!r}; choose one of {TARGETS}")
        return clipped / denominators[target]

    def training_loss(
        self,
        eps_model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        cond: torch.Tensor | None = None,
        *,
        target: str = "eps",
        min_snr_gamma: float | None = None,
        generator: torch.Generator | None = None,
        t: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean (optionally min-SNR weighted) MSE of `eps_model(x_t, t, cond)` against `target`,
        with t ~ U{0..T-1} and eps ~ N(0, I) per example (drawn with `generator` unless given);
        x0 (B, ...). Returns a scalar."""
        if target not in TARGETS:
            raise GenlabError(f"unknown prediction target {target!r}; choose one of {TARGETS}")
        B = x0.shape[0]
        if t is None:
            t = torch.randint(0, self.T, (B,), generator=generator, device=x0.device)  # (B,)
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, eps)
        goal = {"eps": eps, "x0": x0, "v": self.v_target(x0, eps, t)}[target]
        mse = (eps_model(x_t, t, cond) - goal).square().flatten(1).mean(1)  # (B,)
        if min_snr_gamma is not None:
            mse = mse * self.min_snr_weight(t, min_snr_gamma, target).to(mse)
        return mse.mean()

    # ------------------------------------------------------------------------- single steps

    def ddpm_step(
        self,
        x_t: torch.Tensor,
        t: int,
        model_output: torch.Tensor,
        prediction_type: str = "eps",
        generator: torch.Generator | None = None,
        variance: str = "beta_tilde",
    ) -> torch.Tensor:
        """One ancestral step x_t -> x_{t-1} ~ q(x_{t-1} | x_t, x0_hat) (Ho et al. eqs. 6-7).

        variance: "beta_tilde" (the posterior variance, diffusers' "fixed_small") or "beta".
        No noise is added at t = 0.
        """
        x0, _ = self.to_x0_eps(x_t, t, model_output, prediction_type)
        a_t, a_prev = self.alpha_bar_at(t), self.alpha_bar_at(t - 1)
        beta = self.betas[t]
        # eq. 7: posterior mean coefficients of x0 and x_t
        mean = (a_prev.sqrt() * beta / (1 - a_t)) * x0 + (
            self.alphas[t].sqrt() * (1 - a_prev) / (1 - a_t)
        ) * x_t
        if t == 0:
            return mean.to(x_t.dtype)
        if variance == "beta_tilde":
            var = ((1 - a_prev) / (1 - a_t) * beta).clamp(min=1e-20)
        elif variance == "beta":
            var = beta
        else:
            raise GenlabError(f"unknown DDPM variance {variance!r}; use 'beta_tilde' or 'beta'")
        noise = randn_on(x_t.shape, generator, x_t.device, x_t.dtype)
        return (mean + var.sqrt() * noise).to(x_t.dtype)

    def ddim_step(
        self,
        x_t: torch.Tensor,
        t: int,
        t_prev: int,
        model_output: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        prediction_type: str = "eps",
    ) -> torch.Tensor:
        """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, eq. 12); t_prev = -1 is the end.

        eta = 0 is deterministic; eta = 1 has the DDPM posterior variance for this stride.
        """
        # 1. the x0 and eps the network implies
        x0, eps = self.to_x0_eps(x_t, t, model_output, prediction_type)
        a_t, a_prev = self.alpha_bar_at(t), self.alpha_bar_at(t_prev)
        # 2. sigma_t(eta), eq. 16
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        # 3. eq. 12: predicted x0, direction pointing to x_t, random noise
        x_prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).sqrt() * eps
        if eta > 0:
            noise = randn_on(x_t.shape, generator, x_t.device, x_t.dtype)
            x_prev = x_prev + sigma * noise
        return x_prev.to(x_t.dtype)

    def dpmpp_2m_step(
        self,
        x_t: torch.Tensor,
        t: int,
        t_prev: int,
        model_output: torch.Tensor,
        state: DPMState | None,
        prediction_type: str = "eps",
        first_order: bool = False,
    ) -> tuple[torch.Tensor, DPMState]:
        """One DPM-Solver++(2M) step x_t -> x_{t_prev} (Lu et al. 2022, Algorithm 2).

        Data-prediction multistep solver in lambda = log(alpha / sigma), alpha = sqrt(alpha_bar),
        sigma = sqrt(1 - alpha_bar). First order (DDIM) when `state` is None or `first_order`;
        t_prev = -1 goes to sigma = 0, where the step returns the x0 prediction (first order).
        Returns x_{t_prev} and the state for the next step.
        """
        x0, _ = self.to_x0_eps(x_t, t, model_output, prediction_type)
        a_t, a_prev = self.alpha_bar_at(t), self.alpha_bar_at(t_prev)
        alpha_s, sigma_s = a_t.sqrt(), (1 - a_t).sqrt()
        alpha_t, sigma_t = a_prev.sqrt(), (1 - a_prev).sqrt()
        lambda_s = float(torch.log(alpha_s / sigma_s))
        new_state = DPMState(x0, lambda_s)
        if t_prev < 0:  # sigma = 0, lambda = inf: the first-order update is x0 itself
            return x0.to(x_t.dtype), new_state
        h = float(torch.log(alpha_t / sigma_t)) - lambda_s
        phi = -math.expm1(-h)  # 1 - e^{-h}
        if state is None or first_order:
            D = x0
        else:  # eq. in Algorithm 2: D = (1 + 1/(2r)) x0_s - 1/(2r) x0_{s-1}, r = h_prev / h
            r = (lambda_s - state.lambda_) / h
            D = x0 + (x0 - state.x0_pred) / (2 * r)
        x_prev = (sigma_t / sigma_s) * x_t + alpha_t * phi * D
        return x_prev.to(x_t.dtype), new_state


# ----------------------------------------------------------------------------- sampling


# ----------------------------------------------------------------------------- the bound


def discretized_gaussian_log_prob(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float, levels: int = 256
) -> torch.Tensor:
    """log P(x) elementwise of N(mean, std^2) discretized to `levels` bins of [-1, 1] (Ho et al.
    2020, eq. 13): bin edges at the centres +- 1 / (levels - 1), the two end bins open to -inf
    and +inf. x holds bin centres in [-1, 1]. Computed in float64 with log-CDFs, reflected so
    that both edges lie on the side of the mean where the CDF difference keeps its digits."""
    x, mean = x.double(), mean.double()
    std = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    half = 1.0 / (levels - 1)
    # reflect each bin to the left of the mean: P(b < X < a) = P(-a < -X < -b)
    flip = x > mean
    z = torch.where(flip, mean - x, x - mean) / std
    a, b = z + half / std, z - half / std  # upper and lower edge, a > b
    log_a, log_b = torch.special.log_ndtr(a), torch.special.log_ndtr(b)
    middle = log_a + torch.log1p(-torch.exp(log_b - log_a).clamp(max=1 - 1e-300))
    first = torch.where(flip, torch.special.log_ndtr(-b), log_a)  # the bin at -1: (-inf, a]
    last = torch.where(flip, log_a, torch.special.log_ndtr(-b))  # the bin at +1: [b, inf)
    lowest, highest = x <= -1 + half / 2, x >= 1 - half / 2
    return torch.where(lowest, first, torch.where(highest, last, middle))


def vlb_terms(
    schedule: Schedule,
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    levels: int = 256,
) -> torch.Tensor:
    """One term of the variational bound (Ho et al. 2020, eq. 5) per example, in nats, (B,):

    t = 0: the decoder term L_0 = -log p(x0 | x_1), a Gaussian of variance beta_1 discretized
    to the data's levels; t >= 1: L_t = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)) with the
    reverse variance the posterior's, beta~_t, so the KL is the squared error of the noise,
    beta_t / (2 alpha_t (1 - alpha_bar_{t-1})) ||eps - eps_theta(x_t, t)||^2.

    eps_fn(x_t, t) predicts the noise; x0 (B, ...) holds bin centres in [-1, 1]; eps the noise.
    """
    x_t = schedule.q_sample(x0, t, eps)
    pred = eps_fn(x_t, t).double()
    sq = (eps.double() - pred).square().flatten(1).sum(1)
    prev = schedule.alpha_bar_at(t - 1).to(x0.device)
    beta, alpha = schedule.betas.to(x0.device)[t], schedule.alphas.to(x0.device)[t]
    kl = beta / (2 * alpha * (1 - prev).clamp(min=1e-300)) * sq
    # decoder: mean (x_1 - beta_1 / sqrt(1 - alpha_bar_1) eps) / sqrt(alpha_1), std sqrt(beta_1)
    a1, b1 = _expand(alpha, x_t), _expand(beta, x_t)
    mean = (x_t.double() - b1 / (1 - a1).sqrt() * pred) / a1.sqrt()
    log_p = discretized_gaussian_log_prob(x0, mean, b1.sqrt(), levels).flatten(1).sum(1)
    return torch.where(t == 0, -log_p, kl)


def prior_kl(schedule: Schedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x0) || N(0, I)) per example, in nats, (B,)."""
    a = float(schedule.alpha_bar[-1])
    x0 = x0.double()
    per_dim = 0.5 * (a * x0.square() + (1 - a) - 1 - math.log(1 - a))
    return per_dim.flatten(1).sum(1)


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """DDIM timesteps with "leading" spacing (diffusers' DDIMScheduler default, steps_offset 0):
    t_i = i * (T // steps), in decreasing order."""
    ratio = T // steps
    return [i * ratio for i in range(steps)][::-1]


def dpm_timesteps(T: int, steps: int) -> list[int]:
    """Timesteps with "linspace" spacing (diffusers' DPMSolverMultistepScheduler default):
    round(linspace(0, T - 1, steps + 1)), decreasing, without the last (0)."""
    grid = torch.linspace(0, T - 1, steps + 1, dtype=torch.float64).round().long()
    return grid.flip(0)[:-1].tolist()


def cfg_model(
    model: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    cond: torch.Tensor,
    null_cond: torch.Tensor,
    w: float,
) -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022) as a `model_fn(x_t, t)`:
    eps_u + w (eps_c - eps_u) with eps_c = model(x_t, t, cond), eps_u = model(x_t, t, null_cond).
    """

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_c, eps_u = model(x_t, t, cond), model(x_t, t, null_cond)
        return eps_u + w * (eps_c - eps_u)

    return model_fn


def sample(
    schedule: Schedule,
    model_fn: ModelFn,
    shape: tuple[int, ...],
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    *,
    prediction_type: str = "eps",
    n_snapshots: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Samples:
    """Draw x_T ~ N(0, I) of `shape` and integrate back to x0 with `sampler`.

    Args:
        model_fn: network output for (x_t (B, ...), t (B,) long) predicting `prediction_type`.
        sampler: "ddpm" (ancestral, all T steps; `steps` and `eta` are ignored), "ddim"
            (`steps` with leading spacing, `eta`) or "dpmpp_2m" (`steps`, linspace spacing).
        n_snapshots: how many intermediate x_t to keep, evenly spaced over the steps.
    """
    if sampler not in SAMPLERS:
        raise GenlabError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    T = schedule.T
    if sampler != "ddpm" and not 1 <= steps <= T:
        raise GenlabError(f"steps must be in 1..{T}, got {steps}")
    if sampler == "ddpm":
        timesteps = list(range(T))[::-1]
    elif sampler == "ddim":
        timesteps = ddim_timesteps(T, steps)
    else:
        timesteps = dpm_timesteps(T, steps)
    n = len(timesteps)
    keep = {round(i * (n - 1) / max(n_snapshots - 1, 1)) for i in range(n_snapshots)}
    x = x_T = randn_on(shape, generator, device, dtype)
    state: DPMState | None = None
    snapshots: list[Snapshot] = []
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < n else -1
        out = model_fn(x, torch.full((shape[0],), t, dtype=torch.long, device=device))
        if sampler == "ddpm":
            x = schedule.ddpm_step(x, t, out, prediction_type, generator)
        elif sampler == "ddim":
            x = schedule.ddim_step(x, t, t_prev, out, eta, generator, prediction_type)
        else:
            x, state = schedule.dpmpp_2m_step(x, t, t_prev, out, state, prediction_type)
        if i in keep:
            snapshots.append(Snapshot(t_prev, x))
    return Samples(x, snapshots, x_T)
