"""Commands on a trained run: `genlab sample`, `plot`, `embed`, `nll`."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import (
    CLASS,
    CLASSIFIER,
    CLASSIFIER_SCALE,
    ETA,
    GUIDANCE,
    PROMPT,
    SAMPLER,
    SEED,
    STEPS,
    TEMPERATURE,
    command_meta,
    echo,
    n_option,
    on_device,
    opt,
    out,
    run_argument,
)
from genlab.options import Option


@click.command()
@run_argument()
@click.option(
    "--out", "-o", "out", default="samples.png", show_default=True,
    help="FILE.png: a grid; DIR/: one PNG per sample (for pytorch-fid, clean-fid, "
    "torch-fidelity); FILE.npz: an array of uint8 images with the labels.",
)  # fmt: skip
@opt(n_option(64, "Number of samples."))
@opt(SEED)
@opt(CLASS)
@opt(SAMPLER)
@opt(STEPS)
@opt(ETA)
@opt(GUIDANCE)
@opt(CLASSIFIER)
@opt(CLASSIFIER_SCALE)
@opt(PROMPT)
@opt(TEMPERATURE)
@on_device
def sample(run: Path, out: str, n: int, seed: int, class_name, **options) -> None:
    """Draw n samples from a trained model: a grid PNG, a folder of PNGs or an .npz.

    Diffusion runs take a sampler (ddpm, ddim, dpm), steps, classifier-free --guidance, a
    noisy-classifier run for classifier guidance, and (txt2img) a --prompt. A PixelCNN draws
    pixel by pixel (a progress bar) at a --temperature."""
    from genlab.sampling import sample as draw
    from genlab.sampling import save_samples

    samples = draw(run, n, seed=seed, class_name=class_name, progress=True, **options)
    echo(f"wrote {save_samples(samples, out, command_meta())}")


@click.command()
@run_argument()
@out("loss.png")
def plot(run: Path, out: Path) -> None:
    """Training curves of a run from its metrics.csv (a GAN's with a reading guide)."""
    from genlab.pictures.curves import plot as draw

    echo(f"wrote {draw(run, out, command_meta())}")


@click.command()
@run_argument()
@out("embeddings.csv", "The CSV file to write.")
@opt(Option("split", "str", "test", "Which split to embed.", choices=("train", "test")))
@on_device
def embed(run: Path, out: Path, split: str) -> None:
    """Dimensionality reduction: the latent vector of every image, with labels, as CSV."""
    from genlab.latent import embed_run
    from genlab.plots import save_embeddings_csv

    z, data = embed_run(run, split)
    save_embeddings_csv(out, z, data.labels, data.class_names)
    echo(f"wrote {out}: {z.shape[0]} rows, {z.shape[1]} latent dimensions")


@click.command()
@run_argument()
@opt(Option("k", "int", 64, "Importance samples (VAE).", min=1, max=100_000))
@opt(Option("n", "int", 0, "Test images (0 = all).", min=0, max=10**7))
@opt(Option("draws", "int", 4, "Random timesteps per image (DDPM's bound).", min=1, max=10_000))
@opt(SEED)
@on_device
def nll(run: Path, k: int, n: int, draws: int, seed: int) -> None:
    """Test-set negative log-likelihood in nats per image and bits per dimension: exact for a
    PixelCNN; upper bounds for a VAE (-ELBO, IWAE), a DDPM (variational bound) and Glow (the
    exact density of the dequantized image, a bound on the 8-bit image's). A run trained with
    --binarize is scored on the test set binarized with a fixed seed."""
    from genlab.evaluation.likelihood import nll as measure

    rows, used = measure(run, k=k, n=n, seed=seed, draws=draws, progress=True)
    echo(f"{used} test images:")
    for r in rows:
        kind = "exact" if r.exact else "upper bound"
        echo(
            f"  {r.what}: {r.nats:.2f} +- {r.stderr:.2f} nats/image, {r.bpd:.4f} bits/dim ({kind})"
        )


COMMANDS = [sample, plot, embed, nll]
