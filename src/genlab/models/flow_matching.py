"""Flow matching with the rectified (straight) path, in pixel space or in a VAE's latent space.

The successor of genlab's diffusion models (the objective behind Stable Diffusion 3): the same
UNet, asked for a velocity instead of the noise. With x0 the data (pixels scaled to [-1, 1], or
the scaled latent of a frozen genlab VAE, as in `ldm`) and eps ~ N(0, I),

    x_t = (1 - t) x0 + t eps,    loss = || v_theta(x_t, t, y) - (eps - x0) ||^2,

t drawn uniformly or logit-normally (`genlab.flow`). Sampling integrates dx/dt = v_theta from
noise at t = 1 to t = 0 with Euler, midpoint or Heun steps; the number of network evaluations
(NFE) is the budget `genlab nfe-sweep` compares with DDIM's.

Class-conditional models train with label dropout (the null class with probability
`label_dropout`), which makes the same network unconditional and enables classifier-free
guidance on the velocity, v_u + w (v_c - v_u) (Ho & Salimans 2022; SD3 samples so).

The process (`genlab.flow`) knows nothing of this module: the model hands it `velocity(x_t, t)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.data import Batch, Shard
from genlab.diffusion import cfg_model, randn_on
from genlab.errors import GenlabError
from genlab.family import CONDITIONAL, FROZEN, Configured, Family, image_fields, num_classes, pick
from genlab.flow import SOLVERS, TIME_SAMPLING, Trajectory, flow_matching_loss, time_from_normal
from genlab.flow import sample as solve_from_noise
from genlab.models.unet import UNet, UNetConfig, drop_labels
from genlab.options import Option, field_options

TIME_SCALE = 1000.0
"""The UNet's sinusoidal time embedding reads 1000 t: the range of a diffusion model's integer
steps, for which its frequencies were chosen."""


@dataclass(frozen=True)
class FlowMatchingConfig:
    """Attributes:
    channels: image channels (pixel space), 1 for Fashion-MNIST.
    image_size: image side (pixel space), 28 for Fashion-MNIST.
    time_sampling: how training draws t: "logit-normal" (SD3) or "uniform".
    logit_mean: m of the logit-normal t = sigmoid(m + s n); > 0 favours the noisy end.
    logit_std: s of the logit-normal t = sigmoid(m + s n).
    width: UNet channels at the first level (pixel space 16; in a VAE's latent 32).
    mults: UNet channel multipliers per level (pixel space 1,2,4; latent 1,2).
    blocks: UNet residual blocks per level.
    attention_levels: UNet levels with self-attention (pixel space 2; latent none).
    heads: attention heads.
    dropout: UNet dropout.
    num_classes: > 0 for a class-conditional model; 0 unconditional.
    label_dropout: probability of training with the null class, which teaches the
        unconditional velocity that classifier-free guidance needs.
    vae: the first stage's VAEConfig as a dict (latent flow matching); None for pixel space.
    latent_scale: z = latent_scale * (VAE latent), so that z has about unit variance.
    sampler: the default ODE solver: euler, midpoint or heun (midpoint: at 24 and at 8
        evaluations it scored as Euler at 25 and better than Euler at 8, docs/flow-matching.md).
    steps: the default number of solver steps (NFE = steps for euler, 2 steps otherwise).
    guidance: the default classifier-free guidance weight w (1 = none).
    """

    channels: int = 1
    image_size: int = 28
    time_sampling: str = "logit-normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    width: int = 16
    mults: tuple[int, ...] = (1, 2, 4)
    blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    heads: int = 4
    dropout: float = 0.0
    num_classes: int = 0
    label_dropout: float = 0.1
    vae: dict[str, Any] | None = None
    latent_scale: float = 1.0
    sampler: str = "midpoint"
    steps: int = 12
    guidance: float = 1.0


class FlowMatching(nn.Module):
    """A UNet v_theta(x_t, t, y) and (for latent flow matching) the frozen VAE around it."""

    SAMPLERS = SOLVERS
    """The samplers `sample` takes (genlab.sampling checks a user's choice against them)."""
    max_steps = 1000

    def __init__(self, config: FlowMatchingConfig):
        super().__init__()
        if config.time_sampling not in TIME_SAMPLING:
            raise GenlabError(
                f"time_sampling must be one of {TIME_SAMPLING}, got {config.time_sampling!r}"
            )
        if config.sampler not in SOLVERS:
            raise GenlabError(f"sampler must be one of {SOLVERS}, got {config.sampler!r}")
        if not 0.0 <= config.label_dropout <= 1.0:
            raise GenlabError(f"label_dropout must be in [0, 1], got {config.label_dropout}")
        self.config = config
        self.vae = None
        shape: tuple[int, ...] = (config.channels, config.image_size, config.image_size)
        if config.vae is not None:
            from genlab.io import config_from_dict
            from genlab.models.vae import VAE, VAEConfig

            self.vae = VAE(config_from_dict(VAEConfig, config.vae, "the first stage's config"))
            shape = tuple(self.vae.latent_shape)
            self.vae.requires_grad_(False)
        self.latent_shape = shape
        self.unet = UNet(
            UNetConfig(
                channels=shape[0],
                image_size=shape[1],
                width=config.width,
                mults=config.mults,
                blocks=config.blocks,
                attention_levels=config.attention_levels,
                heads=config.heads,
                dropout=config.dropout,
                num_classes=config.num_classes,
            )
        )

    @property
    def device(self) -> torch.device:
        """Where the network's weights are."""
        return next(self.unet.parameters()).device

    # ------------------------------------------------------------------------- frozen parts

    def train(self, mode: bool = True) -> FlowMatching:
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()  # the first stage is frozen, in training too
        return self

    def frozen_state(self) -> dict[str, torch.Tensor]:
        """The entries of the state dict that training never changes (the first stage)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("vae.")}

    def load_frozen(self, run_dir: str | Path) -> None:
        """Load the first stage written when the run was created (RUN/frozen.safetensors)."""
        from genlab.io import load_weights

        if self.vae is None:
            return
        path = Path(run_dir) / FROZEN
        state = load_weights(path)
        missing = sorted(set(self.frozen_state()) - set(state))
        if missing:
            raise GenlabError(f"{path}: lacks {missing[:3]}...; recreate the run")
        self.load_state_dict(state, strict=False)

    # ------------------------------------------------------------------------- spaces

    def to_flow_space(
        self, x: torch.Tensor, shard: Shard = Shard(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images x (B, C, H, W) in [0, 1] -> x0 of the path: 2x - 1, or latent_scale * z with
        z ~ q(z | x) of the VAE, its noise from `generator`, else through `shard`."""
        if self.vae is None:
            return 2.0 * x - 1.0
        with torch.no_grad():
            mu, logvar = self.vae.encode_dist(x)
            if generator is None:
                eps = shard.randn(mu.shape, device=mu.device, dtype=mu.dtype)
            else:
                eps = randn_on(mu.shape, generator, mu.device, mu.dtype)
            z = mu + (0.5 * logvar).exp() * eps
        return self.config.latent_scale * z

    def to_images(self, x0: torch.Tensor) -> torch.Tensor:
        """Inverse of `to_flow_space` (decoding a latent): -> (B, C, H, W) in [0, 1]."""
        if self.vae is None:
            return ((x0 + 1.0) / 2.0).clamp(0.0, 1.0)
        return self.vae.decode(x0 / self.config.latent_scale).clamp(0.0, 1.0)

    # ------------------------------------------------------------------------- training

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The flow-matching loss on one batch; every random draw goes through the batch's
        shard (N processes draw what one would)."""
        cfg, shard = self.config, batch.shard
        x0 = self.to_flow_space(batch.x, shard)  # (B, C, H, W)
        y = None
        if cfg.num_classes:
            if batch.y.min() < 0:
                raise GenlabError("a conditional flow-matching model needs labelled data")
            u = shard.rand(batch.y.shape, device=batch.y.device)
            y = drop_labels(batch.y, cfg.label_dropout, cfg.num_classes, uniform=u)
        B = x0.shape[0]
        if cfg.time_sampling == "uniform":
            draw = shard.rand((B,), device=x0.device)
        else:
            draw = shard.randn((B,), device=x0.device)
        t = time_from_normal(draw, cfg.time_sampling, cfg.logit_mean, cfg.logit_std)  # (B,)
        eps = shard.randn(x0.shape, device=x0.device, dtype=x0.dtype)

        def velocity(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.unet(x_t, TIME_SCALE * t, y)

        return flow_matching_loss(velocity, x0, eps, t), {}

    # ------------------------------------------------------------------------- sampling

    def velocity(self, y: torch.Tensor | None = None, guidance: float | None = None):
        """The network as the solver's `velocity(x_t, t)`, with its conditioning: class ids y
        (B,) (moved to the network's device), None for the null class; `guidance` w of
        classifier-free guidance (1: the conditional velocity, 0: the unconditional one)."""
        K = self.config.num_classes
        w = self.config.guidance if guidance is None else guidance

        def net(x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
            c = None if not K else torch.full_like(t, K, dtype=torch.long) if c is None else c
            return self.unet(x_t, TIME_SCALE * t, c)

        y = None if y is None else y.to(self.device)
        if y is None or w == 0.0:
            return lambda x_t, t: net(x_t, t, None)
        if w == 1.0:
            return lambda x_t, t: net(x_t, t, y)
        return cfg_model(net, y, None, w)

    def sample_trajectory(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        n_snapshots: int = 0,
    ) -> Trajectory:
        """Integrate the ODE from noise; x0 and snapshots in the flow's space (pixels in [-1, 1]
        or the scaled latent)."""
        cfg = self.config
        steps = steps or cfg.steps
        if not 1 <= steps <= self.max_steps:
            raise GenlabError(f"steps must be in 1..{self.max_steps}, got {steps}")
        return solve_from_noise(
            self.velocity(y, guidance),
            (n, *self.latent_shape),
            steps,
            sampler or cfg.sampler,
            generator,
            n_snapshots=n_snapshots,
            device=self.device,
        )

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        **options,
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1]. A conditional model with y None draws the classes
        0, 1, ..., K-1, 0, ... in turn; `options` as in `sample_trajectory`."""
        K = self.config.num_classes
        if K and y is None:
            y = torch.arange(n, device=self.device) % K
        trajectory = self.sample_trajectory(n, generator=generator, y=y, **options)
        return self.to_images(trajectory.x0)


# ------------------------------------------------------------------------------ the family record

FLOW_TRAIN = {"lr": 1e-3, "warmup_steps": 200}
"""The training of the diffusion models, whose UNet this is."""

DERIVED = ("channels", "image_size", "num_classes", "vae", "latent_scale")
UNSET = {"default": None, "nullable": True}
"""The UNet's shape options default to the space's: the config's in pixel space, the latent
models' (`genlab.models.ddpm.LATENT_UNET`: width 32, mults 1,2, no attention) with --vae."""

VAE_RUN = Option(
    "vae",
    "run",
    help="A VAE run with a spatial latent (genlab train vae --latent-channels 4): flow matching "
    "in its latent space instead of pixels.",
    of=("vae",),
)


def configure(options: dict, data) -> Configured:
    """Flow matching in pixel space, or in the latent space of the --vae run (optionally
    class-conditional)."""
    from genlab.models.ddpm import LATENT_UNET, first_stage

    k = num_classes(data, "flow-matching --conditional", 2) if options.get("conditional") else 0
    fields: dict[str, Any] = {**image_fields(data), "num_classes": k}
    run = options.get("vae")
    if run is None:
        return Configured(pick(FlowMatchingConfig, options, **fields))
    stage = first_stage(run, data)
    fields.update(vae=stage["vae"], latent_scale=stage["latent_scale"])
    given = {k: v for k, v in options.items() if v is not None}
    config = pick(FlowMatchingConfig, {**LATENT_UNET, **given}, **fields)
    with torch.random.fork_rng(devices=[]):  # building the model must not move the RNG
        model = FlowMatching(config)
    model.vae.load_state_dict(run.model.state_dict())
    extra = {"first_stage": str(Path(run.path).resolve())}
    return Configured(config, extra, model.frozen_state())


FAMILY = Family(
    name="flow-matching",
    summary="Flow matching (rectified flow): a UNet learns the velocity; Euler/Heun sampling.",
    config=FlowMatchingConfig,
    model=FlowMatching,
    configure=configure,
    options=(
        *field_options(
            FlowMatchingConfig,
            exclude=DERIVED,
            time_sampling={"choices": TIME_SAMPLING},
            logit_mean={"min": -10.0, "max": 10.0},
            logit_std={"min_open": True, "min": 0.0, "max": 10.0},
            width={"min": 1, "max": 1024, **UNSET},
            mults={"min": 1, "max": 16, **UNSET},
            attention_levels={"max": 16, **UNSET},
            blocks={"min": 1, "max": 8},
            heads={"min": 1, "max": 64},
            dropout={"min": 0.0, "max": 0.9},
            label_dropout={"min": 0.0, "max": 1.0},
            sampler={"choices": SOLVERS},
            steps={"min": 1, "max": 1000},
            guidance={"min": 0.0, "max": 100.0},
        ),
        CONDITIONAL,
        VAE_RUN,
    ),
    train_defaults=FLOW_TRAIN,
)
