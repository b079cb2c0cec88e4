"""Drawing from trained runs: `sample(run, n)` for every family that samples, with the options
diffusion models take (sampler, steps, guidance, a noisy classifier, a prompt), and writing the
samples as a grid, as one PNG per sample (what pytorch-fid, clean-fid and torch-fidelity read)
or as one .npz array with the classes or prompt used.

Also the run-level helpers the pictures share: a run's test data, class ids from class names.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from genlab.data import ImageData
from genlab.errors import GenlabError
from genlab.runs import Run
from genlab.samplers import sampler_named

TXT2IMG_GUIDANCE = 3.0
"""The classifier-free guidance weight of `txt2img` when none is given."""


class Samples(NamedTuple):
    """n samples of a run and what they were asked to be.

    Attributes:
        images: (n, C, H, W) in [0, 1].
        labels: (n,) class ids asked for; None for an unconditional model.
        class_names: the run's class names (labels index them).
        prompt: the text of a text-to-image run, else None.
        info: what made them (run, seed, options), for PNG metadata.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    class_names: tuple[str, ...]
    prompt: str | None
    info: dict[str, str]


# ------------------------------------------------------------------------------ run helpers


def run_data(run: str | os.PathLike | Run, split: str = "test") -> ImageData:
    """One split ("train" or "test") of the images a run was trained on (its "data")."""
    from genlab.data import load_data

    if split not in ("train", "test"):
        raise GenlabError(f"--split {split}: use train or test")
    return load_data(Run.of(run).image_spec(), split)


def test_data(run: str | os.PathLike | Run) -> ImageData:
    """The test split of the data a run was trained on."""
    return run_data(run, "test")


def named_class(run: str | os.PathLike | Run, name: str, n: int) -> torch.Tensor:
    """(n,) ids of the class called `name` (case-insensitive) among a run's class names."""
    names = Run.of(run).class_names
    lowered = [c.lower() for c in names]
    if name.lower() not in lowered:
        known = ", ".join(names) if names else "none: the run's data has no classes"
        raise GenlabError(f"unknown class {name!r}; classes: {known}")
    return torch.full((n,), lowered.index(name.lower()), dtype=torch.long)


def class_ids(run: str | os.PathLike | Run, model, name: str | None, n: int) -> torch.Tensor | None:
    """(n,) class ids of a conditional model: the class `name`, or every class in turn when
    None; None for an unconditional model (which refuses a class name)."""
    K = getattr(model.config, "num_classes", 0)
    if not K:
        if name is not None:
            raise GenlabError(f"{run}: --class needs a conditional model")
        return None
    if name is None:
        return torch.arange(n) % K
    return named_class(run, name, n)


def one_per_class(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of n images, the classes in turn (the first image of each)."""
    if labels.min() < 0:
        return torch.arange(n)
    firsts = [int((labels == k).nonzero()[0]) for k in labels.unique().tolist()]
    return torch.tensor([firsts[i % len(firsts)] for i in range(n)])


def model_of(run: str | os.PathLike | Run, cls: type, kind: str, hint: str = ""):
    """The model of a run if it is a `cls` (e.g. Diffusion), else a one-line error: the run's
    family, "not a {kind} run", then `hint`."""
    run = Run.of(run)
    if not issubclass(run.family.model, cls):
        raise GenlabError(f"{run}: a {run.name} run, not a {kind} run{hint}")
    return run.model()


def diffusion_model(run: str | os.PathLike | Run):
    """The model of a diffusion run (ddpm, ldm, txt2img), or a one-line error."""
    from genlab.models.ddpm import Diffusion

    return model_of(run, Diffusion, "diffusion")


def temperature_option(run: Run, model, temperature: float | None) -> dict[str, float]:
    """The `temperature` keyword of `model.sample` (PixelCNN, Glow); none for None, and a
    one-line refusal for a model whose sampler takes no temperature."""
    if temperature is None:
        return {}
    if "temperature" not in inspect.signature(model.sample).parameters:
        raise GenlabError(f"{run}: --temperature is for pixelcnn and glow runs, not {run.name}")
    return {"temperature": temperature}  # the model's sampler checks its range


def sampling_options(
    model,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    guidance: float | None = None,
    classifier: str | os.PathLike | Run | None = None,
    classifier_scale: float = 1.0,
) -> dict[str, Any]:
    """Sampling options as keywords of the model's `sample`: a diffusion or flow-matching
    model's sampler (among its own `SAMPLERS`) and steps, classifier-free guidance; DDIM's eta
    and a noisy classifier for diffusion models. Refused for models that take none."""
    given = (sampler, steps, eta, guidance, classifier)
    if given == (None,) * 5:
        return {}
    from genlab.models.ddpm import Diffusion
    from genlab.models.noisy_classifier import NoisyClassifier

    samplers = getattr(model, "SAMPLERS", None)
    if samplers is None:
        raise GenlabError(
            "--sampler, --steps, --guidance, --eta and --classifier are options of diffusion and "
            "flow-matching runs"
        )
    if not isinstance(model, Diffusion) and (eta, classifier) != (None, None):
        raise GenlabError("--eta and --classifier are options of diffusion runs (DDIM, guidance)")
    options: dict[str, Any] = {}
    if sampler is not None:
        options["sampler"] = sampler_named(sampler, samplers)
    if steps is not None:
        if not 1 <= steps <= model.max_steps:
            raise GenlabError(f"--steps {steps}: use 1 to {model.max_steps}")
        options["steps"] = steps
    if eta is not None:
        options["eta"] = eta
    if guidance is not None:
        if not model.config.num_classes:
            raise GenlabError(
                "--guidance needs a conditional model (ddpm/ldm/flow-matching --conditional)"
            )
        options["guidance"] = guidance
    if classifier is not None:
        classifier = Run.of(classifier)
        if classifier.family.model is not NoisyClassifier:
            raise GenlabError(
                f"--classifier {classifier}: not a noisy-classifier run; train one with "
                "`genlab train noisy-classifier --out RUN`"
            )
        clf = classifier.model()
        options.update(classifier=clf, classifier_scale=classifier_scale)
    return options


def prompt_context(model, run: str | os.PathLike | Run, prompt: str):
    """A prompt's (token states, mask) for a txt2img run, with a one-line error otherwise."""
    if not getattr(model.config, "text_dim", 0):
        raise GenlabError(f"{run}: not a text-to-image run; --prompt needs `genlab train txt2img`")
    if not prompt.strip():
        raise GenlabError("the prompt is empty; describe a garment, e.g. 'a pair of ankle boots'")
    return model.encode_prompt(prompt)


# ------------------------------------------------------------------------------ sampling


def sample(
    run: str | os.PathLike | Run,
    n: int = 64,
    *,
    seed: int = 0,
    class_name: str | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    guidance: float | None = None,
    classifier: str | os.PathLike | Run | None = None,
    classifier_scale: float = 1.0,
    prompt: str | None = None,
    temperature: float | None = None,
    progress: bool = False,
    model=None,
) -> Samples:
    """n samples of a trained run, seeded: the same seed gives the same images.

    Args:
        run: a run directory (or the opened `Run`).
        class_name: the class to draw (conditional models, or an unconditional diffusion model
            guided by `classifier`); None draws the classes in turn.
        sampler, steps, eta, guidance, classifier, classifier_scale: diffusion sampling
            (`Diffusion.sample`); classifier is a noisy-classifier run for classifier guidance.
        prompt: the text of a txt2img run (guidance defaults to 3 then).
        temperature: > 0, for models whose `sample` takes one (PixelCNN: per pixel; Glow: the
            latent's scale).
        progress: a progress bar for models that sample step by step (PixelCNN).
        model: the run's model, if loaded already.
    """
    if n < 1:
        raise GenlabError(f"--n {n}: draw at least one sample")
    run = Run.of(run)
    classifier = Run.of(classifier) if classifier is not None else None
    model = model if model is not None else run.model()
    if hasattr(model, "translate") and not hasattr(model, "sample"):
        raise GenlabError(
            f"{run}: a CycleGAN translates images and draws no samples: use "
            f"`genlab translate {run} --images DIR --out DIR`"
        )
    if hasattr(model, "act") and not hasattr(model, "sample"):
        raise GenlabError(
            f"{run}: a {run.name} run is an agent and draws no images: watch it "
            f"with `genlab play {run} --out agent.gif`, score it with `genlab eval {run}`"
        )
    if hasattr(model, "reconstruct") and not hasattr(model, "sample"):
        raise GenlabError(
            f"{run}: a {run.name} run reconstructs images and draws no samples: train a prior "
            f"over its codes with `genlab train pixelcnn --prior {run} --out PRIOR`, then sample "
            "PRIOR"
        )
    if not hasattr(model, "sample"):
        raise GenlabError(f"{run}: a {run.name} run draws no samples")
    options = sampling_options(model, sampler, steps, eta, guidance, classifier, classifier_scale)
    options.update(temperature_option(run, model, temperature))
    takes = inspect.signature(model.sample).parameters
    bar = None
    if progress and "callback" in takes:
        from tqdm.auto import tqdm

        bar = tqdm(desc="sample", unit="px", leave=False)
        options["callback"] = lambda done, _: bar.update(done - bar.n)
    labels = None
    if class_name is not None:
        if not getattr(model.config, "num_classes", 0) and classifier is None:
            raise GenlabError(
                f"{run}: --class needs a conditional model (train with --conditional, or cgan) "
                "or, for a diffusion model, a --classifier to guide it"
            )
        # the classes of the model, or of the classifier that guides an unconditional model
        labels = named_class(classifier if classifier is not None else run, class_name, n)
        options["y"] = labels
    if prompt is not None:
        options["context"] = prompt_context(model, run, prompt)
        options.setdefault("guidance", TXT2IMG_GUIDANCE)
    elif labels is None and getattr(model.config, "num_classes", 0):
        labels = torch.arange(n) % model.config.num_classes  # what the model draws for y=None
    try:
        with torch.inference_mode():
            x = model.sample(n, generator=torch.Generator().manual_seed(seed), **options)
    finally:
        if bar is not None:
            bar.close()
    info = {"run": str(run), "seed": str(seed)}
    if temperature is not None:
        info["temperature"] = str(temperature)
    if prompt is not None:
        info.update(prompt=prompt, guidance=str(options["guidance"]))
    names = (classifier if classifier is not None else run).class_names
    return Samples(x.float().cpu(), labels, names, prompt, info)


def save_samples(
    samples: Samples, out: str | os.PathLike, metadata: dict[str, str] | None = None
) -> str:
    """Write samples as a grid PNG (FILE.png), one PNG per sample (DIR/: an existing or new
    folder, which must hold no files yet) or one .npz array (FILE.npz: images (n, H, W, C)
    uint8, labels (n,) int64 (-1 unconditional), class_names, prompt). Returns what was written.
    """
    import numpy as np

    from genlab.images import BORDER, make_grid, save_png, to_uint8

    text = os.fspath(out)
    meta = {"software": "genlab", **samples.info, **(metadata or {})}
    x, n = samples.images, len(samples.images)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        folder = Path(text)
        if folder.is_dir() and any(folder.iterdir()):
            raise GenlabError(f"{folder}: not empty; give a new or empty folder for the samples")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            extra = {"index": str(i)}
            if samples.labels is not None:
                extra["class"] = samples.class_names[int(samples.labels[i])]
            save_png(folder / f"{i:06d}.png", to_uint8(x[i]), {**meta, **extra})
        return f"{n} PNG files in {folder}"
    path = Path(text)
    if path.suffix == ".npz":
        from genlab.atomic import atomic_path

        images = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        labels = samples.labels if samples.labels is not None else torch.full((n,), -1)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f, images=images, labels=labels.long().numpy(),
                class_names=np.array(samples.class_names, dtype=str),
                prompt=np.array(samples.prompt or ""), seed=np.array(int(samples.info["seed"])),
            )  # fmt: skip
        return f"{path} ({n} images {tuple(images.shape[1:])} uint8 with labels)"
    if path.suffix.lower() != ".png":
        raise GenlabError(f"--out {text}: write FILE.png (a grid), FILE.npz or a folder DIR/")
    grid_meta = {"grid_tile": str(x.shape[-1]), "grid_padding": str(BORDER)}
    save_png(path, make_grid(x), {**meta, **grid_meta})
    return str(path)
