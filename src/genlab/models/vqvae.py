"""Vector-quantised VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning").

An encoder maps an image x to a small feature map z_e(x) of D-dimensional vectors (7x7 for
28x28 images); each vector is replaced by its nearest entry of a codebook e_1..e_K,

    k = argmin_j ||z_e(x) - e_j||^2,    z_q(x) = e_k,

and the decoder reconstructs x from z_q(x). The latent is discrete: an image is a grid of K-ary
code ids, and a model of those grids (the autoregressive PixelCNN prior of
`genlab.models.pixelcnn`, `genlab train pixelcnn --prior RUN`) makes it a generative model.

argmin has no gradient, so the decoder's gradient is copied to the encoder as if z_q were z_e
(the straight-through estimator): z_q = z_e + sg(e_k - z_e). The loss of one image is

    L = -log p(x | z_q(x)) + beta ||z_e(x) - sg(e_k)||^2,

summed over pixels and over the code grid's vectors (eq. 3; beta = 0.25). The codebook term of
eq. 3 is replaced by exponential moving averages (appendix A.1): with n_i the vectors assigned
to code i in a batch and gamma the decay,

    N_i <- gamma N_i + (1 - gamma) n_i,    m_i <- gamma m_i + (1 - gamma) sum_{j: k_j = i} z_e_j,
    e_i = m_i / N_i',   N_i' = (N_i + eps) / (n + K eps) n,   n = sum_i N_i,

the cluster sizes N_i Laplace-smoothed so that no e_i divides by zero. A code no vector was
assigned to for `restart_after` steps is dead; it is restarted at a random encoder output of the
current batch (N_i = 1, m_i = e_i), so the whole codebook stays in use. The codebook's
perplexity exp(-sum_i p_i log p_i), p_i the fraction of vectors assigned to i, is K when every
code is used equally and 1 when one code takes everything.

All codebook state (e, N, m, the steps each code has been unused, the restart count) is kept in
buffers, so a checkpoint saves and resumes it exactly; the distances and the averages are
computed in the buffers' precision (float32) under bf16 autocast. The conv stacks are the
autoencoder's (`ConvEncoder`, `ConvDecoder` with a spatial bottom map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import Batch, Shard
from genlab.errors import GenlabError
from genlab.family import Configured, Family, image_config, image_options
from genlab.models.autoencoder import ConvDecoder, ConvEncoder


class Assignment(NamedTuple):
    """What the codebook did with one batch (global over processes while training).

    Attributes:
        counts: (K,) vectors assigned to each code.
        perplexity: exp of the entropy of the assignment frequencies; K for a uniform one.
        used: fraction of the K codes assigned at least one vector.
        restarts: dead codes restarted so far (the run's total).
    """

    counts: torch.Tensor
    perplexity: torch.Tensor
    used: torch.Tensor
    restarts: torch.Tensor


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(-sum_i p_i log p_i) of the assignment counts (K,), p_i = counts_i / sum(counts)."""
    p = counts.double() / counts.sum().clamp(min=1)
    return torch.exp(-torch.special.xlogy(p, p).sum()).float()


def gather_rows(x: torch.Tensor, shard: Shard) -> torch.Tensor:
    """This process's rows x (B_local, ...) -> the global batch (B_local * world, ...), in the
    global order (row r + world i is process r's row i), on every process."""
    if shard.world == 1:
        return x
    import torch.distributed as dist

    parts = [torch.empty_like(x) for _ in range(shard.world)]
    dist.all_gather(parts, x.contiguous())
    return torch.stack(parts, 1).flatten(0, 1)


class Codebook(nn.Module):
    """K code vectors e (K, D) learned by exponential moving averages, with dead-code restarts.

    Buffers: `embedding` e, `cluster_size` N, `embed_sum` m, `unused` (steps since each code
    was last assigned), `restarts` (codes restarted so far). N starts at 1 and m at e, so that
    e = m / N holds from the first step; `unused` starts at `restart_after`, so the first
    training step restarts every code the first batch does not use: a data-dependent start.
    """

    def __init__(self, K: int, D: int, decay: float, eps: float, restart_after: int):
        super().__init__()
        self.K, self.D = K, D
        self.decay, self.eps, self.restart_after = decay, eps, restart_after
        e = torch.randn(K, D)
        self.register_buffer("embedding", e)
        self.register_buffer("cluster_size", torch.ones(K))
        self.register_buffer("embed_sum", e.clone())
        self.register_buffer("unused", torch.full((K,), restart_after, dtype=torch.long))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each vector: z (N, D) -> (N,) long, in the codebook's
        precision (autocast off: bf16 distances would pick wrong codes)."""
        e = self.embedding
        with torch.autocast(z.device.type, enabled=False):
            z = z.to(e.dtype)
            # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; ||z||^2 is the same for every code
            d = e.square().sum(1) - 2.0 * z @ e.T  # (N, K)
            return d.argmin(1)

    @torch.no_grad()
    def update(self, z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """One training step of the codebook: the EMA update (appendix A.1) from the vectors z
        (N, D) assigned to codes k (N,), then dead-code restarts at random rows of z. Every
        process passes the global batch, so all hold the same codebook. Returns counts (K,)."""
        z = z.to(self.embedding.dtype)
        gamma = self.decay
        n_i = torch.bincount(k, minlength=self.K).to(z.dtype)  # (K,)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, k, z)  # (K, D)
        self.cluster_size.mul_(gamma).add_(n_i, alpha=1 - gamma)  # N_i
        self.embed_sum.mul_(gamma).add_(sums, alpha=1 - gamma)  # m_i
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.K * self.eps) * n  # Laplace
        self.embedding.copy_(self.embed_sum / smoothed[:, None])  # e_i = m_i / N_i'
        self.restart(z, n_i > 0)
        return n_i

    def restart(self, z: torch.Tensor, used: torch.Tensor) -> None:
        """Codes unused for `restart_after` steps take random vectors of z (N, D). The rows are
        drawn every step from the global RNG (one draw for the whole batch, the same on every
        process), so that there is no data-dependent branch and resume is exact."""
        self.unused.copy_(torch.where(used, 0, self.unused + 1))
        dead = self.unused >= self.restart_after  # (K,)
        fresh = z[torch.randint(0, z.shape[0], (self.K,), device=z.device)]  # (K, D)
        self.embedding.copy_(torch.where(dead[:, None], fresh, self.embedding))
        self.embed_sum.copy_(torch.where(dead[:, None], fresh, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead, 1.0, self.cluster_size))
        self.unused.masked_fill_(dead, 0)
        self.restarts.add_(dead.sum())


@dataclass(frozen=True)
class VQVAEConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB).
    image_size: image side in pixels; 7 or 4 times a power of two (28 gives a 7x7 code grid).
    widths: channels after each stride-2 level of the encoder (the decoder mirrors them).
        (64, 128): in 600 steps the reconstruction FD fell from 86 at (32, 64) to 46, the
        largest gain of the sizes tried (K 512: 76, D 64: 82).
    code_dim: D, the size of each code vector.
    codebook_size: K, the number of codes (the prior's softmax has K outputs). 256: more codes
        reconstruct better, fewer are easier for the prior to model.
    beta: weight of the commitment loss beta ||z_e - sg(e)||^2 (0.25 in the paper).
    decay: gamma of the codebook's moving averages (0.99 in the paper).
    eps: Laplace smoothing of the cluster sizes.
    restart_after: steps a code may go unassigned before it is restarted at an encoder output.
    recon_loss: "bce" (binary cross-entropy on intensities in [0, 1]) or "mse", summed over
        pixels. bce by default: its gradient (sigmoid - x) does not vanish at saturated
        pixels, and its reconstructions scored a little better (FD 86.0 against 87.4 after
        600 steps at widths 32,64): about a tie, so the better-founded loss.
    """

    channels: int = 1
    image_size: int = 28
    widths: tuple[int, ...] = (64, 128)
    code_dim: int = 16
    codebook_size: int = 256
    beta: float = 0.25
    decay: float = 0.99
    eps: float = 1e-5
    restart_after: int = 50
    recon_loss: str = "bce"


class VQVAE(nn.Module):
    """Encoder, codebook and decoder; `loss` trains all three, `reconstruct` runs them. No
    `sample`: samples need a prior over the codes (`genlab train pixelcnn --prior RUN`)."""

    VECTOR_LATENT = False
    """The latent is a grid of code vectors (D, h, w): the app's latent explorer, which moves
    along a vector latent's principal directions, does not apply."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        if config.recon_loss not in ("bce", "mse"):
            raise GenlabError(f"recon_loss must be 'bce' or 'mse', got {config.recon_loss!r}")
        if not 0.0 < config.decay < 1.0:
            raise GenlabError(f"decay must be in (0, 1), got {config.decay}")
        self.config = config
        C, S, D = config.channels, config.image_size, config.code_dim
        self.encoder = ConvEncoder(C, S, config.widths, spatial=True)
        self.to_z = nn.Conv2d(self.encoder.out_channels, D, 1)
        self.codebook = Codebook(
            config.codebook_size, D, config.decay, config.eps, config.restart_after
        )
        self.decoder = ConvDecoder(D, C, S, config.widths, spatial=True)
        s = self.encoder.side
        self.grid = (s, s)
        self.latent_shape = (D, s, s)

    def z_e(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output: x (B, C, H, W) in [0, 1] -> (B, D, h, w)."""
        return self.to_z(self.encoder(x))

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Code ids of an encoder output: (B, D, h, w) -> (B, h, w) long."""
        B, D, h, w = z_e.shape
        return self.codebook.nearest(z_e.movedim(1, -1).reshape(-1, D)).view(B, h, w)

    def lookup(self, k: torch.Tensor) -> torch.Tensor:
        """The code vectors of code ids: (B, h, w) -> z_q (B, D, h, w)."""
        return self.codebook.embedding[k].movedim(-1, 1)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Code ids of images: x (B, C, H, W) in [0, 1] -> (B, h, w) long."""
        return self.nearest(self.z_e(x))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The quantised latent z_q(x) (B, D, h, w), what the decoder reads (for the latent
        tools: reconstruct, interpolate, ...). `y` is ignored."""
        return self.lookup(self.codes(x))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] (B, C, H, W) from a latent z (B, D, h, w). `y` is ignored."""
        return torch.sigmoid(self.decoder(z))

    def decode_codes(self, k: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, C, H, W) from code ids (B, h, w)."""
        return self.decode(self.lookup(k))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(z_q(x)): x (B, C, H, W) in [0, 1] -> (B, C, H, W) in [0, 1]."""
        return self.decode(self.encode(x))

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruction (summed over pixels) + beta * commitment (summed over the code
        grid), averaged over the batch; in training also the codebook's EMA step."""
        x = batch.x
        z_e = self.z_e(x)  # (B, D, h, w)
        k = self.nearest(z_e)  # (B, h, w)
        e = self.lookup(k)  # (B, D, h, w), a buffer's copy: no gradient
        z_q = z_e + (e - z_e).detach()  # straight-through: the decoder's gradient reaches z_e
        logits = self.decoder(z_q)  # (B, C, H, W)
        if self.config.recon_loss == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            per_pixel = (torch.sigmoid(logits) - x).square()
        recon = per_pixel.flatten(1).sum(1).mean()
        commitment = (z_e.to(e.dtype) - e).square().flatten(1).sum(1).mean()
        loss = recon + self.config.beta * commitment
        stats = self.assign(z_e.detach(), k, batch.shard)
        logs = {"recon": recon.detach(), "commitment": commitment.detach()}
        logs.update(perplexity=stats.perplexity, used=stats.used, restarts=stats.restarts)
        return loss, logs

    def assign(self, z_e: torch.Tensor, k: torch.Tensor, shard: Shard = Shard()) -> Assignment:
        """The codebook statistics of a batch's assignment k (B, h, w) of z_e (B, D, h, w); in
        training, first the codebook's step on the global batch (`Codebook.update`)."""
        book = self.codebook
        if self.training:
            z = gather_rows(z_e.movedim(1, -1).reshape(-1, book.D), shard)  # (N, D)
            counts = book.update(z, gather_rows(k.reshape(-1), shard))
        else:
            counts = torch.bincount(k.reshape(-1), minlength=book.K)
        used = (counts > 0).float().mean()
        return Assignment(counts, perplexity(counts), used, book.restarts.float())


# ------------------------------------------------------------------------------ the family record


def configure(options: dict, data) -> Configured:
    """A VQ-VAE for the training images' shape."""
    return Configured(image_config(VQVAEConfig, options, data))


FAMILY = Family(
    name="vqvae",
    summary="VQ-VAE: a discrete latent (a grid of codes); sample with a prior (pixelcnn --prior).",
    config=VQVAEConfig,
    model=VQVAE,
    configure=configure,
    options=image_options(
        VQVAEConfig,
        widths={"min": 1, "max": 1024},
        code_dim={"min": 1, "max": 4096},
        codebook_size={"min": 2, "max": 65536},
        beta={"max": 100.0},
        decay={"min_open": True, "max": 0.9999},
        eps={"min_open": True, "max": 1.0},
        restart_after={"min": 1, "max": 1_000_000},
        recon_loss={"choices": ("bce", "mse")},
    ),
)
