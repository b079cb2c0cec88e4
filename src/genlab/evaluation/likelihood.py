"""Likelihoods of runs on their test set: `nll(run)` is `genlab nll RUN`."""

from __future__ import annotations

import os

import torch

from genlab.errors import GenlabError
from genlab.models.vae import VAE, NLLResult, evaluate_nll
from genlab.runs import load_model
from genlab.sampling import test_data


def nll(run: str | os.PathLike, k: int = 64, n: int = 2000, seed: int = 0) -> tuple[NLLResult, int]:
    """Test-set negative ELBO and IWAE NLL (k importance samples) of a VAE run on its first n
    test images (0: all), seeded. Returns the result and the number of images used."""
    model = load_model(run)
    if not isinstance(model, VAE):
        raise GenlabError(f"{run}: nll needs a VAE run")
    data = test_data(run)
    n = len(data) if n <= 0 else min(n, len(data))
    g = torch.Generator().manual_seed(seed)
    return evaluate_nll(model, data.images[:n], data.labels[:n], k=k, generator=g), n
