"""Noise-aware classifier p_phi(y | x_t, t) and classifier guidance (Dhariwal & Nichol 2021,
"Diffusion Models Beat GANs on Image Synthesis", sec. 4).

The classifier is the encoder half of the diffusion U-Net (`genlab.models.unet`): a sinusoidal
timestep embedding and an MLP, residual blocks with the embedding as a scale-shift, stride-2
downsampling, then GroupNorm-SiLU, global average pooling and a linear layer to the K logits
(the paper pools with attention; the average keeps the CPU cost low). It is trained with
cross-entropy on noised images x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps of the
same schedule as the diffusion model, t ~ U{0..T-1}, where x0 = 2 x - 1 is the data on the
diffusion scale [-1, 1].

Classifier guidance (Algorithm 2, eq. 14) shifts the predicted noise along the classifier's
gradient:

    eps_hat(x_t, t) = eps_theta(x_t, t) - s sqrt(1 - alpha_bar_t) grad_{x_t} log p_phi(y | x_t, t),

which, since eps = -sqrt(1 - alpha_bar_t) grad log q(x_t), is the noise of the tilted density
q(x_t) p_phi(y | x_t)^s: for s = 1 and an exact classifier it is exactly the noise of the
class-conditional q(x_t | y). genlab's samplers (DDPM, DDIM, DPM-Solver++) all consume eps, so
`classifier_guidance` returns a `ModelFn` that serves each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import Batch, ImageData
from genlab.diffusion import SCHEDULES, ModelFn, Schedule, make_schedule
from genlab.errors import GenlabError
from genlab.family import Configured, Family, image_config, image_options, num_classes
from genlab.models.classifier import require_classes
from genlab.models.unet import ResBlock, timestep_embedding


@dataclass(frozen=True)
class NoisyClassifierConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB).
    image_size: image side in pixels; any side works (the stride-2 convs pad odd sides).
    num_classes: number of classes K; the CLI sets it from the data's class names.
    schedule: noise schedule name in `genlab.diffusion.SCHEDULES`; must match the diffusion
        model that the classifier will guide.
    T: diffusion steps of that schedule.
    width: channels at full resolution; level i has width * mults[i].
    mults: width multipliers per level; len(mults) - 1 stride-2 downsamplings.
    blocks: residual blocks per level. One: full-resolution convs dominate the CPU time.
    groups: GroupNorm groups; every width must divide by it.
    dropout: dropout inside the residual blocks.
    """

    channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    schedule: str = "cosine"
    T: int = 1000
    width: int = 32
    mults: tuple[int, ...] = (1, 2, 2)
    blocks: int = 1
    groups: int = 8
    dropout: float = 0.0


class NoisyClassifier(nn.Module):
    """log p_phi(y | x_t, t) up to a constant: (x_t (B, C, H, W), t (B,)) -> logits (B, K)."""

    def __init__(self, config: NoisyClassifierConfig):
        super().__init__()
        require_classes(config.num_classes)
        widths = [config.width * m for m in config.mults]
        if not widths or min(widths) < 1 or config.blocks < 1:
            raise GenlabError(f"width, mults and blocks must be positive, got {config}")
        if any(w % config.groups for w in widths):
            raise GenlabError(f"every width {widths} must divide by groups={config.groups}")
        self.config = config
        # a plain attribute, not buffers: the state dict holds only learned weights
        self.schedule: Schedule = make_schedule(config.schedule, config.T)
        E = 4 * config.width  # as in the U-Net (Ho et al. 2020)
        self.time_mlp = nn.Sequential(nn.Linear(config.width, E), nn.SiLU(), nn.Linear(E, E))
        self.stem = nn.Conv2d(config.channels, config.width, 3, padding=1)
        self.blocks = nn.ModuleList()  # per level: a ModuleList of ResBlocks
        self.downsample = nn.ModuleList()
        c = config.width
        for i, w in enumerate(widths):
            level = nn.ModuleList()
            for _ in range(config.blocks):
                level.append(ResBlock(c, w, E, config.groups, config.dropout))
                c = w
            self.blocks.append(level)
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.out_norm = nn.GroupNorm(config.groups, c)
        self.head = nn.Linear(c, config.num_classes)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Class logits of noisy images.

        Args:
            x_t: (B, C, H, W) on the diffusion scale: data in [-1, 1] noised to step t.
            t: (B,) timesteps in 0..T-1, long or float.

        Returns:
            (B, K) logits.
        """
        emb = self.time_mlp(timestep_embedding(t, self.config.width))  # (B, E)
        h = self.stem(x_t)  # (B, width, H, W)
        for i, level in enumerate(self.blocks):
            for block in level:
                h = block(h, emb)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # (B, c, ceil(H / 2), ceil(W / 2))
        h = F.silu(self.out_norm(h)).mean(dim=(2, 3))  # (B, c), global average pool
        return self.head(h)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy on x_t ~ q(x_t | x0), t ~ U{0..T-1}; logs the batch accuracy.

        t and eps come from the global torch RNG (t from the CPU one, eps from x's device), which
        the training loop saves and restores for exact resume.
        """
        if batch.y.min() < 0:
            raise GenlabError("a classifier needs labelled data; this data set has no labels")
        x0 = 2 * batch.x - 1  # (B, C, H, W) in [-1, 1]
        t = batch.shard.randint(0, self.schedule.T, (x0.shape[0],))  # (B,) on the CPU
        eps = batch.shard.randn(x0.shape, device=x0.device, dtype=x0.dtype)
        x_t = self.schedule.q_sample(x0, t, eps)
        logits = self(x_t, t.to(x0.device))
        loss = F.cross_entropy(logits, batch.y)
        acc = (logits.argmax(1) == batch.y).float().mean()
        return loss, {"acc": acc.detach()}


def classifier_guidance(
    model_fn: ModelFn,
    classifier: nn.Module,
    y: torch.Tensor,
    scale: float,
    schedule: Schedule,
) -> ModelFn:
    """Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2, eq. 14) as a `model_fn(x_t, t)`:

        eps_hat = eps(x_t, t) - scale * sqrt(1 - alpha_bar_t) * grad_{x_t} log p(y | x_t, t).

    The gradient is taken with autograd even when the caller samples under
    `torch.inference_mode()` or `torch.no_grad()`; the result is a plain tensor.

    Args:
        model_fn: unconditional (or conditional) noise prediction eps(x_t, t), (B, ...) -> (B, ...).
        classifier: `classifier(x_t, t) -> logits (B, K)`, noise-aware and on the diffusion scale
            (a `NoisyClassifier`). It must be in eval mode: in training mode dropout would make
            the gradient random and batch statistics would couple the examples of the batch.
        y: (B,) long target classes, one per sample.
        scale: guidance scale s >= 0; 0 leaves model_fn unchanged, 1 samples q(x | y) when the
            classifier is exact, larger values trade diversity for class fidelity.
        schedule: the diffusion schedule that both networks were trained with.

    Returns:
        The guided eps prediction, a `ModelFn`.
    """
    if y.dim() != 1:
        raise GenlabError(f"guidance labels y must have shape (B,), got {tuple(y.shape)}")

    def guided(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = model_fn(x_t, t)
        with torch.inference_mode(False), torch.enable_grad():
            # fresh non-inference copies: inference tensors cannot be saved for backward
            x_in = x_t.detach().clone().requires_grad_()
            t_in, y_in = t.clone(), y.to(x_t.device).clone()
            log_probs = F.log_softmax(classifier(x_in, t_in), dim=1)  # (B, K)
            selected = log_probs.gather(1, y_in[:, None]).sum()  # examples are independent
            (grad,) = torch.autograd.grad(selected, x_in)  # (B, ...)
        sigma = (1 - schedule.alpha_bar_at(t.cpu())).sqrt()  # (B,) sqrt(1 - alpha_bar_t)
        sigma = sigma.to(device=x_t.device, dtype=x_t.dtype).reshape(-1, *[1] * (x_t.dim() - 1))
        return eps - scale * sigma * grad.to(x_t.dtype)

    return guided


@torch.inference_mode()
def evaluate_noisy_accuracy(
    classifier: NoisyClassifier,
    data: ImageData,
    t_values: Sequence[int],
    batch_size: int = 512,
    seed: int = 0,
) -> dict[int, float]:
    """Top-1 accuracy on x_t ~ q(x_t | x0) at fixed noise levels (classifier put in eval mode).

    Accuracy falls as t grows, to chance near t = T - 1, where x_t carries no signal.

    Args:
        classifier: a NoisyClassifier.
        data: images (N, C, H, W) uint8 with labels (N,).
        t_values: timesteps in 0..T-1 to evaluate at.
        batch_size: images per forward pass.
        seed: seeds the noise (a private generator; the global RNG is untouched).

    Returns:
        {t: the fraction of the N images classified correctly at t}.
    """
    classifier.eval()
    if len(data) == 0 or data.labels.min() < 0:
        raise GenlabError("accuracy needs a non-empty labelled data set")
    T = classifier.schedule.T
    if any(not 0 <= t < T for t in t_values):
        raise GenlabError(f"t_values must lie in 0..{T - 1}, got {list(t_values)}")
    device = next(classifier.parameters()).device
    accuracy = {}
    for t in t_values:
        generator = torch.Generator().manual_seed(seed)
        correct = 0
        for start in range(0, len(data), batch_size):
            batch = data.batch(torch.arange(start, min(start + batch_size, len(data))))
            x0 = 2 * batch.x - 1
            eps = torch.randn(x0.shape, generator=generator)
            x_t = classifier.schedule.q_sample(x0, t, eps).to(device)
            t_batch = torch.full((x0.shape[0],), t, device=device)
            correct += (classifier(x_t, t_batch).argmax(1).cpu() == batch.y).sum().item()
        accuracy[t] = correct / len(data)
    return accuracy


# ------------------------------------------------------------------------------ the family record


def configure(options: dict, data) -> Configured:
    """A noise-aware classifier of the training data's classes."""
    k = num_classes(data, "a noisy classifier", minimum=2)
    return Configured(image_config(NoisyClassifierConfig, options, data, num_classes=k))


FAMILY = Family(
    name="noisy-classifier",
    summary="p(y | x_t, t) on noised images, for classifier guidance of diffusion models.",
    config=NoisyClassifierConfig,
    model=NoisyClassifier,
    configure=configure,
    options=image_options(
        NoisyClassifierConfig,
        schedule={"choices": tuple(SCHEDULES)},
        T={"min": 1, "max": 100_000},
        width={"min": 1, "max": 1024},
        mults={"min": 1, "max": 64},
        blocks={"min": 1, "max": 16},
        groups={"min": 1, "max": 1024},
        dropout={"max": 0.99},
    ),
)
