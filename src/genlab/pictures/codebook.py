"""Pictures of a VQ-VAE's codebook (`genlab.models.vqvae`): how often each of the K codes is
used over the test set (`genlab codebook RUN`). A healthy codebook spreads the codes' use (a
perplexity near K); dead codes are the bars at zero. Reconstructions are `genlab reconstruct`,
samples of a prior over the codes `genlab sample PRIOR_RUN`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import torch

from genlab.runs import Run
from genlab.sampling import test_data


class Usage(NamedTuple):
    """How often each code is used over n images' code grids.

    Attributes:
        counts: (K,) positions assigned to each code.
        n: images encoded.
        perplexity: exp of the entropy of the codes' frequencies (K when uniform).
    """

    counts: torch.Tensor
    n: int
    perplexity: float

    @property
    def used(self) -> int:
        """Codes used at least once."""
        return int((self.counts > 0).sum())

    def note(self) -> str:
        """One line: codes used and perplexity."""
        K = len(self.counts)
        return f"{self.used}/{K} codes used, perplexity {self.perplexity:.1f} of at most {K}"


def vqvae_model(run: str | os.PathLike | Run):
    """The model of a VQ-VAE run, or a one-line error."""
    from genlab.models.vqvae import VQVAE
    from genlab.sampling import model_of

    return model_of(run, VQVAE, "VQ-VAE", "; train one with `genlab train vqvae --out RUN`")


def code_usage(model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Counts (K,) of each code over the code grids of uint8 images (N, C, H, W)."""
    from genlab.latent import model_device

    device = model_device(model)
    counts = torch.zeros(model.config.codebook_size, dtype=torch.long)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device).float() / 255.0
            k = model.codes(x).reshape(-1).cpu()
            counts += torch.bincount(k, minlength=len(counts))
    return counts


def usage(run: str | os.PathLike | Run, n: int = 0) -> Usage:
    """The codebook usage of a VQ-VAE run over its first n test images (0: all)."""
    run = Run.of(run)
    model = vqvae_model(run)
    data = test_data(run)
    n = len(data) if n <= 0 else min(n, len(data))
    counts = code_usage(model, data.images[:n])
    p = counts.double() / counts.sum()
    perplexity = math.exp(-float(torch.special.xlogy(p, p).sum()))
    return Usage(counts, n, perplexity)


def plot_usage(
    found: Usage, out: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """A bar chart of the counts per code (codes sorted by id), dead codes marked; writes `out`."""
    from matplotlib.figure import Figure

    from genlab.plots import save_figure

    K = len(found.counts)
    counts = found.counts.numpy()
    fig = Figure(figsize=(max(6.0, min(12.0, K / 16)), 3.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(K), counts, width=1.0, color="tab:blue")
    dead = [i for i in range(K) if counts[i] == 0]
    if dead:
        ax.plot(dead, [0] * len(dead), "x", color="tab:red", label=f"{len(dead)} unused codes")
        ax.legend(loc="upper right")
    ax.axhline(counts.sum() / K, color="grey", lw=0.8, ls="--")  # the uniform share
    ax.set(xlim=(-0.5, K - 0.5), xlabel="code", ylabel="positions assigned")
    ax.set_title(f"codebook usage over {found.n} test images: {found.note()}", fontsize=9)
    meta = {"software": "genlab", "used": str(found.used), "perplexity": f"{found.perplexity:.3f}"}
    return save_figure(fig, out, {**meta, **(metadata or {})})
