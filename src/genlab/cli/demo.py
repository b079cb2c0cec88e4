"""`genlab demo` (the library's `genlab.demo.run_demo`)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import click

from genlab.cli.common import PROGRESS, echo, on_device, opt
from genlab.options import Option

MINUTES = {"min": 0.0, "max": 10_000.0}


@click.command()
@click.option("--out", "-o", "out", type=click.Path(path_type=Path), default=Path("demo"),
              show_default=True, help="Where to write the demo.")  # fmt: skip
@opt(Option("retrain", "bool", False,
            "Train every section on this machine (the budgets below) instead of using the "
            "shipped runs; a demo run trained before is reused (delete it to train "
            "again)."))  # fmt: skip
@opt(Option("live_minutes", "float", 1.5,
            "Budget of the DCGAN trained live (0 skips it; --retrain trains every section "
            "instead).", **MINUTES))  # fmt: skip
@opt(Option("live_eval_n", "int", 2_000, "Samples `genlab eval` scores for the live run.",
            min=0, max=1_000_000))  # fmt: skip
@opt(Option("minutes", "float", 3.0, "With --retrain: training budget of the VAE in minutes.",
            min=0.0, min_open=True, max=10_000.0))  # fmt: skip
@opt(Option("gan_minutes", "float", 3.0, "Budget of the GAN (0 skips the GAN section).",
            **MINUTES))  # fmt: skip
@opt(Option("stylegan_minutes", "float", 3.0,
            "Budget of the StyleGAN (0 skips the StyleGAN section).", **MINUTES))  # fmt: skip
@opt(Option("diffusion_minutes", "float", 3.0,
            "Budget of each diffusion run: the first-stage VAE, a latent diffusion model and a "
            "text-to-image model (0 skips the diffusion section).", **MINUTES))  # fmt: skip
@opt(Option("pixelcnn_minutes", "float", 3.0,
            "Budget of the PixelCNN (0 skips the autoregressive section).", **MINUTES))  # fmt: skip
@opt(Option("glow_minutes", "float", 3.0,
            "Budget of the Glow (0 skips the normalizing-flow section).", **MINUTES))  # fmt: skip
@opt(Option("vqvae_minutes", "float", 3.0,
            "Budget of the VQ-VAE and of its prior, each (0 skips the VQ-VAE section).",
            **MINUTES))  # fmt: skip
@opt(Option("rl_steps", "int", 30_000,
            "Environment steps of the DQN on CartPole (0 skips the reinforcement-learning "
            "section).", min=0, max=10**8))  # fmt: skip
@opt(Option("eval_n", "int", 10_000,
            "With --retrain: samples `genlab eval` scores for the VAE and the GAN (0 skips it); "
            "the flow-matching NFE sweep scores min(500, this) a point (below 2, no sweep).",
            min=0, max=1_000_000))  # fmt: skip
@opt(Option("data_dir", "path", None, "Fashion-MNIST IDX directory."))
@opt(PROGRESS)
@on_device
def demo(**options) -> None:
    """Every family's pictures from the runs that ship trained (VAEs, GANs, StyleGAN, diffusion,
    text to image, flow matching, PixelCNN, Glow, VQ-VAE, a DQN on CartPole), one DCGAN trained
    live for a minute or two and evaluated, all in index.html (updated after every picture).
    --retrain trains every section on this machine instead, a few minutes each."""
    from genlab.demo import DemoConfig, run_demo

    index = run_demo(DemoConfig(**options), say=echo, runner=_in_this_process)
    echo(f"demo ready: open {index}")


def _in_this_process(argv: Sequence[str], folder: Path) -> None:
    """A figure's command run by this process's own command line, in the demo folder: the same
    parsing and checks as typed, without a new interpreter's second of start-up per figure."""
    root = click.get_current_context().find_root().command
    with contextlib.chdir(folder):
        root.main(args=list(argv), prog_name="genlab", standalone_mode=False)


COMMANDS = [demo]
