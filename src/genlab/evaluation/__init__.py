"""Evaluation of generative models against real data.

Every metric embeds images with one fixed feature network, a classifier trained by genlab
itself (`genlab.evaluation.features`): the penultimate layer of the shipped Fashion-MNIST
classifier, or of a classifier trained with `genlab train classifier` on the user's data.
"""

from genlab.evaluation.features import (
    Embedding,
    FeatureNetwork,
    load_feature_network,
    shipped_info,
)

__all__ = ["Embedding", "FeatureNetwork", "load_feature_network", "shipped_info"]
