"""`genlab demo` (the library's `genlab.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import PROGRESS, echo, opt
from genlab.options import Option

MINUTES = {"min": 0.0, "max": 10_000.0}


@click.command()
@click.option("--out", "-o", "out", type=click.Path(path_type=Path), default=Path("demo"),
              show_default=True, help="Where to write the demo.")  # fmt: skip
@opt(Option("minutes", "float", 3.0, "Training budget of the VAE in minutes.", min=0.0,
            min_open=True, max=10_000.0))  # fmt: skip
@opt(Option("gan_minutes", "float", 3.0, "Budget of the GAN (0 skips the GAN section).",
            **MINUTES))  # fmt: skip
@opt(Option("stylegan_minutes", "float", 3.0,
            "Budget of the StyleGAN (0 skips the StyleGAN section).", **MINUTES))  # fmt: skip
@opt(Option("diffusion_minutes", "float", 3.0,
            "Budget of each diffusion run: the first-stage VAE, a latent diffusion model and a "
            "text-to-image model (0 skips the diffusion section).", **MINUTES))  # fmt: skip
@opt(Option("pixelcnn_minutes", "float", 3.0,
            "Budget of the PixelCNN (0 skips the autoregressive section).", **MINUTES))  # fmt: skip
@opt(Option("rl_steps", "int", 30_000,
            "Environment steps of the DQN on CartPole (0 skips the reinforcement-learning "
            "section).", min=0, max=10**8))  # fmt: skip
@opt(Option("eval_n", "int", 10_000, "Samples `genlab eval` scores (0 skips it).", min=0,
            max=1_000_000))  # fmt: skip
@opt(Option("data_dir", "path", None, "Fashion-MNIST IDX directory."))
@opt(Option("retrain", "bool", False, "Train again even if the demo runs exist."))
@opt(PROGRESS)
def demo(**options) -> None:
    """Train a VAE, a GAN, a StyleGAN, latent diffusion models and a PixelCNN on Fashion-MNIST
    for a few minutes each, and a DQN on CartPole; draw every picture, evaluate, and write
    index.html (updated after every picture)."""
    from genlab.demo import DemoConfig, run_demo

    index = run_demo(DemoConfig(**options), say=echo)
    echo(f"demo ready: open {index}")


COMMANDS = [demo]
