"""Creating diffusion runs: pixel space (ddpm), latent (ldm) and text-conditioned (txt2img).

Diffusion models train with the shared loop (`genlab.training.loop.train`: their `loss(batch)`
is the denoising loss). What is particular is the creation of a run: a latent model copies the
VAE of a genlab run and measures the latent's scale on the training data, a text model encodes
its captions once, and both keep these frozen parts in RUN/frozen.safetensors, which the loop
loads before the first step (`Diffusion.load_frozen`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from genlab.data import DataSpec, ImageData
from genlab.errors import GenlabError
from genlab.models.ddpm import FROZEN, Diffusion, DiffusionConfig, latent_scale_of
from genlab.training.loop import TrainConfig, create_run

DIFFUSION_FAMILIES = ("ddpm", "ldm", "txt2img")

LATENT_UNET = {"width": 32, "mults": (1, 2), "attention_levels": ()}
"""The latent model's UNet: on a 4x7x7 latent two levels (7x7, 4x4), attention (and a text
model's cross-attention) in the middle block only, at 4x4: 0.7 M parameters. Attention at 7x7
as well cost 1.6x the step time on one CPU core (CPU attention backward on 49 tokens is slow)."""

DIFFUSION_TRAIN = {"lr": 1e-3, "warmup_steps": 200}
"""Training defaults where the user gave none: a lower peak rate than the VAE's 2e-3."""


def first_stage(vae_run: Path, data: ImageData):
    """The VAE of a run, checked to be a spatial-latent VAE of the data's image shape."""
    import genlab
    from genlab.runs import read_config

    if read_config(vae_run)["family"] != "vae":
        raise GenlabError(
            f"--vae {vae_run}: not a VAE run; train one with "
            "`genlab train vae --latent-channels 4 --out RUN`"
        )
    vae = genlab.load(vae_run)
    if len(getattr(vae, "latent_shape", ())) != 3:
        raise GenlabError(
            f"--vae {vae_run}: its latent is a vector; latent diffusion needs a spatial latent: "
            "train it with `genlab train vae --latent-channels 4`"
        )
    c, h, _ = data.shape
    if (vae.config.channels, vae.config.image_size) != (c, h):
        raise GenlabError(
            f"--vae {vae_run}: made for {vae.config.channels}x{vae.config.image_size} images, "
            f"the data is {c}x{h}"
        )
    return vae


def caption_table(class_names: list[str]) -> tuple[list[list[str]], torch.Tensor, torch.Tensor]:
    """Every class's captions (padded to the same count by repetition) and their encodings.

    Returns:
        captions[k][m]; states (K * M + 1, L, D) with the empty caption last; mask (K * M + 1, L)
        as float.
    """
    from genlab.text import captions, load_text_encoder

    per_class = captions(class_names)
    M = max(len(c) for c in per_class)
    padded = [[c[m % len(c)] for m in range(M)] for c in per_class]
    flat = [caption for c in padded for caption in c] + [""]
    states, mask = load_text_encoder().encode(flat)
    return padded, states.float(), mask.float()


def create_diffusion_run(
    out: Path,
    family: str,
    spec: DataSpec,
    data: ImageData,
    tcfg: TrainConfig,
    *,
    conditional: bool = False,
    vae_run: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Create a ddpm, ldm or txt2img run directory (config.json and, for latent models, the
    frozen parts). `overrides`: DiffusionConfig fields given on the command line."""
    if family not in DIFFUSION_FAMILIES:
        raise GenlabError(f"unknown diffusion family {family!r}; use {DIFFUSION_FAMILIES}")
    overrides = dict(overrides or {})
    c, h, _ = data.shape
    K = len(data.class_names)
    fields: dict[str, Any] = {"channels": c, "image_size": h}
    if (conditional or family == "txt2img") and K < 2:
        raise GenlabError(
            f"{family}{' --conditional' if conditional else ''} needs labelled data: an image "
            "folder with one sub-folder per class"
        )
    if conditional:
        fields["num_classes"] = K
    extra: dict[str, Any] = {"class_names": list(data.class_names)}
    vae = None
    if family in ("ldm", "txt2img"):
        if vae_run is None:
            raise GenlabError(
                f"{family} diffuses in a VAE's latent space: give --vae RUN (a run of "
                "`genlab train vae --latent-channels 4`)"
            )
        vae = first_stage(vae_run, data)
        n = min(len(data), 2048)
        scale, bound = latent_scale_of(vae, data.images[:n].float() / 255.0)
        fields.update(LATENT_UNET, vae=dataclasses.asdict(vae.config), latent_scale=scale)
        fields["x0_bound"] = bound
        extra["first_stage"] = str(Path(vae_run).resolve())
    elif vae_run is not None:
        raise GenlabError("--vae is an option of ldm and txt2img (ddpm works in pixel space)")
    states = mask = None
    if family == "txt2img":
        captions, states, mask = caption_table(list(data.class_names))
        fields.update(
            num_classes=K,
            text_dim=states.shape[-1],
            captions=len(captions[0]),
            caption_length=states.shape[1],
        )
        extra["captions"] = captions
    config = DiffusionConfig(**{**fields, **overrides})
    model = Diffusion(config)  # checks the config before anything is written
    if vae is not None:
        model.vae.load_state_dict(vae.state_dict())
    if states is not None:
        model.caption_states.copy_(states)
        model.caption_mask.copy_(mask)
    run_dir = create_run(out, family, config, tcfg, spec, extra=extra)
    if model.frozen_state():
        from genlab.runs import save_weights

        save_weights(run_dir / FROZEN, model.frozen_state())
    return run_dir
