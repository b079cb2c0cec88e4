"""Likelihoods of runs on their test set: `nll(run)` is `genlab nll RUN`.

Each family gives what it can, and says whether it is exact or a bound on -log p(x):

- PixelCNN: the exact NLL (a sum of per-pixel log-probabilities).
- VAE: -ELBO and the tighter importance-weighted bound (IWAE, k samples); both upper bounds.
- DDPM (pixel space): the variational bound of Ho et al. 2020, eq. 5, estimated by Monte Carlo
  over t (an upper bound in expectation, reported with its standard error).
- Models with a `likelihoods(x, y, *, generator)` method (`Scored`) give their own rows: Glow's
  -log p(x + u) of the dequantized images (an upper bound on the discrete NLL in expectation).

A run trained with --binarize is scored on the test set binarized once with a fixed seed
(`genlab.data.binarized`), the same bits for every run and family; others on the 8-bit pixels.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple, Protocol, runtime_checkable

import torch

from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.sampling import test_data


class Likelihood(NamedTuple):
    """One measure of -log p(x) on a test set, means per image.

    Attributes:
        what: what it is ("exact NLL", "-ELBO", "IWAE NLL (k=64)", "variational bound").
        nats: nats per image.
        bpd: bits per dimension, nats / (D ln 2).
        exact: False for an upper bound on the NLL.
        stderr: standard error of `nats` over images (and Monte-Carlo draws).
    """

    what: str
    nats: float
    bpd: float
    exact: bool
    stderr: float


@runtime_checkable
class Scored(Protocol):
    """A model that scores images itself: (what, -log p per image (B,) in nats, exact) rows, the
    noise drawn from `generator`."""

    def likelihoods(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *, generator: torch.Generator
    ) -> list[tuple[str, torch.Tensor, bool]]: ...


def _measures(model, x, y, g: torch.Generator, k: int, draws: int):
    """The (what, -log p per image, exact) rows of a model on one batch."""
    from genlab.models.pixelcnn import PixelCNN
    from genlab.models.vae import VAE

    if isinstance(model, Scored):
        return model.likelihoods(x, y, generator=g)
    if isinstance(model, PixelCNN):
        return [("exact NLL", -model.log_prob(model.quantize(x), y), True)]
    if isinstance(model, VAE):
        return [
            ("-ELBO", -model.elbo(x, y, generator=g).elbo, False),
            (f"IWAE NLL (k={k})", -model.iwae_log_likelihood(x, y, k=k, generator=g), False),
        ]
    what = f"variational bound ({draws} t per image)"
    return [(what, model.vlb(x, y, draws=draws, generator=g), False)]


def _row(what: str, per_image: torch.Tensor, dims: int, exact: bool) -> Likelihood:
    per_image = per_image.double()
    n = per_image.numel()
    mean = float(per_image.mean())
    stderr = float(per_image.std() / math.sqrt(n)) if n > 1 else float("nan")
    return Likelihood(what, mean, mean / (dims * math.log(2)), exact, stderr)


def nll(
    run: str | os.PathLike,
    k: int = 64,
    n: int = 0,
    seed: int = 0,
    batch_size: int = 250,
    draws: int = 4,
    progress: bool = False,
) -> tuple[list[Likelihood], int]:
    """-log p(x) of a run's first n test images (0: all), seeded: the rows its family gives
    (see the module doc). k: importance samples (VAE); draws: random t per image (DDPM).
    Returns the rows and the number of images used."""
    from tqdm.auto import tqdm

    from genlab.data import binarized
    from genlab.models.ddpm import Diffusion
    from genlab.models.pixelcnn import PixelCNN
    from genlab.models.vae import VAE

    run = Run.of(run)
    cls = run.family.model
    if not (issubclass(cls, PixelCNN | VAE | Diffusion) or hasattr(cls, "likelihoods")):
        raise GenlabError(
            f"{run}: a {run.name} run has no likelihood; nll scores pixelcnn, glow, vae, ddpm"
        )
    if getattr(run.model_config, "vqvae", None) is not None:
        raise GenlabError(
            f"{run}: a prior over a VQ-VAE's codes; its likelihood is of the code grids, not of "
            "the pixels (no bits/dim): see bits_per_code in its metrics.csv"
        )
    model = run.model()
    data = test_data(run)
    n = len(data) if n <= 0 else min(n, len(data))
    images, labels = data.images[:n], data.labels[:n]
    if getattr(model.config, "binarize", False):
        images = binarized(images)
    conditional = getattr(model.config, "num_classes", 0) > 0
    if conditional and (labels < 0).any():
        raise GenlabError(f"{run}: a conditional model needs the test labels")
    model.eval()
    device = next(model.parameters()).device  # the images go there; the noise is drawn on the CPU
    g = torch.Generator().manual_seed(seed)
    dims = images[0].numel()
    columns: dict[str, list[torch.Tensor]] = {}
    exact: dict[str, bool] = {}
    with torch.inference_mode(), tqdm(total=n, desc="nll", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            x = images[start : start + batch_size].to(device).float().div_(255.0)
            y = labels[start : start + batch_size].to(device) if conditional else None
            for what, value, is_exact in _measures(model, x, y, g, k, draws):
                columns.setdefault(what, []).append(value.cpu())
                exact[what] = is_exact
            bar.update(len(x))
    return [_row(what, torch.cat(v), dims, exact[what]) for what, v in columns.items()], n
