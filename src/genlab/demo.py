"""The demo's index.html: every picture of a trained run on one page, with the command for each."""

from __future__ import annotations

import html
import json
from pathlib import Path

from genlab.atomic import atomic_path

SECTIONS = [
    (
        "samples.png",
        "Samples",
        "64 images decoded from z ~ N(0, I).",
        "genlab sample {run} --n 64 --seed 0 --out samples.png",
    ),
    (
        "reconstructions.png",
        "Reconstructions",
        "Test images (odd rows) and their reconstructions decode(encode(x)) (even rows).",
        "genlab reconstruct {run} --out reconstructions.png",
    ),
    (
        "interpolation.png",
        "Interpolation",
        "Spherical interpolation (slerp) between the latents of two test images, one pair a row.",
        "genlab interpolate {run} --out interpolation.png",
    ),
    (
        "morph.png",
        "Morph",
        "A sneaker morphing into an ankle boot: real image, path, real image.",
        "genlab morph {run} --from Sneaker --to 'Ankle boot' --out morph.png",
    ),
    (
        "arithmetic.png",
        "Latent vector arithmetic",
        "Each row: a sneaker, then z + s * (mean z of boots - mean z of sneakers), s growing.",
        "genlab arithmetic {run} --from Sneaker --to 'Ankle boot' --out arithmetic.png",
    ),
    (
        "latent_map.png",
        "Latent map",
        "5,000 test images embedded and projected to 2-D (PCA).",
        "genlab latent-map {run} --out latent_map.png",
    ),
    (
        "walk.png",
        "Latent walks",
        "One row per latent dimension, varied around one test image.",
        "genlab walk {run} --out walk.png",
    ),
    (
        "loss.png",
        "Training curves",
        "Loss, reconstruction and KL terms, and learning rate.",
        "genlab plot {run} --out loss.png",
    ),
]

GAN_SECTIONS = [
    (
        "gan_samples.png",
        "GAN samples",
        "A DCGAN (non-saturating loss) trained for a few minutes: 64 samples of G(z).",
        "genlab sample {gan_run} --n 64 --seed 0 --out gan_samples.png",
    ),
    (
        "gan_interpolation.png",
        "GAN latent paths",
        "Slerp between random latents z of the generator (it has no encoder).",
        "genlab interpolate {gan_run} --out gan_interpolation.png",
    ),
    (
        "gan_curves.png",
        "GAN training dynamics",
        "Losses, D(x) and D(G(z)), gradient norms and the classes the samples cover.",
        "genlab plot {gan_run} --out gan_curves.png",
    ),
    (
        "gan_gradients.png",
        "Why the non-saturating loss",
        "The generator's gradient against D(G(z)) for both losses, with this run's measurements.",
        "genlab gan-gradients {gan_run} --out gan_gradients.png",
    ),
]

DIFFUSION_SECTIONS = [
    (
        "ldm_forward.png",
        "Diffusion: the forward process",
        "Test images noised by q(x_t | x_0) from t = 0 to T - 1 (cosine schedule), here in the "
        "4x7x7 latent of the first-stage VAE and decoded: the signal fades into noise.",
        "genlab forward {ldm_run} --out ldm_forward.png",
    ),
    (
        "ldm_denoise.png",
        "Diffusion: the reverse process",
        "From pure noise x_T to images, 20 snapshots of DDIM (50 steps); the GIF "
        "ldm_denoise.gif animates 16 samples.",
        "genlab denoise {ldm_run} --out ldm_denoise.gif --strip ldm_denoise.png",
    ),
    (
        "ldm_guidance.png",
        "Classifier-free guidance",
        "One row per guidance weight w = 0 (unconditional), 1, 2, 4; one class per column, "
        "the same noise in every row.",
        "genlab guidance {ldm_run} --scales 0,1,2,4 --out ldm_guidance.png",
    ),
    (
        "ldm_samples.png",
        "Latent diffusion samples",
        "64 samples of the class-conditional latent diffusion model, the classes in turn.",
        "genlab sample {ldm_run} --n 64 --out ldm_samples.png",
    ),
    (
        "txt2img_boots.png",
        "Text to image: 'a pair of ankle boots'",
        "A latent diffusion model conditioned on all-MiniLM-L6-v2 token states by "
        "cross-attention, guidance w = 3.",
        "genlab txt2img {t2i_run} 'a pair of ankle boots' --out txt2img_boots.png",
    ),
    (
        "txt2img_sweater.png",
        "Text to image: 'a wool sweater' (never a training caption)",
        "The training captions say pullover, jumper or knitwear; the sentence encoder maps "
        "this wording near them.",
        "genlab txt2img {t2i_run} 'a wool sweater' --out txt2img_sweater.png",
    ),
]


def _other_runs(root: Path) -> dict[str, Path]:
    """The demo's other run directories, for the commands shown in index.html."""
    return {
        "gan_run": root / "gan-run",
        "ldm_run": root / "ldm-run",
        "t2i_run": root / "txt2img-run",
    }


def write_index(
    out_dir: Path,
    run: Path,
    sections: list[tuple[str, str, str, str]],
    seconds: float,
    evaluation: str | None = None,
) -> Path:
    """Write out_dir/index.html showing each section's picture (and the evaluation table)."""
    config = json.loads((run / "config.json").read_text())
    rel_run = run.relative_to(out_dir) if run.is_relative_to(out_dir) else run
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>genlab demo</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;"
        "padding:0 1em;color:#222}img{image-rendering:pixelated;max-width:100%;"
        "border:1px solid #ddd}figure{margin:2em 0}code{background:#f3f3f3;padding:2px 4px}"
        "</style></head><body>",
        "<h1>genlab demo: a VAE and a GAN on Fashion-MNIST</h1>",
        f"<p>Run <code>{html.escape(str(rel_run))}</code>, model "
        f"<code>{html.escape(json.dumps(config['model']))}</code>. "
        f"Demo wall time {seconds:.0f} s.</p>",
    ]
    for file, title, caption, command in sections:
        if not (out_dir / file).is_file():
            continue
        parts.append(
            f"<figure><h2>{html.escape(title)}</h2><img src='{html.escape(file)}' alt='{title}'>"
            f"<figcaption>{html.escape(caption)}<br><code>"
            f"{html.escape(command.format(run=rel_run, **_other_runs(rel_run.parent)))}"
            "</code></figcaption></figure>"
        )
    if evaluation is not None:
        parts.append(
            "<figure><h2>Evaluation</h2><pre>"
            f"{html.escape(evaluation)}</pre><figcaption>Every metric of the samples against "
            "the test set, next to real training images (the floor) and blurred and noised ones "
            f"(ceilings).<br><code>genlab eval {html.escape(str(rel_run))}</code></figcaption>"
            "</figure>"
        )
    parts.append("</body></html>\n")
    path = Path(out_dir) / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return path
