"""The registry: every model family genlab knows, by name. Each record is declared in its
family's own module (`genlab.family.Family`); this dict is the one place that lists them.

Adding a family = its model file (config, model, `FAMILY` record), optionally its training step
(`genlab/training/`), and one entry here.
"""

from __future__ import annotations

from genlab.errors import GenlabError
from genlab.family import Family
from genlab.models import (
    autoencoder,
    classifier,
    cyclegan,
    ddpm,
    dqn,
    flow_matching,
    gan,
    glow,
    noisy_classifier,
    pixelcnn,
    qtable,
    stylegan,
    vae,
    vqvae,
)

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        autoencoder.FAMILY,
        vae.FAMILY,
        gan.FAMILY,
        gan.CONDITIONAL_FAMILY,
        stylegan.FAMILY,
        cyclegan.FAMILY,
        ddpm.FAMILY,
        ddpm.LATENT_FAMILY,
        ddpm.TEXT_FAMILY,
        flow_matching.FAMILY,
        pixelcnn.FAMILY,
        glow.FAMILY,
        vqvae.FAMILY,
        dqn.FAMILY,
        qtable.FAMILY,
        classifier.FAMILY,
        noisy_classifier.FAMILY,
    )
}


def get_family(name: str, source: str = "") -> Family:
    """The record of a family name, or a one-line error listing the known ones."""
    if name not in FAMILIES:
        where = f"{source}: " if source else ""
        raise GenlabError(f"{where}unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]
