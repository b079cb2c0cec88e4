"""Denoising diffusion models: pixel-space DDPM, latent diffusion and miniature text-to-image.

One family, three settings of `DiffusionConfig`:

- **ddpm** (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"): a UNet eps_theta(x_t, t)
  learns the noise of the forward process on images scaled to [-1, 1]; optionally
  class-conditional with label dropout, which makes the same network unconditional for the null
  class and enables classifier-free guidance (Ho & Salimans 2022).
- **ldm** (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"):
  the same process in the spatial latent of a genlab VAE run (e.g. 4x7x7 for 28x28 images),
  z = latent_scale * mu(x) + noise of the posterior, decoded back to pixels after sampling. The
  frozen VAE is part of the model, so a run samples on its own.
- **txt2img**: latent diffusion conditioned by cross-attention on the token states of a real
  pretrained sentence encoder (all-MiniLM-L6-v2, `genlab.text`). Training picks for each image
  one caption of its class (class names in varied templates); the caption encodings are computed
  once when the run is created and kept in the model (`caption_states`), so training never runs
  the text encoder. Prompts at sampling time are encoded on the fly, so wordings never seen in
  training work as far as the encoder maps them near the training captions.

The process (`genlab.diffusion`) knows nothing of this module: the model hands it
`eps_model(x_t, t, cond)` for training and `model_fn(x_t, t)` for sampling.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.data import Batch, Shard
from genlab.diffusion import (
    SAMPLERS,
    SCHEDULES,
    TARGETS,
    Samples,
    cfg_model,
    make_schedule,
    randn_on,
    sample,
)
from genlab.errors import GenlabError
from genlab.family import (
    CONDITIONAL,
    FROZEN,
    Configured,
    Family,
    LoadedRun,
    image_config,
    image_fields,
    num_classes,
    pick,
)
from genlab.models.unet import UNet, UNetConfig, drop_labels
from genlab.options import Option, field_options


@dataclass(frozen=True)
class DiffusionConfig:
    """Attributes:
    channels, image_size: the images (pixel space), e.g. 1 and 28 for Fashion-MNIST.
    schedule: noise schedule "cosine" (Nichol & Dhariwal 2021), "linear" or "sigmoid".
    T: diffusion steps of the forward process.
    prediction: what the network predicts: "eps", "x0" or "v".
    min_snr_gamma: Min-SNR-gamma loss weighting (Hang et al. 2023); None for the plain MSE.
    width, mults, blocks, attention_levels, heads, dropout: the UNet (see `UNetConfig`).
    num_classes: > 0 for a class-conditional model (ddpm) or the number of caption classes
        (txt2img); 0 unconditional.
    label_dropout: probability of training with the null class (or the empty caption), which
        teaches the unconditional model used by classifier-free guidance.
    vae: the first stage's VAEConfig as a dict (latent diffusion); None for pixel space.
    latent_scale: z = latent_scale * (VAE latent), so that z has about unit variance.
    text_dim: width of the sentence encoder's token states (384 for MiniLM); 0 without text.
    captions: caption rows per class in `caption_states` (txt2img).
    caption_length: tokens per stored caption (padded).
    sampler, steps, eta, guidance: what `sample` does when not told otherwise.
    clip_x0: clip the predicted x0 to [-x0_bound, x0_bound] while sampling.
    x0_bound: the clipping range: 1 for pixels in [-1, 1]; for a latent model the largest
        |z| of the training latents, measured when the run is created. Without it an
        eps-model's error at the last step of the cosine schedule (beta = 0.999) is amplified
        about 30-fold into x_{T-1}, and DDPM's 1,000 steps do not recover in latent space.
    """

    channels: int = 1
    image_size: int = 28
    schedule: str = "cosine"
    T: int = 1000
    prediction: str = "eps"
    min_snr_gamma: float | None = None
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
    text_dim: int = 0
    captions: int = 0
    caption_length: int = 0
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    guidance: float = 1.0
    clip_x0: bool = True
    x0_bound: float = 1.0


@functools.lru_cache(maxsize=2)
def caption_states(captions: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The sentence encoder's token states and mask (float) of `captions`, computed once per
    process: encoding Fashion-MNIST's 701 captions takes about 10 s on one core, and the app or
    a test creates or loads text-to-image runs on the same captions more than once. Callers copy
    the tensors; they are not to be changed in place."""
    from genlab.text import load_text_encoder

    states, mask = load_text_encoder().encode(list(captions))
    return states.float(), mask.float()


class Diffusion(nn.Module):
    """A UNet, its forward process and (for latent diffusion) the frozen VAE around it."""

    SAMPLERS = SAMPLERS
    """The samplers `sample` takes (genlab.sampling checks a user's choice against them)."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        if config.prediction not in TARGETS:
            raise GenlabError(f"prediction must be one of {TARGETS}, got {config.prediction!r}")
        if config.sampler not in SAMPLERS:
            raise GenlabError(f"sampler must be one of {SAMPLERS}, got {config.sampler!r}")
        if not 0.0 <= config.label_dropout <= 1.0:
            raise GenlabError(f"label_dropout must be in [0, 1], got {config.label_dropout}")
        if config.text_dim and not (config.num_classes and config.captions):
            raise GenlabError("a text-conditioned model needs num_classes and captions > 0")
        self.config = config
        self.schedule = make_schedule(config.schedule, config.T)
        self.vae = None
        shape: tuple[int, ...] = (config.channels, config.image_size, config.image_size)
        if config.vae is not None:
            from genlab.io import config_from_dict
            from genlab.models.vae import VAE, VAEConfig

            self.vae = VAE(config_from_dict(VAEConfig, config.vae, "the first stage's config"))
            shape = tuple(self.vae.latent_shape)
            if len(shape) != 3:
                raise GenlabError(
                    "latent diffusion needs a VAE with a spatial latent: train it with "
                    "`genlab train vae --latent-channels 4`"
                )
            self.vae.requires_grad_(False)
        self.latent_shape = shape
        text = config.text_dim > 0
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
                num_classes=0 if text else config.num_classes,
                context_dim=config.text_dim,
            )
        )
        if text:
            rows = config.num_classes * config.captions + 1  # the last row: the empty caption
            L, D = config.caption_length, config.text_dim
            self.register_buffer("caption_states", torch.zeros(rows, L, D))
            # float, not bool: the EMA (AveragedModel, use_buffers) interpolates every buffer
            self.register_buffer("caption_mask", torch.zeros(rows, L))

    RECOMPUTABLE = ("caption_states", "caption_mask")
    """Buffers a run may leave out of its weights: the sentence encoder's states of the training
    captions (18 MB for Fashion-MNIST's 701 captions), recomputed from config.json's captions
    (`restore`). The shipped text-to-image run leaves them out."""

    def restore(self, run_config: dict) -> bool:
        """Recompute the caption buffers from the captions in a run's config.json (the same
        encoder that computed them when the run was created); returns whether it could (not
        without text, nor from captions that are not this model's)."""
        if not self.config.text_dim:
            return False
        per_class = run_config.get("captions") or []
        flat = tuple(caption for c in per_class for caption in c) + ("",)
        if len(flat) != self.caption_states.shape[0]:
            return False
        states, mask = caption_states(flat)
        self.caption_states.copy_(states)
        self.caption_mask.copy_(mask)
        return True

    @property
    def device(self) -> torch.device:
        """Where the network's weights are."""
        return next(self.unet.parameters()).device

    @property
    def max_steps(self) -> int:
        """The most sampling steps: the forward process's T."""
        return self.config.T

    # ------------------------------------------------------------------------- frozen parts

    def train(self, mode: bool = True) -> Diffusion:
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()  # the first stage is frozen, in training too
        return self

    def frozen_state(self) -> dict[str, torch.Tensor]:
        """The entries of the state dict that training never changes."""
        return {
            k: v
            for k, v in self.state_dict().items()
            if k.startswith("vae.") or k.startswith("caption_")
        }

    def load_frozen(self, run_dir: str | Path) -> None:
        """Load the frozen parts written when the run was created (RUN/frozen.safetensors);
        the training loop calls this before the first step of a new run."""
        from genlab.io import load_weights

        if not self.frozen_state():
            return
        path = Path(run_dir) / FROZEN
        state = load_weights(path)
        missing = sorted(set(self.frozen_state()) - set(state))
        if missing:
            raise GenlabError(f"{path}: lacks {missing[:3]}...; recreate the run")
        self.load_state_dict(state, strict=False)

    # ------------------------------------------------------------------------- spaces

    def to_diffusion_space(
        self,
        x: torch.Tensor,
        shard: Shard = Shard(),
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Images x (B, C, H, W) in [0, 1] -> x0 of the process: 2x - 1, or the scaled latent
        latent_scale * z with z ~ q(z | x) of the VAE (B, *latent_shape), its noise drawn from
        `generator` (on the generator's device, then moved to x's), else from the global RNG
        through `shard` (the rows of a global batch x holds)."""
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
        """Inverse of `to_diffusion_space` (decoding the latent): -> (B, C, H, W) in [0, 1]."""
        if self.vae is None:
            return ((x0 + 1.0) / 2.0).clamp(0.0, 1.0)
        return self.vae.decode(x0 / self.config.latent_scale).clamp(0.0, 1.0)

    # ------------------------------------------------------------------------- training

    def caption_rows(self, y: torch.Tensor, which: torch.Tensor | None = None) -> torch.Tensor:
        """Row of `caption_states` for class y (B,) and caption index `which` (B,) (random when
        None, from the global RNG so that exact resume holds)."""
        M = self.config.captions
        if which is None:
            which = torch.randint(0, M, y.shape, device=y.device)
        return y * M + which

    def context_of_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states (B, L, D) and mask (B, L) bool of caption rows (B,)."""
        return self.caption_states[rows], self.caption_mask[rows] > 0.5

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The denoising loss of `genlab.diffusion.Schedule.training_loss` on one batch; every
        random draw goes through the batch's shard (N processes draw what one would)."""
        cfg, shard = self.config, batch.shard
        x0 = self.to_diffusion_space(batch.x, shard)
        cond = context = mask = None
        if cfg.num_classes:
            if batch.y.min() < 0:
                raise GenlabError("a conditional diffusion model needs labelled data")
            null = cfg.num_classes
            u = shard.rand(batch.y.shape, device=batch.y.device)
            y = drop_labels(batch.y, cfg.label_dropout, null, uniform=u)  # null with p dropout
            if cfg.text_dim:
                which = shard.randint(0, cfg.captions, y.shape, device=y.device)
                rows = self.caption_rows(y.clamp(max=null - 1), which)
                rows = torch.where(y == null, self.caption_states.shape[0] - 1, rows)
                context, mask = self.context_of_rows(rows)
            else:
                cond = y

        def eps_model(x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
            return self.unet(x_t, t, c, context, mask)

        B = x0.shape[0]
        t = shard.randint(0, self.schedule.T, (B,), device=x0.device)  # (B,)
        eps = shard.randn(x0.shape, device=x0.device, dtype=x0.dtype)
        loss = self.schedule.training_loss(
            eps_model, x0, cond, target=cfg.prediction, min_snr_gamma=cfg.min_snr_gamma,
            t=t, eps=eps,
        )  # fmt: skip
        return loss, {}

    # ------------------------------------------------------------------------- sampling

    def model_fn(
        self,
        y: torch.Tensor | None = None,
        guidance: float | None = None,
        context: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """The network as the sampler's `model_fn(x_t, t) -> eps`, with its conditioning.

        Args:
            y: (B,) class ids; None for unconditional (the null class or the empty caption).
            guidance: classifier-free guidance weight w: eps_u + w (eps_c - eps_u); 1 is the
                plain conditional model, 0 the unconditional one.
            context: (states (B, L, D), mask (B, L)) of a prompt, for text models (overrides y).

        y and context are moved to the network's device.
        """
        cfg = self.config
        K = cfg.num_classes
        y = None if y is None else y.to(self.device)
        context = None if context is None else tuple(c.to(self.device) for c in context)
        w = cfg.guidance if guidance is None else guidance
        if not K:
            return lambda x_t, t: self.unet(x_t, t)
        if cfg.text_dim:
            device = self.caption_states.device
            null = self.context_of_rows(
                torch.tensor([self.caption_states.shape[0] - 1], device=device)
            )
            if context is None and y is not None:  # each class's first caption
                context = self.context_of_rows(self.caption_rows(y, torch.zeros_like(y)))
            cond = context

            def net(x_t: torch.Tensor, t: torch.Tensor, c) -> torch.Tensor:
                states, mask = c  # batch 1 (a prompt) or B
                B = len(x_t)
                return self.unet(x_t, t, None, states.expand(B, -1, -1), mask.expand(B, -1))

        else:
            cond, null = y, None

            def net(x_t: torch.Tensor, t: torch.Tensor, c) -> torch.Tensor:
                return self.unet(x_t, t, torch.full_like(t, K) if c is None else c)

        if cond is None or w == 0.0:  # unconditional: the null class or the empty caption
            return lambda x_t, t: net(x_t, t, null)
        if w == 1.0:
            return lambda x_t, t: net(x_t, t, cond)
        return cfg_model(net, cond, null, w)

    def clipped(self, model_fn):
        """Wrap model_fn so the x0 it implies lies in [-x0_bound, x0_bound] (diffusers'
        "clip_sample")."""
        schedule, target, bound = self.schedule, self.config.prediction, self.config.x0_bound

        def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            x0, _ = schedule.to_x0_eps(x_t, t, model_fn(x_t, t), target)
            x0 = x0.clamp(-bound, bound)
            if target == "x0":
                return x0
            eps = schedule.predict_eps_from_x0(x_t, t, x0)
            return eps if target == "eps" else schedule.v_target(x0, eps, t)

        return fn

    def sample_process(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        guidance: float | None = None,
        context: tuple[torch.Tensor, torch.Tensor] | None = None,
        classifier: nn.Module | None = None,
        classifier_scale: float = 1.0,
        model_fn=None,
        n_snapshots: int = 0,
    ) -> Samples:
        """Run the reverse process; returns x0 and snapshots in the diffusion space.

        Args:
            classifier: a noise-aware classifier p(y | x_t, t) (`genlab.models.noisy_classifier`)
                on this model's diffusion space and schedule: classifier guidance towards y
                with `classifier_scale` (Dhariwal & Nichol 2021), on top of any CFG.
            model_fn: replaces the network's own (x_t, t) -> prediction entirely.
        """
        cfg = self.config
        if model_fn is None:
            model_fn = self.model_fn(y, guidance, context)
            if classifier is not None:
                model_fn = self.classifier_guided(model_fn, classifier, y, n, classifier_scale)
        if cfg.clip_x0:
            model_fn = self.clipped(model_fn)
        return sample(
            self.schedule,
            model_fn,
            (n, *self.latent_shape),
            sampler or cfg.sampler,
            steps or cfg.steps,
            cfg.eta if eta is None else eta,
            generator,
            prediction_type=cfg.prediction,
            n_snapshots=n_snapshots,
            device=self.device,
        )

    def classifier_guided(self, model_fn, classifier, y, n: int, scale: float):
        """model_fn with classifier guidance towards y (n,) (classes in turn when None)."""
        from genlab.models.noisy_classifier import classifier_guidance

        if self.config.prediction != "eps":
            raise GenlabError("classifier guidance needs an eps-prediction model")
        ccfg = classifier.config
        if (ccfg.channels, ccfg.image_size, ccfg.image_size) != tuple(self.latent_shape):
            raise GenlabError(
                f"the classifier reads {ccfg.channels}x{ccfg.image_size}x{ccfg.image_size}, "
                f"this model diffuses {'x'.join(map(str, self.latent_shape))}: train the "
                "noisy classifier on the same data and space"
            )
        if (ccfg.schedule, ccfg.T) != (self.config.schedule, self.config.T):
            raise GenlabError(
                f"the classifier was trained on the {ccfg.schedule} schedule with T={ccfg.T}, "
                f"this model uses {self.config.schedule} with T={self.config.T}"
            )
        if y is None:
            y = torch.arange(n, device=self.device) % ccfg.num_classes
        return classifier_guidance(model_fn, classifier, y, scale, self.schedule)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        **options,
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1]. A conditional model with y None draws the classes
        0, 1, ..., K-1, 0, ... in turn; `options` as in `sample_process`."""
        K = self.config.num_classes
        if K and y is None and options.get("context") is None:
            y = torch.arange(n, device=self.device) % K
        return self.to_images(self.sample_process(n, generator=generator, y=y, **options).x0)

    @torch.no_grad()
    def vlb(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        draws: int = 4,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """An unbiased Monte-Carlo estimate of the variational bound -log p(x) <= L (Ho et al.
        2020, eq. 5), nats per image (B,), for 8-bit images x (B, C, H, W) in [0, 1]:

            L = L_T + L_0 + sum_{t=1}^{T-1} L_t  ~  L_T + L_0 + (T - 1) mean_{t ~ U{1..T-1}} L_t

        with L_T and L_0 exact and `draws` random t per image for the sum. Pixel space only: a
        latent model's bound would need the first stage's likelihood too.
        """
        from genlab.diffusion import prior_kl, randn_on, vlb_terms

        if self.vae is not None:
            raise GenlabError("the variational bound needs a pixel-space model (ddpm), not ldm")
        model_fn = self.model_fn(y, 1.0)
        target, schedule = self.config.prediction, self.schedule

        def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            out = model_fn(x_t.to(x.dtype), t)
            return schedule.to_x0_eps(x_t, t, out.double(), target)[1]

        x0 = 2.0 * x - 1.0
        B, T = x0.shape[0], schedule.T
        device = x0.device

        def term(t: torch.Tensor) -> torch.Tensor:
            eps = randn_on(x0.shape, generator, device, torch.float64)
            return vlb_terms(schedule, eps_fn, x0.double(), t, eps)

        total = prior_kl(schedule, x0) + term(torch.zeros(B, dtype=torch.long, device=device))
        where = generator.device if generator is not None else device
        middle = 0.0
        for _ in range(draws):
            t = torch.randint(1, T, (B,), generator=generator, device=where).to(device)
            middle = middle + term(t)
        return total + (T - 1) * middle / draws

    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A prompt's token states (1, L, D) and mask (1, L) from the sentence encoder."""
        if not self.config.text_dim:
            raise GenlabError("this model is not conditioned on text; use --class or no prompt")
        from genlab.text import load_text_encoder

        states, mask = load_text_encoder().encode([prompt])
        return states.to(self.device), mask.to(self.device)


def latent_scale_of(vae, images: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """The scale and the clipping bound of a VAE's latents over `images` (N, C, H, W) in [0, 1]:
    1 / std of z ~ q(z | x) (Rombach et al. 2022, sec. 4.3.2: the latent is rescaled to unit
    variance before diffusion), and the largest |z| after that scaling, rounded up. The images
    go to the VAE's device; the noise is drawn on the CPU (the same on every device)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mu, logvar = vae.encode_dist(images.to(next(vae.parameters()).device))
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g).to(mu.device)
    scale = 1.0 / max(float(z.std()), 1e-8)
    return scale, math.ceil(float((z * scale).abs().max()))


def snr_db(schedule, t: int) -> float:
    """Signal-to-noise ratio of x_t in decibels (for picture captions)."""
    return 10.0 * math.log10(float(schedule.snr(t)))


# ------------------------------------------------------------------------------ the family records

LATENT_UNET = {"width": 32, "mults": (1, 2), "attention_levels": ()}
"""The latent model's UNet: on a 4x7x7 latent two levels (7x7, 4x4), attention (and a text
model's cross-attention) in the middle block only, at 4x4: 0.7 M parameters. Attention at 7x7
as well cost 1.6x the step time on one CPU core (CPU attention backward on 49 tokens is slow)."""

DIFFUSION_TRAIN = {"lr": 1e-3, "warmup_steps": 200}
"""Training defaults of the diffusion families: a lower peak rate than the VAE's 2e-3."""

DERIVED = ("channels", "image_size", "num_classes", "vae", "latent_scale", "text_dim")
DERIVED += ("captions", "caption_length", "x0_bound")
"""DiffusionConfig fields set from the data, the first stage and the captions, not options."""


def diffusion_options(**defaults) -> tuple[Option, ...]:
    """The DiffusionConfig options (with other `defaults` for the latent models' UNet)."""
    ranges: dict[str, dict] = {
        "schedule": {"choices": tuple(SCHEDULES)},
        "T": {"min": 2, "max": 100_000},
        "prediction": {"choices": TARGETS},
        "min_snr_gamma": {"min_open": True, "max": 1e4},
        "width": {"min": 1, "max": 1024},
        "mults": {"min": 1, "max": 64},
        "blocks": {"min": 1, "max": 16},
        "attention_levels": {"max": 16},
        "heads": {"min": 1, "max": 64},
        "dropout": {"max": 0.99},
        "label_dropout": {"max": 1.0},
        "sampler": {"choices": SAMPLERS},
        "steps": {"min": 1, "max": 100_000},
        "eta": {"max": 1.0},
        "guidance": {"max": 100.0},
    }
    for name, value in defaults.items():
        ranges[name] = {**ranges.get(name, {}), "default": value}
    return field_options(DiffusionConfig, exclude=DERIVED, **ranges)


VAE_RUN = Option(
    "vae",
    "run",
    help="The VAE run whose spatial latent to diffuse in (genlab train vae --latent-channels 4).",
    required=True,
    of=("vae",),
)


def first_stage(run: LoadedRun, data) -> dict:
    """DiffusionConfig fields of a latent model on the VAE of `run`: its config, the scale that
    gives its latents unit variance and their clipping bound, measured on 2,048 training images.

    Raises:
        GenlabError: the VAE's latent is a vector, or it was made for other images.
    """
    vae = run.model
    if len(getattr(vae, "latent_shape", ())) != 3:
        raise GenlabError(
            f"--vae {run.path}: its latent is a vector; latent diffusion needs a spatial latent: "
            "train it with `genlab train vae --latent-channels 4`"
        )
    c, h, _ = data.shape
    if (vae.config.channels, vae.config.image_size) != (c, h):
        raise GenlabError(
            f"--vae {run.path}: made for {vae.config.channels}x{vae.config.image_size} images, "
            f"the data is {c}x{h}"
        )
    scale, bound = latent_scale_of(vae, data.images[: min(len(data), 2048)].float() / 255.0)
    vae_config = dataclasses.asdict(vae.config)
    return {"vae": vae_config, "latent_scale": scale, "x0_bound": bound}


def caption_table(class_names: list[str]) -> tuple[list[list[str]], torch.Tensor, torch.Tensor]:
    """Every class's captions (padded to the same count by repetition) and their encodings.

    Returns:
        captions[k][m]; states (K * M + 1, L, D) with the empty caption last; mask (K * M + 1, L)
        as float.
    """
    from genlab.text import captions

    per_class = captions(class_names)
    M = max(len(c) for c in per_class)
    padded = [[c[m % len(c)] for m in range(M)] for c in per_class]
    states, mask = caption_states(tuple(caption for c in padded for caption in c) + ("",))
    return padded, states.clone(), mask.clone()


def _frozen(config: DiffusionConfig, vae=None, states=None, mask=None) -> dict:
    """The frozen state of a latent model: the first stage's weights and the captions."""
    with torch.random.fork_rng(devices=[]):  # building the model must not move the RNG
        model = Diffusion(config)
    if vae is not None:
        model.vae.load_state_dict(vae.state_dict())
    if states is not None:
        model.caption_states.copy_(states)
        model.caption_mask.copy_(mask)
    return model.frozen_state()


def configure_ddpm(options: dict, data) -> Configured:
    """Diffusion in pixel space (optionally class-conditional)."""
    k = num_classes(data, "ddpm --conditional", 2) if options.get("conditional") else 0
    return Configured(image_config(DiffusionConfig, options, data, num_classes=k))


def configure_ldm(options: dict, data) -> Configured:
    """Diffusion in the spatial latent of the --vae run (optionally class-conditional)."""
    k = num_classes(data, "ldm --conditional", 2) if options.get("conditional") else 0
    run = options["vae"]
    fields = {**image_fields(data), **first_stage(run, data), "num_classes": k}
    config = pick(DiffusionConfig, options, **fields)
    extra = {"first_stage": str(Path(run.path).resolve())}
    return Configured(config, extra, _frozen(config, run.model))


def configure_txt2img(options: dict, data) -> Configured:
    """Latent diffusion conditioned on the sentence encoder's token states of captions of the
    data's classes, encoded once here."""
    k = num_classes(data, "txt2img", 2)
    run = options["vae"]
    captions, states, mask = caption_table(list(data.class_names))
    fields = {**image_fields(data), **first_stage(run, data), "num_classes": k}
    fields.update(text_dim=states.shape[-1], captions=len(captions[0]))
    fields["caption_length"] = states.shape[1]
    config = pick(DiffusionConfig, options, **fields)
    extra = {"first_stage": str(Path(run.path).resolve()), "captions": captions}
    return Configured(config, extra, _frozen(config, run.model, states, mask))


FAMILY = Family(
    name="ddpm",
    summary="Diffusion in pixel space: a UNet learns the noise (DDPM; DDIM/DPM-Solver sampling).",
    config=DiffusionConfig,
    model=Diffusion,
    configure=configure_ddpm,
    options=(*diffusion_options(), CONDITIONAL),
    train_defaults=DIFFUSION_TRAIN,
)
LATENT_FAMILY = Family(
    name="ldm",
    summary="Latent diffusion in the spatial latent of a genlab VAE run (--vae RUN).",
    config=DiffusionConfig,
    model=Diffusion,
    configure=configure_ldm,
    options=(*diffusion_options(**LATENT_UNET), CONDITIONAL, VAE_RUN),
    train_defaults=DIFFUSION_TRAIN,
)
TEXT_FAMILY = Family(
    name="txt2img",
    summary="Miniature text to image: latent diffusion cross-attending to MiniLM's token states.",
    config=DiffusionConfig,
    model=Diffusion,
    configure=configure_txt2img,
    options=(*diffusion_options(**LATENT_UNET), VAE_RUN),
    train_defaults=DIFFUSION_TRAIN,
)
