"""Generative adversarial networks (Goodfellow et al. 2014), DCGAN nets (Radford et al. 2016).

A generator G maps noise z ~ N(0, I) to an image; a discriminator D maps an image to a logit l,
with D(x) = sigmoid(l) the probability that x is real. They play the min-max game

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].

For a fixed G the best D is p_data / (p_data + p_G), and at that D the game minimises the
Jensen-Shannon divergence between p_data and p_G (Goodfellow et al. 2014, Theorem 1).

The saturation problem: early in training D rejects the fakes easily, D(G(z)) ~ 0, and the
generator's minimax loss log(1 - sigmoid(l)) is flat there: d/dl = -sigmoid(l) = -D(G(z)) -> 0,
so G gets no gradient exactly when it is worst. The non-saturating fix (same paper, section 3)
has G maximise log D(G(z)) instead, i.e. minimise -log sigmoid(l), with d/dl = -(1 - D(G(z))):
the same fixed point, strong gradients when G is bad. `generator_gradient_vs_d` computes both
curves and `plot_gradient_picture` draws them.

Other objectives in `LOSSES`: the hinge loss (Lim & Ye 2017; Miyato et al. 2018) and the
Wasserstein loss with gradient penalty (Arjovsky et al. 2017; Gulrajani et al. 2017), whose
critic returns an unbounded score instead of a probability. Options: spectral normalisation of
D's layers (Miyato et al. 2018) and, with `num_classes > 0`, a conditional GAN whose generator
reads a label embedding next to z and whose discriminator adds the projection term
<embed(y), phi(x)> (Miyato & Koyama 2018, "cGANs with Projection Discriminator").

Every loss is a pure function of discriminator logits; `GAN` ties them to the two networks with
`d_loss` and `g_loss`. The alternating optimisation (n_critic D steps per G step, two Adam
optimisers) lives in the training loop, not here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from genlab.data.types import Shard
from genlab.errors import GenlabError
from genlab.family import Configured, Family, image_fields, image_options, num_classes, pick
from genlab.models.autoencoder import conv_levels, level_widths
from genlab.models.stylegan import minibatch_std

# -- losses: pure functions of discriminator logits --------------------------------------------
# log D = log sigmoid(l) = -softplus(-l) and log(1 - D) = -softplus(l): stable for any logit.


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))]: D's side of the min-max game (minimax and ns)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))], which G minimises in the original game: saturates when D(G(z)) ~ 0."""
    return -F.softplus(fake_logits).mean()


def g_loss_ns(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]: the non-saturating generator loss (Goodfellow et al. 2014, section 3)."""
    return F.softplus(-fake_logits).mean()


def d_loss_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - l(x))] + E[max(0, 1 + l(G(z)))] (Lim & Ye 2017)."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[l(G(z))]: the generator side of the hinge loss."""
    return -fake_logits.mean()


def d_loss_wgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[f(G(z))] - E[f(x)]: the critic f estimates the Wasserstein-1 distance (Arjovsky 2017)."""
    return fake_logits.mean() - real_logits.mean()


def g_loss_wgan(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[f(G(z))]."""
    return -fake_logits.mean()


def gradient_penalty(
    discriminator_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    x_real: torch.Tensor,
    x_fake: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[(||grad_x f(x_hat)||_2 - 1)^2] on random interpolates (Gulrajani et al. 2017, eq. 3).

    Args:
        discriminator_fn: f(x, y) -> (B,) scores; called as `discriminator_fn(x_hat, y)`.
        x_real, x_fake: (B, ...) real and (detached) generated samples.
        y: (B,) labels passed through to `discriminator_fn`, or None.
        generator: draws the per-sample eps ~ U(0, 1).
        eps: (B, 1, ..., 1) interpolation weights drawn already (then `generator` is unused).

    Returns:
        Scalar penalty, differentiable in f's parameters (create_graph=True).
    """
    if eps is None:
        shape = (x_real.shape[0],) + (1,) * (x_real.ndim - 1)  # one eps per sample
        device = generator.device if generator is not None else x_real.device
        eps = torch.rand(shape, generator=generator, device=device)
    eps = eps.to(x_real)
    x_hat = (eps * x_real + (1 - eps) * x_fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator_fn(x_hat, y).sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).square().sum(1).add(1e-12).sqrt()  # (B,); 1e-12 keeps d/dgrad finite
    return (norm - 1).square().mean()


def mode_seeking_ratio(
    x1: torch.Tensor, x2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """MSGAN's d_I(G(z1), G(z2)) / d_z(z1, z2) (Mao et al. 2019, eq. 2): the mean absolute
    image difference over the mean absolute latent difference of paired samples."""
    return (x1 - x2).abs().float().mean() / (z1 - z2).abs().float().mean()


LOSSES: dict[str, tuple[Callable, Callable]] = {
    "minimax": (d_loss_bce, g_loss_minimax),
    "ns": (d_loss_bce, g_loss_ns),
    "hinge": (d_loss_hinge, g_loss_hinge),
    "wgan-gp": (d_loss_wgan, g_loss_wgan),
}
PROBABILITY_LOSSES = ("minimax", "ns")  # D's logit is log-odds: logs report sigmoid(l)


# -- the lecture picture: why the minimax generator loss saturates -----------------------------


class GradientCurves(NamedTuple):
    """|d loss_G / d logit| per sample against D(G(z)) = sigmoid(logit); all (N,)."""

    d_fake: torch.Tensor
    minimax: torch.Tensor  # sigmoid(l) = D(G(z)): vanishes as D(G(z)) -> 0
    ns: torch.Tensor  # 1 - sigmoid(l) = 1 - D(G(z)): vanishes only as D(G(z)) -> 1


def generator_gradient_vs_d(fake_logits: torch.Tensor | None = None) -> GradientCurves:
    """Analytic gradient magnitudes of the two generator losses over a range of logits.

    Args:
        fake_logits: (N,) logits of D on generated samples; default 401 points in [-10, 10],
            i.e. D(G(z)) from 4.5e-5 to 1 - 4.5e-5.
    """
    if fake_logits is None:
        fake_logits = torch.linspace(-10, 10, 401, dtype=torch.float64)
    d_fake = torch.sigmoid(fake_logits)
    return GradientCurves(d_fake, d_fake.clone(), torch.sigmoid(-fake_logits))


def plot_gradient_picture(
    path: str | os.PathLike,
    measured: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Draw |d loss_G / d logit| against D(G(z)) for both losses, log scale, as a PNG.

    Args:
        path: where to write (atomically).
        measured: optional points from training runs, label -> (D(G(z)) values, gradient
            norms); drawn as markers on a second log axis, since a norm over G's parameters
            has other units than the per-logit curves.
        metadata: PNG tEXt chunks.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    from genlab.plots import save_figure

    curves = generator_gradient_vs_d()
    fig = Figure(figsize=(6.4, 4.0), dpi=110, layout="constrained")
    ax = fig.subplots()
    ax.plot(curves.d_fake, curves.minimax, lw=2, label="minimax: E log(1 - D(G(z)))")
    ax.plot(curves.d_fake, curves.ns, lw=2, label="non-saturating: -E log D(G(z))")
    ax.set_yscale("log")
    ax.set_xlabel("D(G(z))")
    ax.set_ylabel("|d loss_G / d logit|")
    ax.set_title("The generator's gradient: saturating vs non-saturating")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if measured:
        ax2 = ax.twinx()
        ax2.set_yscale("log")
        ax2.set_ylabel("measured gradient norm")
        for i, (label, (d_fake, grad)) in enumerate(measured.items()):
            ax2.scatter(d_fake, grad, s=12, marker="ox^s"[i % 4], color=f"C{i + 2}", label=label)
        more_handles, more_labels = ax2.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="lower center", frameon=False, fontsize="small", scatterpoints=1)
    return save_figure(fig, path, metadata)


# -- networks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GANConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB).
    image_size: image side in pixels; 7 or 4 times a power of two (28, 32, 64).
    latent_dim: size of z ~ N(0, I).
    g_widths: G's channels at each resolution, listed like d_widths from the full-resolution
        side inwards (the output layer writes `channels` itself); the last entry repeats when
        the image needs more levels (28 needs 2, 32 needs 3, 64 needs 4).
        (32, 64) for 28x28: 7x7x64 -> 14x14x32 -> 28x28xC. The defaults are small for the CPU:
        one D+G step at batch 64 took about 2x a VAE step, (64, 128) for both about 5.5x.
    d_widths: D's channels after each stride-2 conv, shallow to deep, repeated likewise.
    num_classes: > 0 makes a conditional GAN (label embedding in G, projection in D).
    spectral_norm: spectral normalisation of every weight in D (Miyato et al. 2018).
    minibatch_std: append the minibatch standard deviation to D's last feature map (Karras et
        al. 2018), so that D can see a batch without diversity: a conditional GAN otherwise
        learns to ignore z within each class (recall 0.000 at 3 and 20 minutes).
    mode_seeking: weight lambda of the mode-seeking term (Mao et al. 2019, MSGAN): G's loss adds
        lambda / (d_I + 1e-5), d_I = mean |G(z1, y) - G(z2, y)| / mean |z1 - z2| over pairs of
        samples with the same label, so G is paid for letting z change the image (0: off).
    loss: "minimax", "ns" (non-saturating), "hinge" or "wgan-gp"; see `LOSSES`.
    gp_weight: lambda of the gradient penalty (wgan-gp only); 10 as in Gulrajani et al. 2017.
    n_critic: D steps per G step, for the training loop; 5 is usual for wgan-gp.
    lr_g, lr_d: Adam learning rates of G and D, for the training loop. Unequal rates are the
        two time-scale update rule (TTUR, Heusel et al. 2017); the default is DCGAN's 2e-4 for
        both. Gulrajani et al. use 1e-4 with betas (0.0, 0.9) and n_critic 5 for wgan-gp.
    betas: Adam's (beta1, beta2) for both; DCGAN's (0.5, 0.999): a low beta1 damps the momentum
        that makes the two players oscillate.
    """

    channels: int = 1
    image_size: int = 28
    latent_dim: int = 64
    g_widths: tuple[int, ...] = (32, 64)
    d_widths: tuple[int, ...] = (32, 64)
    num_classes: int = 0
    spectral_norm: bool = False
    minibatch_std: bool = False
    mode_seeking: float = 0.0
    loss: str = "ns"
    gp_weight: float = 10.0
    n_critic: int = 1
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)


MBSTD_GROUP = 4  # samples per minibatch-std group (StyleGAN's default)


def _dcgan_init(module: nn.Module) -> None:
    """Weights N(0, 0.02), BN scale N(1, 0.02), biases 0 (Radford et al. 2016, section 4)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """DCGAN generator: z (B, latent_dim) [+ label] -> images (B, C, S, S) in [0, 1].

    A linear layer projects z to the bottom map (7x7 for 28, 4x4 for 32 and 64), then each
    stride-2 4x4 transposed conv doubles the side, with BatchNorm and ReLU after every layer but
    the last, as in DCGAN. Transposed convs rather than upsample + conv because on the 2-core
    CPU the output layer's forward + backward took 14 ms against 69 ms (channels_last, batch
    64), at the risk of checkerboard artefacts (Odena et al. 2016). A sigmoid ends it (DCGAN's
    tanh rescaled: sigmoid(a) = (tanh(a / 2) + 1) / 2) because genlab's images live in [0, 1].
    A conditional generator concatenates a learned label embedding of size latent_dim to z
    (initialised N(0, 1), on the scale of z).
    """

    def __init__(self, config: GANConfig):
        super().__init__()
        levels, side = conv_levels(config.image_size)
        chans = [*level_widths(config.g_widths, levels)[::-1], config.channels]  # deep -> out
        K, D = config.num_classes, config.latent_dim
        self.embed = nn.Embedding(K, D) if K else None
        self.bottom = (chans[0], side, side)
        self.project = nn.Linear(D + (D if K else 0), chans[0] * side * side, bias=False)
        self.project_act = nn.Sequential(nn.BatchNorm2d(chans[0]), nn.ReLU())
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-2], chans[1:-1], strict=True):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]
        layers.append(nn.ConvTranspose2d(chans[-2], chans[-1], 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)  # (B, 2 * latent_dim)
        h = self.project_act(self.project(z).view(-1, *self.bottom))  # (B, C0, s, s)
        return torch.sigmoid(self.net(h))  # (B, C, S, S)


class Discriminator(nn.Module):
    """DCGAN discriminator: images (B, C, S, S) in [0, 1] [+ labels] -> logits (B,).

    Stride-2 4x4 convs with LeakyReLU(0.2) halve the side down to 7 or 4, then a linear layer
    reads the flattened features phi(x). BatchNorm follows every conv but the first (DCGAN)
    only for the minimax, ns and hinge losses without spectral norm: the gradient penalty is
    per sample, which batch statistics would break, and spectral norm replaces it. A conditional
    discriminator adds the projection <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3).
    """

    def __init__(self, config: GANConfig):
        super().__init__()
        levels, side = conv_levels(config.image_size)
        chans = [config.channels, *level_widths(config.d_widths, levels)]
        batch_norm = config.loss != "wgan-gp" and not config.spectral_norm
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not batch_norm))
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)
        self.minibatch_std = config.minibatch_std
        features = (chans[-1] + int(config.minibatch_std)) * side * side
        self.linear = nn.Linear(features, 1)
        K = config.num_classes
        self.embed = nn.Embedding(K, features) if K else None
        self.apply(_dcgan_init)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        if config.spectral_norm:
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding):
                    _spectral_norm(m)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net(2 * x - 1)  # (B, C, s, s); inputs centred to [-1, 1]
        if self.minibatch_std:
            h = minibatch_std(h, MBSTD_GROUP)
        phi = h.flatten(1)  # (B, F)
        logits = self.linear(phi).squeeze(1)  # (B,)
        if self.embed is not None:
            logits = logits + (self.embed(y) * phi).sum(1)  # projection term
        return logits


class GAN(nn.Module):
    """A generator and a discriminator with the losses of `config.loss`.

    No `loss(batch)`: a GAN has two objectives, `d_loss` and `g_loss`, which the GAN training
    loop alternates with two optimisers (`config.n_critic` D steps per G step).
    """

    def __init__(self, config: GANConfig):
        super().__init__()
        if config.loss not in LOSSES:
            raise GenlabError(f"loss must be one of {sorted(LOSSES)}, got {config.loss!r}")
        if config.num_classes < 0 or config.latent_dim < 1 or config.n_critic < 1:
            raise GenlabError("num_classes must be >= 0, latent_dim >= 1 and n_critic >= 1")
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)
        self.d_loss_fn, self.g_loss_fn = LOSSES[config.loss]

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def _labels(self, y: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
        """(n,) class ids for a conditional model (None cycles 0..K-1); None if unconditional."""
        K = self.config.num_classes
        if K == 0:
            return None
        if y is None:
            return torch.arange(n, device=device) % K
        y = torch.as_tensor(y, device=device).long().reshape(-1)
        if y.shape[0] != n or y.min() < 0 or y.max() >= K:
            raise GenlabError(
                f"a conditional GAN needs {n} labels in [0, {K}), got {y.shape[0]} labels "
                f"from {y.min().item()} to {y.max().item()} (unlabeled data has -1)"
            )
        return y

    def _score(self, logits: torch.Tensor) -> torch.Tensor:
        """What logs report of D: mean D(x) = sigmoid(l) for probability losses, else mean l."""
        if self.config.loss in PROBABILITY_LOSSES:
            logits = torch.sigmoid(logits)
        return logits.detach().mean()

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z): z (B, latent_dim) -> (B, C, H, W) in [0, 1]; a conditional model cycles y=None."""
        return self.generator(z, self._labels(y, z.shape[0], z.device))

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Generate n images from z ~ N(0, I) drawn with `generator`.

        BatchNorm in G uses batch statistics in train mode and running ones in eval mode: call
        `.eval()` first for samples that do not depend on the rest of the batch.

        Args:
            n: number of images.
            generator: source of z (on any device; z is moved to the model's device).
            y: (n,) class ids for a conditional model; None cycles 0, 1, ..., K-1, 0, ...
                An unconditional model ignores y.

        Returns:
            (n, C, H, W) in [0, 1].
        """
        device = next(self.parameters()).device
        g_device = generator.device if generator is not None else device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=g_device)
        return self.decode(z.to(device), y)

    def d_loss(
        self,
        x_real: torch.Tensor,
        y: torch.Tensor | None,
        z: torch.Tensor,
        shard: Shard = Shard(),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss on a real batch and a fake batch G(z) (G's output detached).

        Args:
            x_real: (B, C, H, W) in [0, 1].
            y: (B,) labels of x_real, also used for the fakes; None for an unconditional model.
            z: (B, latent_dim) noise.
            shard: the rows of the global batch these are (draws the gradient penalty's eps).

        Returns:
            The scalar loss and detached logs: loss_d, d_real, d_fake (mean D(x) for minimax/ns,
            mean raw score for hinge/wgan-gp) and gp for wgan-gp (unweighted).
        """
        if self.config.num_classes and y is None:
            raise GenlabError("a conditional GAN needs the labels y of the real images")
        y = self._labels(y, x_real.shape[0], x_real.device)
        with torch.no_grad():
            x_fake = self.generator(z, y)  # (B, C, H, W)
        # Real and fake batches go through D separately, as in DCGAN, so BatchNorm's
        # statistics are never mixed across the two.
        real_logits = self.discriminator(x_real, y)  # (B,)
        fake_logits = self.discriminator(x_fake, y)  # (B,)
        loss = self.d_loss_fn(real_logits, fake_logits)
        logs = {"d_real": self._score(real_logits), "d_fake": self._score(fake_logits)}
        if self.config.loss == "wgan-gp":
            eps = shard.rand((x_real.shape[0],) + (1,) * (x_real.ndim - 1), device=x_real.device)
            gp = gradient_penalty(self.discriminator, x_real, x_fake, y, eps=eps)
            loss = loss + self.config.gp_weight * gp
            logs["gp"] = gp.detach()
        logs["loss_d"] = loss.detach()
        return loss, logs

    def g_loss(
        self, z: torch.Tensor, y: torch.Tensor | None = None, shard: Shard = Shard()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G's loss on G(z) scored by D.

        Gradients reach D's parameters too: step only G's optimiser on this loss, and zero D's
        gradients before D's next step.

        Args:
            z: (B, latent_dim) noise.
            y: (B,) labels to generate; None cycles classes for a conditional model.
            shard: unused (G's loss draws nothing more here; StyleGAN's draws its noise).

        Returns:
            The scalar loss and detached logs: loss_g, d_fake_g (the score of the fakes, as
            d_fake in `d_loss`).
        """
        y = self._labels(y, z.shape[0], z.device)
        h = z.shape[0] // 2
        if self.config.mode_seeking and y is not None:  # pairs (i, i + h) share a label
            y = torch.cat([y[:h], y[:h], y[2 * h :]])
        x_fake = self.generator(z, y)
        fake_logits = self.discriminator(x_fake, y)  # (B,)
        loss = self.g_loss_fn(fake_logits)
        logs = {"loss_g": loss.detach(), "d_fake_g": self._score(fake_logits)}
        if self.config.mode_seeking:
            ratio = mode_seeking_ratio(x_fake[:h], x_fake[h : 2 * h], z[:h], z[h : 2 * h])
            loss = loss + self.config.mode_seeking / (ratio + 1e-5)
            logs["ms_ratio"] = ratio.detach()
        return loss, logs


# ------------------------------------------------------------------------------ the family records

LOSS_DEFAULTS: dict[str, dict] = {
    "wgan-gp": {"n_critic": 5, "lr_d": 1e-4, "lr_g": 1e-4, "betas": (0.0, 0.9)},
}
"""GANConfig values a loss is usually trained with (Gulrajani et al. 2017, Algorithm 1), applied
where the user gives no value."""

GAN_TRAIN = {"lr_schedule": "constant", "warmup_steps": 0, "grad_clip": None}
"""TrainConfig values of GAN runs: constant rates, no warmup, no clipping (TrainConfig's schedule
scales lr_d and lr_g; TrainConfig.lr is unused)."""


def gan_config(options: dict, **fixed) -> GANConfig:
    """The GANConfig of the options: given values win, then the loss's `LOSS_DEFAULTS`."""
    loss = options.get("loss") or "ns"
    given = {k: v for k, v in options.items() if v is not None}
    return pick(GANConfig, {**LOSS_DEFAULTS.get(loss, {}), **given}, **fixed)


def configure_gan(options: dict, data) -> Configured:
    """An unconditional GAN for the training images' shape."""
    return Configured(gan_config(options, **image_fields(data)))


CGAN_DEFAULTS = {"mode_seeking": 1.0}
"""GANConfig values a conditional GAN gets where the user gives none: mode seeking, without which
the generator ignored z within each class (recall 0.000 at 3 and 20 minutes; with it 0.227 at 3
minutes, docs/quality.md)."""


def configure_cgan(options: dict, data) -> Configured:
    """A GAN conditioned on the training data's classes."""
    k = num_classes(data, "cgan", hint=", or train an unconditional `gan`")
    given = {key: v for key, v in options.items() if v is not None}
    return Configured(gan_config({**CGAN_DEFAULTS, **given}, **image_fields(data), num_classes=k))


def _by_loss(what: str) -> str:
    return f"{what} (default: 1 for n_critic, 2e-4 and (0.5, 0.999) otherwise; wgan-gp: " + (
        "5, 1e-4, (0.0, 0.9))."
    )


GAN_OPTIONS = image_options(
    GANConfig,
    latent_dim={"min": 1, "max": 4096},
    g_widths={"min": 1, "max": 1024},
    d_widths={"min": 1, "max": 1024},
    loss={"choices": tuple(LOSSES)},
    gp_weight={"max": 1e4},
    mode_seeking={"max": 1e3},
    n_critic={"default": None, "min": 1, "max": 100, "help": _by_loss("D steps per G step")},
    lr_g={"default": None, "min_open": True, "max": 1.0, "help": _by_loss("G's Adam rate")},
    lr_d={"default": None, "min_open": True, "max": 1.0, "help": _by_loss("D's Adam rate")},
    betas={"default": None, "length": 2, "max": 0.9999, "help": _by_loss("Adam's betas")},
)

FAMILY = Family(
    name="gan",
    summary="DCGAN with the minimax, non-saturating, hinge or WGAN-GP loss.",
    config=GANConfig,
    model=GAN,
    configure=configure_gan,
    options=GAN_OPTIONS,
    train_defaults=GAN_TRAIN,
    train_ignores=("lr", "betas"),
)

CONDITIONAL_FAMILY = dataclasses.replace(
    FAMILY,
    name="cgan",
    summary="Conditional GAN: label embedding in G, projection discriminator, mode seeking.",
    configure=configure_cgan,
    options=tuple(
        dataclasses.replace(o, default=None, help=o.help + " (default: 1 for cgan, 0 for gan)")
        if o.name == "mode_seeking"
        else o
        for o in GAN_OPTIONS
    ),
)
