"""The feature network: a trained classifier's penultimate activations as an image embedding.

The Frechet distance, KID and precision/recall compare distributions of embeddings, so they
are only as meaningful as the network that embeds (Heusel et al. 2017 use Inception-v3 for
ImageNet-like images). For Fashion-MNIST genlab ships its own classifier, trained by
`genlab train classifier` with the command recorded next to the weights in
`weights/fashion_mnist_classifier.json`; for other data `load_feature_network(run=...)` uses a
classifier trained on that data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.models.classifier import Classifier, ClassifierConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
FASHION_MNIST = WEIGHTS_DIR / "fashion_mnist_classifier.safetensors"


class Embedding(NamedTuple):
    """Embedded images: features (N, F) and classifier logits (N, K), both float32 on the CPU."""

    features: torch.Tensor
    logits: torch.Tensor | None


class FeatureNetwork(nn.Module):
    """A trained classifier used as a fixed embedding, always in eval mode.

    Attributes:
        classifier: the wrapped Classifier.
        num_features: F, the size of an embedding.
        class_names: the K class names of the classifier's training data.
    """

    def __init__(self, classifier: Classifier, class_names: tuple[str, ...] = ()):
        super().__init__()
        # channels_last: 20k Fashion-MNIST images embed ~1.4-2x faster on the CPU than NCHW
        self.classifier = (
            classifier.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        )
        self.num_features = classifier.num_features
        self.class_names = tuple(class_names)
        self.eval()

    def train(self, mode: bool = True) -> FeatureNetwork:
        """Stays in eval mode: batch-norm statistics and dropout must not change the embedding."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features: x (B, C, H, W) float in [0, 1] -> (B, F)."""
        return self.classifier.features(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits: x (B, C, H, W) float in [0, 1] -> (B, K)."""
        return self.classifier(x)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor, batch_size: int = 500) -> Embedding:
        """Features and logits of many images, in batches.

        Args:
            images: (N, C, H, W), uint8 in 0..255 or float in [0, 1], with the C, H and W the
                classifier was trained on.
            batch_size: images per forward pass.

        Returns:
            Embedding with features (N, F) and logits (N, K), float32 on the CPU.
        """
        config = self.classifier.config
        expected = (config.channels, config.image_size, config.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise GenlabError(
                f"the feature network embeds images of shape (N, {', '.join(map(str, expected))}),"
                f" got {tuple(images.shape)}"
            )
        device = next(self.parameters()).device
        features, logits = [], []
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device)
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            x = x.contiguous(memory_format=torch.channels_last)
            h = self.classifier.features(x)  # (B, F)
            features.append(h.float().cpu())
            logits.append(self.classifier.head(h).float().cpu())
        if not features:
            K = config.num_classes
            return Embedding(torch.empty(0, self.num_features), torch.empty(0, K))
        return Embedding(torch.cat(features), torch.cat(logits))


def shipped_info() -> dict:
    """The record of the shipped Fashion-MNIST classifier: config, test accuracy, command."""
    return json.loads(FASHION_MNIST.with_suffix(".json").read_text())


def load_feature_network(
    path: str | Path | None = None, run: str | Path | None = None, *, device: str | None = None
) -> FeatureNetwork:
    """Load a feature network.

    Args:
        path: a classifier safetensors file with its .json record next to it (as shipped);
            None and no `run`: genlab's Fashion-MNIST classifier.
        run: a run directory of `genlab train classifier` (for data other than Fashion-MNIST);
            its EMA weights are used when it has them.
        device: where to put the network (None: `genlab.devices`' default, auto unless a
            `using` block says otherwise).

    Returns:
        The FeatureNetwork in eval mode.

    Raises:
        GenlabError: both arguments given, missing files, or a run that is not a classifier.
    """
    from genlab.devices import resolve
    from genlab.runs import Run, config_from_dict, load_weights

    device = resolve(device)

    if path is not None and run is not None:
        raise GenlabError("give either a weights path or a classifier run, not both")
    if run is not None:
        run = Run.of(run)
        if not issubclass(run.family.model, Classifier):
            raise GenlabError(
                f"{run}: a {run.name!r} run, not a classifier; train a feature network "
                "with `genlab train classifier --data <your data> --out <run>`"
            )
        return FeatureNetwork(run.model(device=device), run.class_names)
    path = Path(path) if path is not None else FASHION_MNIST
    record_path = path.with_suffix(".json")
    if not record_path.is_file():
        raise GenlabError(f"{record_path}: missing; it records the classifier config of {path}")
    record = json.loads(record_path.read_text())
    model = Classifier(config_from_dict(ClassifierConfig, record["model"], str(record_path)))
    try:
        model.load_state_dict(load_weights(path))
    except RuntimeError as e:
        raise GenlabError(f"{path}: weights do not match {record_path} ({e})") from None
    return FeatureNetwork(model.to(device), tuple(record.get("class_names", ())))
