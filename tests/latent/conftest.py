"""A tiny deterministic stand-in for any model with encode/decode: linear maps, no training."""

import pytest
import torch
from torch import nn


class LinearAE(nn.Module):
    """encode: z = W x + b (affine, so means commute with it); decode: sigmoid(V z + c)."""

    def __init__(self, latent_dim: int = 4, shape: tuple[int, int, int] = (1, 6, 6)):
        super().__init__()
        torch.manual_seed(0)
        self.latent_dim = latent_dim
        self.shape = shape
        n = shape[0] * shape[1] * shape[2]
        self.enc = nn.Linear(n, latent_dim)
        self.dec = nn.Linear(latent_dim, n)

    def encode(self, x, y=None):
        return self.enc(x.flatten(1))

    def decode(self, z, y=None):
        return torch.sigmoid(self.dec(z)).reshape(-1, *self.shape)


class DecoderOnly(nn.Module):
    """A GAN-like generator: decode but no encode, and no stated latent size."""

    def __init__(self, latent_dim: int = 3):
        super().__init__()
        torch.manual_seed(1)
        self.dec = nn.Linear(latent_dim, 16)

    def decode(self, z, y=None):
        return torch.sigmoid(self.dec(z)).reshape(-1, 1, 4, 4)


@pytest.fixture
def model() -> LinearAE:
    return LinearAE()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def make_model():
    """LinearAE itself, to build one with another latent size or image shape."""
    return LinearAE


@pytest.fixture
def decoder_only() -> DecoderOnly:
    return DecoderOnly()


class ConditionalAE(LinearAE):
    """Needs labels, like a conditional VAE: z = W x + b + y (one shift per class id)."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"num_classes": 3})()

    def encode(self, x, y=None):
        if y is None:
            raise ValueError("a conditional model needs y")
        return super().encode(x) + y[:, None].float()

    def decode(self, z, y=None):
        if y is None:
            raise ValueError("a conditional model needs y")
        return super().decode(z - y[:, None].float())


@pytest.fixture
def conditional_model() -> ConditionalAE:
    return ConditionalAE()
