"""Which step trains which family: the training package's side of the registry.

`genlab.families.FAMILIES` lists the families by their records, declared in the model files;
models never import training code, so the steps are mapped to the family names here (the
architecture test checks that every family has exactly one).
"""

from __future__ import annotations

from genlab.errors import GenlabError
from genlab.training.cyclegan import CycleGANStep
from genlab.training.dqn import DQNStep, QTableStep
from genlab.training.gan import GANStep, StyleGANStep
from genlab.training.step import Step
from genlab.training.steps import OneOptimizer

STEPS: dict[str, type[Step]] = {
    "ae": OneOptimizer,
    "vae": OneOptimizer,
    "gan": GANStep,
    "cgan": GANStep,
    "stylegan": StyleGANStep,
    "cyclegan": CycleGANStep,
    "ddpm": OneOptimizer,
    "ldm": OneOptimizer,
    "txt2img": OneOptimizer,
    "flow-matching": OneOptimizer,
    "pixelcnn": OneOptimizer,
    "glow": OneOptimizer,
    "vqvae": OneOptimizer,
    "dqn": DQNStep,
    "qtable": QTableStep,
    "classifier": OneOptimizer,
    "noisy-classifier": OneOptimizer,
}


def step_of(family: str) -> type[Step]:
    """The Step class that trains `family`."""
    if family not in STEPS:
        raise GenlabError(f"no training step for the family {family!r}: add it to {__name__}")
    return STEPS[family]
