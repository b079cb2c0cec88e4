"""Image classifier: the feature network behind genlab's evaluation metrics.

A compact VGG-style CNN (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks") with
batch normalisation (Ioffe & Szegedy 2015): per stage one or two 3x3 conv-BN-ReLU layers and a
2x2 max-pool (28 -> 14 -> 7 -> 3), then the flattened map, a `feature_dim` fully connected layer
with ReLU and the linear classifier. Its penultimate activations (`features`) are the embedding
that the Frechet distance, KID and precision/recall use, the role Inception-v3 plays for
ImageNet-scale images (Heusel et al. 2017). `genlab train classifier` trains it on
Fashion-MNIST or on any labelled image folder, so every data set gets a feature network of its
own.

Training augments with random horizontal flips and translations of up to 2 pixels, drawn from
the global torch RNG so that the training loop's exact resume also holds for classifiers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import Batch, ImageData, Shard
from genlab.errors import GenlabError
from genlab.family import Configured, Family, image_config, image_options, num_classes


@dataclass(frozen=True)
class ClassifierConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB).
    image_size: image side in pixels; any side of at least 2 ** len(widths) works (28, 32, 64).
    num_classes: number of classes K; the CLI sets it from the data's class names.
    widths: channels of each stage (3x3 convs, then a max-pool halving the side).
    depths: 3x3 convs in each stage. One at full resolution (a second one there tripled the
        CPU step time), two in the smaller stages, where they are cheap and lift the test
        accuracy past 93%.
    feature_dim: size of the penultimate layer, the embedding used by the metrics.
    dropout: dropout before the feature layer and before the final linear layer.
    augment: random horizontal flip and translation by up to 2 pixels, in training only.
    """

    channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    widths: tuple[int, ...] = (32, 64, 128)
    depths: tuple[int, ...] = (1, 2, 2)
    feature_dim: int = 128
    dropout: float = 0.2
    augment: bool = True


def require_classes(num_classes: int) -> None:
    """A classifier needs at least 2 classes: a one-line error otherwise."""
    if num_classes < 2:
        raise GenlabError(
            f"a classifier needs at least 2 classes, got {num_classes}: "
            "use labelled data (an image folder with one sub-folder per class)"
        )


class BatchNorm2d(nn.BatchNorm2d):
    """torch's BatchNorm2d with a float step counter.

    The training loop's EMA (AveragedModel with use_buffers=True) interpolates every buffer,
    which fails on the int64 `num_batches_tracked`; the counter is unused with a fixed momentum.
    """

    def __init__(self, num_features: int):
        super().__init__(num_features)
        self.num_batches_tracked = self.num_batches_tracked.float()


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv (no bias: BN has one), batch norm, ReLU; keeps the side."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), BatchNorm2d(c_out), nn.ReLU()
    )


def random_shift_flip(x: torch.Tensor, max_shift: int = 2, shard: Shard = Shard()) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2 and translate it by up to `max_shift`
    pixels in each direction, filling with zeros: (B, C, H, W) -> (B, C, H, W).

    Uses the global torch RNG (the training loop saves and restores it for exact resume),
    through `shard` (the rows of the global batch x holds).
    """
    B, _, H, W = x.shape
    flip = shard.rand((B,), device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    shift = shard.randint(0, 2 * max_shift + 1, (B, 2), device=x.device)  # offset in the pad
    padded = F.pad(x, (max_shift,) * 4)  # (B, C, H + 2m, W + 2m)
    rows = torch.arange(H, device=x.device) + shift[:, :1]  # (B, H)
    cols = torch.arange(W, device=x.device) + shift[:, 1:]  # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


class Classifier(nn.Module):
    """CNN classifier with a `feature_dim` penultimate embedding."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        require_classes(config.num_classes)
        if not config.widths or min(config.widths) < 1 or config.feature_dim < 1:
            raise GenlabError(f"widths and feature_dim must be positive, got {config}")
        if len(config.depths) != len(config.widths) or min(config.depths) < 1:
            raise GenlabError(f"depths needs one positive count per stage of widths, got {config}")
        side = config.image_size // 2 ** len(config.widths)  # after the max-pools
        if side < 1:
            raise GenlabError(
                f"image_size {config.image_size} is too small for {len(config.widths)} stages"
            )
        self.config = config
        self.num_features = config.feature_dim
        layers: list[nn.Module] = []
        c_in = config.channels
        for width, depth in zip(config.widths, config.depths, strict=True):
            for _ in range(depth):
                layers.append(conv_bn_relu(c_in, width))
                c_in = width
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.to_features = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(c_in * side * side, config.feature_dim), nn.ReLU()
        )
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (after the ReLU): x (B, C, H, W) in [0, 1] -> (B, F)."""
        h = self.body(x)  # (B, widths[-1] * side * side)
        return self.to_features(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits: x (B, C, H, W) in [0, 1] -> (B, num_classes)."""
        return self.head(self.features(x))

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy on (augmented, in training) images; logs the batch accuracy."""
        if batch.y.min() < 0:
            raise GenlabError("a classifier needs labelled data; this data set has no labels")
        augment = self.config.augment and self.training
        x = random_shift_flip(batch.x, shard=batch.shard) if augment else batch.x
        logits = self(x)
        loss = F.cross_entropy(logits, batch.y)
        acc = (logits.argmax(1) == batch.y).float().mean()
        return loss, {"acc": acc.detach()}


@torch.inference_mode()
def evaluate_accuracy(model: Classifier, data: ImageData, batch_size: int = 512) -> float:
    """Top-1 accuracy of `model` (put in eval mode here) on a labelled split.

    Args:
        model: a Classifier.
        data: images (N, C, H, W) uint8 with labels (N,).
        batch_size: images per forward pass.

    Returns:
        The fraction of the N images classified correctly.
    """
    model.eval()
    if len(data) == 0 or data.labels.min() < 0:
        raise GenlabError("accuracy needs a non-empty labelled data set")
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size].to(device).float().div_(255.0)
        y = data.labels[start : start + batch_size].to(device)
        correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(data)


# ------------------------------------------------------------------------------ the family record


def configure(options: dict, data) -> Configured:
    """A classifier of the training data's classes."""
    k = num_classes(data, "a classifier", minimum=2)
    return Configured(image_config(ClassifierConfig, options, data, num_classes=k))


FAMILY = Family(
    name="classifier",
    summary="Image classifier: a feature network for the metrics (genlab eval --features).",
    config=ClassifierConfig,
    model=Classifier,
    configure=configure,
    options=image_options(
        ClassifierConfig,
        widths={"min": 1, "max": 1024},
        depths={"min": 1, "max": 16},
        feature_dim={"min": 1, "max": 4096},
        dropout={"max": 0.99},
    ),
)
