"""Shared fixtures: an isolated environment for every test and a tiny synthetic Fashion-MNIST."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import write_fashion_mnist

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on 2 cores: one torch thread per worker. Two workers of two OpenMP threads
    # each oversubscribe the cores, and spinning threads then make small matmuls 10-100x slower.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """Never touch the user's cache or data: a fresh XDG cache, no $GENLAB_DATA, seed 0."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.delenv("GENLAB_DATA", raising=False)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def fmnist_dir(tmp_path_factory) -> Path:
    """A directory with a tiny synthetic Fashion-MNIST (600 train, 200 test) as 4 IDX .gz files.

    Each class is a distinct shape plus noise, balanced, seeded: small models can learn it.
    Read-only: tests that corrupt files copy it first.
    """
    return write_fashion_mnist(tmp_path_factory.mktemp("fashion-mnist"), 600, 200, seed=0)
