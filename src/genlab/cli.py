"""`genlab ...`: the command-line interface. Thin: parses, calls the library, prints.

Heavy libraries (torch, accelerate, matplotlib) are imported inside the commands, so that
`genlab --help` answers at once. User errors (GenlabError) print one line and exit with code 2.
"""

from __future__ import annotations

import os
import shlex
import sys
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from genlab.errors import GenlabError
from genlab.sd.cli import sd_app

app = typer.Typer(
    name="genlab",
    help="A generative deep learning lab: train, sample, evaluate and explore generative models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Get and inspect data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(sd_app, name="sd")


class Family(str, Enum):
    ae = "ae"
    vae = "vae"
    classifier = "classifier"
    gan = "gan"
    cgan = "cgan"  # a GAN conditioned on the data's classes (run family "gan")
    cyclegan = "cyclegan"  # unpaired translation between two domains
    ddpm = "ddpm"  # diffusion in pixel space
    ldm = "ldm"  # diffusion in a VAE's spatial latent
    txt2img = "txt2img"  # latent diffusion conditioned on a sentence encoder
    noisy_classifier = "noisy-classifier"  # p(y | x_t, t) for classifier guidance


class Likelihood(str, Enum):
    bernoulli = "bernoulli"
    gaussian = "gaussian"


class Method(str, Enum):
    slerp = "slerp"
    lerp = "lerp"


DIFFUSION = ("ddpm", "ldm", "txt2img")

RunArg = Annotated[Path, typer.Argument(help="A run directory written by `genlab train`.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="The PNG file to write.")]
SeedOpt = Annotated[int, typer.Option(help="Random seed: the same seed gives the same picture.")]


def _echo(msg: str) -> None:
    typer.echo(msg)


def _meta(run: Path | None, seed: int | None) -> dict[str, str]:
    """PNG metadata: the command, seed and run that made a picture."""
    meta = {"command": "genlab " + shlex.join(sys.argv[1:]) if sys.argv else "genlab"}
    meta["software"] = "genlab"
    if run is not None:
        meta["run"] = str(run)
    if seed is not None:
        meta["seed"] = str(seed)
    return meta


def _load(run: Path):
    import genlab

    return genlab.load(run)


def _test_data(run: Path):
    """The test split of the data a run was trained on."""
    from genlab.data import DataSpec, load_data
    from genlab.runs import config_from_dict, read_config

    config = read_config(run)
    spec = config_from_dict(DataSpec, config.get("data", {}), str(run / "config.json"))
    return load_data(spec, "test")


def _needs(model, *methods: str) -> None:
    missing = [m for m in methods if not hasattr(model, m)]
    if missing:
        raise GenlabError(
            f"this run's model ({type(model).__name__}) has no {', '.join(missing)}: "
            f"the command needs {' and '.join(methods)} (ae, vae; a GAN generator only decodes)"
        )


def _decoder_only(model) -> bool:
    """A model that decodes latents but cannot encode images (a GAN); else it needs both."""
    _needs(model, "decode")
    return not hasattr(model, "encode")


def _random_classes(model, n: int, g):
    """(n,) random class ids for a conditional model, None for an unconditional one."""
    import torch

    from genlab.latent import is_conditional

    if not is_conditional(model):
        return None
    return torch.randint(model.config.num_classes, (n,), generator=g)


def _prior_paths(model, pairs: int, steps: int, method: str, seed: int):
    """(pairs, steps, C, H, W): decoded slerp/lerp paths between pairs of z ~ N(0, I)."""
    import torch

    from genlab.latent import decode_batched, lerp, slerp

    if steps < 2 or pairs < 1:
        raise GenlabError(f"interpolate needs --steps >= 2 and --pairs >= 1, got {steps}, {pairs}")
    g = torch.Generator().manual_seed(seed)
    d = model.config.latent_dim
    z0, z1 = torch.randn(pairs, d, generator=g), torch.randn(pairs, d, generator=g)
    path = (slerp if method == "slerp" else lerp)(z0, z1, torch.linspace(0, 1, steps))
    y = _random_classes(model, pairs, g)  # one class per row for a conditional GAN
    y = None if y is None else y.repeat_interleave(steps)
    x = decode_batched(model, path.reshape(pairs * steps, d), y)
    return x.reshape(pairs, steps, *x.shape[1:])


def _sampled_arithmetic(run: Path, model, from_: str, to: str, n: int, seed: int):
    """(rows, S, C, H, W): latent arithmetic for a decoder-only model on Fashion-MNIST.

    2000 latents z ~ N(0, I) are decoded and labelled by the shipped classifier; v = mean z of
    TO minus mean z of FROM; each row decodes z + s v for a FROM latent (s = 0: G(z) itself).
    """
    import torch

    from genlab.data.fashion_mnist import CLASS_NAMES
    from genlab.evaluation import load_feature_network
    from genlab.latent import (
        STRENGTHS,
        attribute_vector_from_latents,
        class_index,
        decode_batched,
        is_conditional,
    )
    from genlab.runs import read_config

    if is_conditional(model):
        raise GenlabError(
            f"{run}: a conditional GAN takes the class as an input, so z has no class means to "
            f"subtract; draw each class with `genlab sample {run} --class NAME`"
        )
    names, cfg = tuple(read_config(run).get("class_names", ())), model.config
    if names != CLASS_NAMES or (cfg.channels, cfg.image_size) != (1, 28):
        raise GenlabError(
            f"{run}: arithmetic needs class means of latents: a model with an encoder (ae, vae), "
            "or a GAN on Fashion-MNIST, whose samples the shipped classifier can label"
        )
    i_from, i_to = class_index(names, from_), class_index(names, to)
    z = torch.randn(2000, cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
    label = load_feature_network().embed(decode_batched(model, z)).logits.argmax(1)  # (2000,)
    for name, i in ((from_, i_from), (to, i_to)):
        if not (label == i).any():
            raise GenlabError(f"none of 2000 samples is a {name}: the generator lacks that class")
    v = attribute_vector_from_latents(z[label == i_to], z[label == i_from])  # (D,)
    s = torch.tensor(STRENGTHS)  # (S,)
    rows = z[label == i_from][:n, None, :] + s[None, :, None] * v  # (rows, S, D)
    x = decode_batched(model, rows.flatten(0, 1))
    return x.reshape(rows.shape[0], len(s), *x.shape[1:])


def _latent_model_and_data(run: Path):
    """A run's model (which must have encode and decode) and its test split."""
    model = _load(run)
    _needs(model, "encode", "decode")
    return model, _test_data(run)


# ----------------------------------------------------------------------------- training


@app.command()
def train(
    ctx: typer.Context,
    family: Annotated[Family | None, typer.Argument(help="Model family to train.")] = None,
    data: Annotated[str, typer.Option(help="'fashion-mnist' or a folder of images.")] = (
        "fashion-mnist"
    ),
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory with the Fashion-MNIST IDX files.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="New run directory.")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this run exactly where it stopped.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Total optimisation steps.")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget.")] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Budget in epochs (default 10 without a budget).")
    ] = None,
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    latent_dim: Annotated[int | None, typer.Option(help="Size of the latent vector z.")] = None,
    latent_channels: Annotated[
        int | None,
        typer.Option(
            help="VAE: a spatial latent of this many channels (e.g. 4 -> 4x7x7 at 28 px) for "
            "latent diffusion."
        ),
    ] = None,
    beta: Annotated[float, typer.Option(help="Weight of the KL term (beta-VAE).")] = 1.0,
    likelihood: Annotated[Likelihood, typer.Option(help="Decoder likelihood.")] = (
        Likelihood.bernoulli
    ),
    conditional: Annotated[
        bool, typer.Option(help="Conditional VAE or ddpm/ldm: P(x | class).")
    ] = False,
    vae: Annotated[
        Path | None, typer.Option(help="ldm/txt2img: the VAE run whose latent to diffuse in.")
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Diffusion: UNet width (16 pixel, 32 latent).")
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(help="Diffusion: noise schedule cosine (default), linear, sigmoid."),
    ] = None,
    prediction: Annotated[
        str | None, typer.Option(help="Diffusion: the network predicts eps (default), x0 or v.")
    ] = None,
    label_dropout: Annotated[
        float | None, typer.Option(help="Diffusion: P(null class) in training, for CFG (0.1).")
    ] = None,
    loss: Annotated[
        str | None, typer.Option(help="GAN loss: minimax, ns (default), hinge or wgan-gp.")
    ] = None,
    n_critic: Annotated[
        int | None, typer.Option(help="GAN: D updates per G update (1; 5 for wgan-gp).")
    ] = None,
    lr_d: Annotated[
        float | None, typer.Option(help="GAN: D learning rate (2e-4; 1e-4 for wgan-gp).")
    ] = None,
    lr_g: Annotated[
        float | None, typer.Option(help="GAN: G learning rate (2e-4; 1e-4 for wgan-gp).")
    ] = None,
    spectral_norm: Annotated[
        bool, typer.Option(help="GAN: spectral normalisation of D's layers.")
    ] = False,
    data_a: Annotated[
        Path | None, typer.Option(help="cyclegan: a folder of domain A's images.")
    ] = None,
    data_b: Annotated[
        Path | None, typer.Option(help="cyclegan: a folder of domain B's images.")
    ] = None,
    class_a: Annotated[
        str | None, typer.Option(help="cyclegan: domain A is this class of --data (or --data-a).")
    ] = None,
    class_b: Annotated[
        str | None, typer.Option(help="cyclegan: domain B is this class of --data (or --data-b).")
    ] = None,
    lambda_cycle: Annotated[
        float | None, typer.Option(help="cyclegan: weight of the cycle loss (10).")
    ] = None,
    lambda_identity: Annotated[
        float | None, typer.Option(help="cyclegan: weight of the identity loss (5).")
    ] = None,
    size: Annotated[int, typer.Option(help="Image size for folder data.")] = 32,
    channels: Annotated[int, typer.Option(help="1 (grayscale) or 3 (RGB) for folders.")] = 1,
    limit: Annotated[int | None, typer.Option(help="Use only the first N images.")] = None,
    ema: Annotated[float | None, typer.Option(help="EMA decay (0 turns EMA off).")] = 0.999,
    precision: Annotated[str, typer.Option(help="auto, bf16 or fp32.")] = "auto",
    sample_every: Annotated[int, typer.Option(help="Steps between sample grids.")] = 1000,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 1000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a model into a new run directory, or continue one with --resume."""
    from genlab.training import train as run_training

    if resume is not None:
        if family is not None or out is not None:
            raise GenlabError("--resume continues an existing run: give no family and no --out")
        result = run_training(
            resume, max_steps=max_steps, max_minutes=max_minutes, progress=progress
        )
    else:
        if family is None or out is None:
            raise GenlabError("give a family and --out, e.g. `genlab train vae --out runs/vae`")
        create, domains = _create, (data_a, data_b, class_a, class_b)
        given = {p for p in ctx.params if ctx.get_parameter_source(p).name != "DEFAULT"}
        if family.value in DIFFUSION:
            from genlab.training.diffusion import DIFFUSION_TRAIN

            lr = lr if "lr" in given else DIFFUSION_TRAIN["lr"]
        if family == Family.cyclegan:
            create = partial(_create_cyclegan, domains, lambda_cycle, lambda_identity, given)
            # cyclegan's own defaults where the user gave none: the paper's lr, no EMA
            lr = lr if "lr" in given else 2e-4
            batch_size = batch_size if "batch_size" in given else CYCLEGAN_BATCH
            ema = ema if "ema" in given else None
        elif domains + (lambda_cycle, lambda_identity) != (None,) * 6:
            raise GenlabError(
                "--data-a, --data-b, --class-a, --class-b, --lambda-cycle and --lambda-identity "
                "are options of cyclegan"
            )
        run_dir = create(
            family=family,
            data=data,
            data_dir=data_dir,
            out=out,
            max_steps=max_steps,
            max_minutes=max_minutes,
            epochs=epochs,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            latent_dim=latent_dim,
            latent_channels=latent_channels,
            beta=beta,
            likelihood=likelihood,
            conditional=conditional,
            vae=vae,
            diffusion={
                k: v
                for k, v in dict(
                    width=width,
                    schedule=schedule,
                    prediction=prediction,
                    label_dropout=label_dropout,
                ).items()
                if v is not None
            },  # fmt: skip
            loss=loss,
            n_critic=n_critic,
            lr_d=lr_d,
            lr_g=lr_g,
            spectral_norm=spectral_norm,
            size=size,
            channels=channels,
            limit=limit,
            ema=ema,
            precision=precision,
            sample_every=sample_every,
            checkpoint_every=checkpoint_every,
        )
        result = run_training(run_dir, progress=progress)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return
    _echo(
        f"{result.run_dir}: step {result.step} ({result.stopped_by}), "
        f"{result.elapsed_s:.0f} s, {result.images_per_s:.0f} images/s, "
        + ", ".join(
            f"{k} {v:.4g}" for k, v in result.last_metrics.items() if not k.startswith("grad_norm")
        )
    )
    if result.stopped_by == "interrupt":
        _echo(
            f"interrupted; checkpoint saved: continue with `genlab train --resume {result.run_dir}`"
        )
        raise typer.Exit(130)


def _create(
    family: Family,
    *,
    out: Path,
    data: str = "fashion-mnist",
    data_dir: Path | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    epochs: float | None = None,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    latent_dim: int | None = None,
    latent_channels: int | None = None,
    beta: float = 1.0,
    likelihood: Likelihood = Likelihood.bernoulli,
    conditional: bool = False,
    vae: Path | None = None,
    diffusion: dict | None = None,
    loss: str | None = None,
    n_critic: int | None = None,
    lr_d: float | None = None,
    lr_g: float | None = None,
    spectral_norm: bool = False,
    size: int = 32,
    channels: int = 1,
    limit: int | None = None,
    ema: float | None = 0.999,
    precision: str = "auto",
    sample_every: int = 1000,
    checkpoint_every: int = 1000,
) -> Path:
    """Create a run directory from the `train` options (the same defaults as the CLI)."""
    import dataclasses

    from genlab.data import DataSpec, load_data
    from genlab.models import FAMILIES
    from genlab.training import TrainConfig, create_run

    if data == "fashion-mnist":
        spec = DataSpec("fashion-mnist", str(data_dir) if data_dir else None, limit=limit)
    else:
        if not Path(data).is_dir():
            raise GenlabError(f"--data {data}: not 'fashion-mnist' and not a folder of images")
        spec = DataSpec("folder", str(Path(data).resolve()), size, channels, limit)
    train_data = load_data(spec, "train")
    if max_steps is None and max_minutes is None:
        epochs = epochs or 10.0
    if epochs is not None:
        steps = int(epochs * (len(train_data) // batch_size))
        max_steps = min(max_steps, steps) if max_steps is not None else max(steps, 1)
    if family.value not in DIFFUSION and (vae is not None or diffusion):
        raise GenlabError(
            "--vae, --width, --schedule, --prediction and --label-dropout are options of "
            "ddpm, ldm and txt2img"
        )
    tcfg = TrainConfig(
        batch_size=batch_size,
        lr=lr,
        max_steps=max_steps,
        max_minutes=max_minutes,
        ema_decay=ema or None,
        precision=precision,
        sample_every=sample_every,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    if family.value in DIFFUSION:
        from genlab.training.diffusion import DIFFUSION_TRAIN, create_diffusion_run

        tcfg = dataclasses.replace(tcfg, warmup_steps=DIFFUSION_TRAIN["warmup_steps"])
        return create_diffusion_run(
            out, family.value, spec, train_data, tcfg,
            conditional=conditional, vae_run=vae, overrides=diffusion,
        )  # fmt: skip

    gan = family in (Family.gan, Family.cgan)
    name = "gan" if gan else family.value
    config_cls, _ = FAMILIES[name]
    c, h, _ = train_data.shape
    fields = {f.name for f in dataclasses.fields(config_cls)}
    overrides = {"channels": c, "image_size": h}
    if latent_dim is not None:
        overrides["latent_dim"] = latent_dim
    if latent_channels is not None:
        if family != Family.vae:
            raise GenlabError("--latent-channels is an option of vae (a spatial latent)")
        overrides["latent_channels"] = latent_channels
    if family == Family.vae:
        overrides.update(beta=beta, likelihood=likelihood.value)
        if conditional:
            if not train_data.class_names:
                raise GenlabError("--conditional needs labelled data (class sub-folders)")
            overrides["num_classes"] = len(train_data.class_names)
    if family in (Family.classifier, Family.noisy_classifier):
        if len(train_data.class_names) < 2:
            raise GenlabError("a classifier needs labelled data: an image folder of class folders")
        overrides["num_classes"] = len(train_data.class_names)
    if gan:
        from genlab.training.gan import gan_options

        overrides.update(gan_options(loss, n_critic, lr_d, lr_g, spectral_norm))
        if family == Family.cgan:
            if not train_data.class_names:
                raise GenlabError(
                    f"cgan needs labelled data and {data} has none: put the images in class "
                    "sub-folders, or train an unconditional `gan`"
                )
            overrides["num_classes"] = len(train_data.class_names)
    elif loss is not None or n_critic is not None or lr_d is not None or lr_g is not None:
        raise GenlabError("--loss, --n-critic, --lr-d and --lr-g are options of gan and cgan")
    model_config = config_cls(**{k: v for k, v in overrides.items() if k in fields})
    if gan:
        from genlab.training.gan import GAN_TRAIN

        tcfg = dataclasses.replace(tcfg, **GAN_TRAIN)
    return create_run(
        out,
        name,
        model_config,
        tcfg,
        spec,
        extra={"class_names": list(train_data.class_names)},
    )


CYCLEGAN_BATCH = 16  # the paper trains with batch 1; 16 keeps a 28 px step near 0.3 s on 2 cores


def _create_cyclegan(
    domains: tuple[Path | None, Path | None, str | None, str | None],
    lambda_cycle: float | None,
    lambda_identity: float | None,
    given: set[str],
    family: Family,
    *,
    out: Path,
    data: str = "fashion-mnist",
    data_dir: Path | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    epochs: float | None = None,
    seed: int = 0,
    batch_size: int = CYCLEGAN_BATCH,
    lr: float = 2e-4,
    loss: str | None = None,
    size: int = 32,
    channels: int = 1,
    limit: int | None = None,
    ema: float | None = None,
    precision: str = "auto",
    sample_every: int = 1000,
    checkpoint_every: int = 1000,
    **others,
) -> Path:
    """Create a CycleGAN run from the `train` options: domains (folder A, folder B, class A,
    class B) are two folders (--data-a, --data-b), optionally one class of each, or two classes
    of --data (--class-a, --class-b). `given`: the options given on the command line; given
    options of other families (`others`) are refused."""
    import dataclasses

    from genlab.data import DataSpec
    from genlab.models.cyclegan import LOSSES, CycleGANConfig
    from genlab.training import TrainConfig
    from genlab.training.cyclegan import CYCLEGAN_TRAIN, create_cyclegan_run

    unused = [f"--{k.replace('_', '-')}" for k in others if k in given]
    if unused:
        raise GenlabError(f"{', '.join(unused)}: not options of cyclegan")
    folder_a, folder_b, class_a, class_b = domains
    if (folder_a is None) != (folder_b is None):
        raise GenlabError("give both --data-a and --data-b (a folder of images for each domain)")
    if folder_a is None and (class_a is None or class_b is None):
        raise GenlabError(
            "cyclegan needs two domains: --data-a DIR --data-b DIR, or --class-a and --class-b "
            'of --data (e.g. --class-a Sneaker --class-b "Ankle boot")'
        )

    def spec(folder: Path | None, cls: str | None) -> DataSpec:
        classes = (cls,) if cls is not None else None
        where = str(folder) if folder is not None else data
        if where == "fashion-mnist":
            idx_dir = str(data_dir) if data_dir else None
            return DataSpec(where, idx_dir, limit=limit, classes=classes)
        if not Path(where).is_dir():
            raise GenlabError(f"{where}: not 'fashion-mnist' and not a folder of images")
        return DataSpec("folder", str(Path(where).resolve()), size, channels, limit, classes)

    if loss is not None and loss not in LOSSES:
        raise GenlabError(f"--loss {loss}: cyclegan trains with {' or '.join(LOSSES)}")
    weights = {"lambda_cycle": lambda_cycle, "lambda_identity": lambda_identity}
    model = CycleGANConfig(loss=loss or "lsgan", lr=lr)
    model = dataclasses.replace(model, **{k: v for k, v in weights.items() if v is not None})
    if max_steps is None and max_minutes is None:
        epochs = epochs or 10.0
    tcfg = TrainConfig(
        batch_size=batch_size,
        lr=lr,  # unused by the loop (CycleGANConfig.lr is the rate), stored alike to not mislead
        max_steps=max_steps,
        max_minutes=max_minutes,
        precision=precision,
        sample_every=sample_every,
        checkpoint_every=checkpoint_every,
        seed=seed,
        **CYCLEGAN_TRAIN,
    )
    tcfg = dataclasses.replace(tcfg, ema_decay=ema or None)
    spec_a, spec_b = spec(folder_a, class_a), spec(folder_b, class_b)
    return create_cyclegan_run(out, spec_a, spec_b, model, tcfg, epochs=epochs)


# ----------------------------------------------------------------------------- pictures


SamplerOpt = Annotated[
    str | None, typer.Option(help="Diffusion: ddpm (all T steps), ddim or dpm (DPM-Solver++ 2M).")
]
StepsOpt = Annotated[int | None, typer.Option(help="Diffusion: steps of ddim/dpm (50).")]
EtaOpt = Annotated[float | None, typer.Option(help="Diffusion: DDIM eta (0 deterministic).")]
GuidanceOpt = Annotated[
    float | None,
    typer.Option(
        help="Diffusion: classifier-free guidance weight w (1 = none, 0 = unconditional)."
    ),
]
ClassifierOpt = Annotated[
    Path | None, typer.Option(help="Diffusion: a noisy-classifier run for classifier guidance.")
]
ClassifierScaleOpt = Annotated[
    float, typer.Option(help="Diffusion: classifier guidance scale s (with --classifier).")
]
PromptOpt = Annotated[str | None, typer.Option(help="txt2img: the prompt.")]
SAMPLER_NAMES = {"ddpm": "ddpm", "ddim": "ddim", "dpm": "dpmpp_2m", "dpmpp_2m": "dpmpp_2m"}


def _sampling_options(
    model,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    guidance: float | None = None,
    classifier: Path | None = None,
    classifier_scale: float = 1.0,
) -> dict:
    """Diffusion sampling options as `Diffusion.sample` keywords; refused for other models."""
    given = (sampler, steps, eta, guidance, classifier)
    if given == (None,) * 5:
        return {}
    from genlab.models.ddpm import Diffusion

    if not isinstance(model, Diffusion):
        raise GenlabError(
            "--sampler, --steps, --eta, --guidance and --classifier are options of diffusion runs"
        )
    options: dict = {}
    if sampler is not None:
        if sampler not in SAMPLER_NAMES:
            raise GenlabError(f"--sampler {sampler}: use ddpm, ddim or dpm")
        options["sampler"] = SAMPLER_NAMES[sampler]
    if steps is not None:
        if not 1 <= steps <= model.config.T:
            raise GenlabError(f"--steps {steps}: use 1 to {model.config.T}")
        options["steps"] = steps
    if eta is not None:
        options["eta"] = eta
    if guidance is not None:
        if not model.config.num_classes:
            raise GenlabError("--guidance needs a conditional model (ddpm/ldm --conditional)")
        options["guidance"] = guidance
    if classifier is not None:
        from genlab.models.noisy_classifier import NoisyClassifier
        from genlab.runs import read_config

        if read_config(classifier)["family"] != "noisy-classifier":
            raise GenlabError(
                f"--classifier {classifier}: not a noisy-classifier run; train one with "
                "`genlab train noisy-classifier --out RUN`"
            )
        clf = _load(classifier)
        assert isinstance(clf, NoisyClassifier)
        options.update(classifier=clf, classifier_scale=classifier_scale)
    return options


def _prompt_context(model, run: Path, prompt: str):
    """A prompt's (token states, mask) for a txt2img run, with a one-line error otherwise."""
    if not getattr(model.config, "text_dim", 0):
        raise GenlabError(f"{run}: not a text-to-image run; --prompt needs `genlab train txt2img`")
    if not prompt.strip():
        raise GenlabError("the prompt is empty; describe a garment, e.g. 'a pair of ankle boots'")
    return model.encode_prompt(prompt)


def _diffusion_model(run: Path):
    from genlab.models.ddpm import Diffusion

    model = _load(run)
    if not isinstance(model, Diffusion):
        raise GenlabError(f"{run}: not a diffusion run (ddpm, ldm or txt2img)")
    return model


def _class_ids(run: Path, model, class_: str | None, n: int):
    """(n,) class ids for --class NAME (every class in turn when None) or None if unconditional."""
    import torch

    K = model.config.num_classes
    if not K:
        if class_ is not None:
            raise GenlabError(f"{run}: --class needs a conditional model")
        return None
    if class_ is None:
        return torch.arange(n) % K
    return _named_class(run, class_, n)


def _named_class(run: Path, class_: str, n: int):
    """(n,) ids of the class named `class_` (case-insensitive) among a run's class names."""
    import torch

    from genlab.runs import read_config

    names = read_config(run).get("class_names", [])
    lowered = [c.lower() for c in names]
    if class_.lower() not in lowered:
        raise GenlabError(f"unknown class {class_!r}; classes: {', '.join(names)}")
    return torch.full((n,), lowered.index(class_.lower()), dtype=torch.long)


@app.command()
def sample(
    run: RunArg,
    out: OutOpt = Path("samples.png"),
    n: Annotated[int, typer.Option(help="Number of samples.")] = 64,
    seed: SeedOpt = 0,
    class_: Annotated[
        str | None, typer.Option("--class", help="Class name (conditional models).")
    ] = None,
    sampler: SamplerOpt = None,
    steps: StepsOpt = None,
    eta: EtaOpt = None,
    guidance: GuidanceOpt = None,
    classifier: ClassifierOpt = None,
    classifier_scale: ClassifierScaleOpt = 1.0,
    prompt: PromptOpt = None,
) -> None:
    """Draw n samples from a trained model into a grid PNG.

    Diffusion runs take a sampler (ddpm, ddim, dpm), steps, classifier-free --guidance, a
    noisy-classifier run for classifier guidance, and (txt2img) a --prompt."""
    import torch

    from genlab.images import BORDER, make_grid, save_png

    model = _load(run)
    if hasattr(model, "translate") and not hasattr(model, "sample"):
        raise GenlabError(
            f"{run}: a CycleGAN translates images and draws no samples: use "
            f"`genlab translate {run} --images DIR --out DIR`"
        )
    kwargs = _sampling_options(model, sampler, steps, eta, guidance, classifier, classifier_scale)
    if class_ is not None:
        if not getattr(model.config, "num_classes", 0) and classifier is None:
            raise GenlabError(
                f"{run}: --class needs a conditional model (train with --conditional, or cgan) "
                "or, for a diffusion model, a --classifier to guide it"
            )
        # the classes of the model, or of the classifier that guides an unconditional model
        kwargs["y"] = _named_class(classifier if classifier is not None else run, class_, n)
    if prompt is not None:
        kwargs["context"] = _prompt_context(model, run, prompt)
    with torch.inference_mode():
        x = model.sample(n, generator=torch.Generator().manual_seed(seed), **kwargs)
    grid_meta = {"grid_tile": str(x.shape[-1]), "grid_padding": str(BORDER)}
    save_png(out, make_grid(x), {**_meta(run, seed), **grid_meta})
    _echo(f"wrote {out}")


@app.command()
def forward(
    run: RunArg,
    out: OutOpt = Path("forward.png"),
    n: Annotated[int, typer.Option(help="Rows: test images, one per class in turn.")] = 4,
    columns: Annotated[int, typer.Option(help="Noise levels from t=0 to T-1.")] = 10,
    seed: SeedOpt = 0,
) -> None:
    """The forward process as a strip: test images noised from t=0 (clean) to T-1 (noise)."""
    import torch

    from genlab.diffusion_pictures import forward_strip, strip_timesteps
    from genlab.images import make_grid, save_png

    model = _diffusion_model(run)
    test = _test_data(run)
    index = _one_per_class(test.labels, n)
    ts = strip_timesteps(model.config.T, columns)
    g = torch.Generator().manual_seed(seed)
    x = forward_strip(model, test.images[index].float() / 255.0, ts, g)
    meta = {**_meta(run, seed), "timesteps": " ".join(map(str, ts))}
    save_png(out, make_grid(x, nrow=columns), meta)
    _echo(f"wrote {out} (t = {', '.join(map(str, ts))})")


def _one_per_class(labels, n: int):
    """Indices of n images, the classes in turn (the first image of each)."""
    import torch

    if labels.min() < 0:
        return torch.arange(n)
    firsts = [int((labels == k).nonzero()[0]) for k in labels.unique().tolist()]
    return torch.tensor([firsts[i % len(firsts)] for i in range(n)])


@app.command()
def denoise(
    run: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The GIF to write.")] = Path(
        "denoise.gif"
    ),
    strip: Annotated[
        Path | None, typer.Option(help="Also a PNG strip: rows = samples, columns = steps.")
    ] = None,
    n: Annotated[int, typer.Option(help="Samples in each frame.")] = 16,
    frames: Annotated[int, typer.Option(help="Frames from x_T to x_0.")] = 20,
    rows: Annotated[int, typer.Option(help="Samples in the strip.")] = 4,
    seed: SeedOpt = 0,
    class_: Annotated[str | None, typer.Option("--class", help="Class (conditional).")] = None,
    prompt: PromptOpt = None,
    sampler: SamplerOpt = None,
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
) -> None:
    """The reverse process: n samples from pure noise to images, as an animated GIF."""
    import torch

    from genlab.diffusion_pictures import reverse_frames, strip_of_frames
    from genlab.images import make_grid, save_gif, save_png

    model = _diffusion_model(run)
    options = _sampling_options(model, sampler, steps, None, guidance)
    y = _class_ids(run, model, class_, n) if prompt is None else None
    context = _prompt_context(model, run, prompt) if prompt is not None else None
    g = torch.Generator().manual_seed(seed)
    pictures, ts = reverse_frames(model, n, frames, g, y=y, context=context, **options)
    gif = [make_grid(p) for p in pictures] + [make_grid(pictures[-1])] * 10  # hold the end
    save_gif(out, gif, duration_ms=120)
    _echo(f"wrote {out} ({len(pictures)} frames, t = {ts[0]} ... {ts[-1]})")
    if strip is not None:
        x = strip_of_frames(pictures, min(rows, n))
        save_png(strip, make_grid(x, nrow=len(pictures)), _meta(run, seed))
        _echo(f"wrote {strip}")


@app.command()
def guidance(
    run: RunArg,
    out: OutOpt = Path("guidance.png"),
    scales: Annotated[
        str, typer.Option(help="Comma-separated guidance weights, one row each.")
    ] = "0,1,2,3,5",
    columns: Annotated[int, typer.Option(help="Samples per row (classes in turn).")] = 10,
    class_: Annotated[str | None, typer.Option("--class", help="One class for all.")] = None,
    prompt: PromptOpt = None,
    classifier: ClassifierOpt = None,
    seed: SeedOpt = 0,
    sampler: SamplerOpt = None,
    steps: StepsOpt = None,
) -> None:
    """A grid sweeping the guidance scale: one row per scale, the same noise in every row.

    Classifier-free guidance by default; with --classifier the scales are classifier scales."""
    from genlab.diffusion_pictures import guidance_sweep
    from genlab.images import make_grid, save_png

    model = _diffusion_model(run)
    try:
        ws = [float(v) for v in scales.split(",") if v.strip()]
    except ValueError:
        raise GenlabError(f"--scales {scales!r}: give numbers separated by commas") from None
    if not ws:
        raise GenlabError("--scales is empty")
    if classifier is None and not model.config.num_classes:
        raise GenlabError(
            f"{run}: unconditional; guide it with --classifier RUN (a noisy-classifier run) "
            "or train with --conditional"
        )
    options = _sampling_options(model, sampler, steps)
    y = _class_ids(run, model, class_, columns) if prompt is None else None
    context = _prompt_context(model, run, prompt) if prompt is not None else None
    if classifier is not None:
        clf = _sampling_options(model, classifier=classifier)["classifier"]
        if y is None:
            y = _class_ids(run, model, class_, columns)
        if y is None:  # an unconditional model: the classifier's classes in turn
            import torch

            y = torch.arange(columns) % clf.config.num_classes
        fns = [
            model.classifier_guided(model.model_fn(), clf, y, columns, w) for w in ws
        ]  # fmt: skip
        x = guidance_sweep(model, ws, columns, seed, model_fns=fns, **options)
    else:
        x = guidance_sweep(model, ws, columns, seed, y=y, context=context, **options)
    meta = {**_meta(run, seed), "scales": ",".join(map(str, ws))}
    save_png(out, make_grid(x, nrow=columns), meta)
    _echo(f"wrote {out} (rows: w = {', '.join(map(str, ws))})")


@app.command()
def txt2img(
    run: RunArg,
    prompt: Annotated[str, typer.Argument(help='What to draw, e.g. "a pair of ankle boots".')],
    out: OutOpt = Path("txt2img.png"),
    n: Annotated[int, typer.Option(help="Number of images.")] = 16,
    seed: SeedOpt = 0,
    guidance: GuidanceOpt = None,
    sampler: SamplerOpt = None,
    steps: StepsOpt = None,
) -> None:
    """Draw n images for a prompt with a txt2img run (classifier-free guidance, default w=3)."""
    import torch

    from genlab.images import BORDER, make_grid, save_png

    model = _diffusion_model(run)
    context = _prompt_context(model, run, prompt)
    options = _sampling_options(model, sampler, steps, None, guidance)
    options.setdefault("guidance", TXT2IMG_GUIDANCE)
    with torch.inference_mode():
        x = model.sample(
            n, generator=torch.Generator().manual_seed(seed), context=context, **options
        )
    meta = {**_meta(run, seed), "prompt": prompt, "guidance": str(options["guidance"])}
    meta.update(grid_tile=str(x.shape[-1]), grid_padding=str(BORDER))
    save_png(out, make_grid(x), meta)
    _echo(f"wrote {out}")


TXT2IMG_GUIDANCE = 3.0


@app.command()
def translate(
    run: RunArg,
    images: Annotated[
        Path, typer.Option(help="A folder of images to translate (searched recursively).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The folder to write PNGs to.")],
    direction: Annotated[str, typer.Option(help="ab (domain A to B) or ba (B to A).")] = "ab",
    grid: Annotated[
        Path | None,
        typer.Option(help="Before/after grid PNG of the first 32 (default: OUT_grid.png)."),
    ] = None,
) -> None:
    """Translate every image of a folder with a CycleGAN run, keeping the file names.

    Images are resized and centre-cropped to the run's size and channels, as in training.
    """
    import torch

    from genlab.data.folder import read_images
    from genlab.images import BORDER, make_grid, save_png, to_uint8
    from genlab.runs import read_config

    model = _load(run)
    if not hasattr(model, "translate"):
        raise GenlabError(f"{run}: a {read_config(run)['family']} run; translate needs a cyclegan")
    if direction not in ("ab", "ba"):
        raise GenlabError(f"--direction {direction}: use ab (A to B) or ba (B to A)")
    names, x = read_images(images, model.config.image_size, model.config.channels)
    with torch.inference_mode():
        y = torch.cat([model.translate(c.float() / 255, direction) for c in x.split(64)])
    label = dict(zip("ab", read_config(run).get("domains", ["A", "B"]), strict=True))
    meta = {**_meta(run, None), "direction": f"{label[direction[0]]} -> {label[direction[1]]}"}
    targets = [Path(n).with_suffix(".png") for n in names]
    if len(set(targets)) < len(targets):  # a.jpg and a.png: keep the suffixes
        targets = [Path(n + ".png") for n in names]
    for name, target, image in zip(names, targets, y, strict=True):
        save_png(out / target, to_uint8(image), {**meta, "source": name})
    # The grid: rows of up to 8 inputs, each above its translations; blank tiles pad the last.
    cols, shown = min(8, len(y)), min(32, len(y))
    rows = []
    for i in range(0, shown, cols):
        pad = torch.ones(cols - len(y[i : i + cols]), *y.shape[1:])
        rows += [x[i : i + cols].float() / 255, pad, y[i : i + cols], pad]
    grid = grid or out.parent / f"{out.name}_grid.png"
    grid_meta = {"grid_tile": str(y.shape[-1]), "grid_padding": str(BORDER)}
    save_png(grid, make_grid(torch.cat(rows), nrow=cols), {**meta, **grid_meta})
    _echo(f"translated {len(y)} images ({meta['direction']}) into {out}; wrote {grid}")


@app.command()
def reconstruct(
    run: RunArg, out: OutOpt = Path("reconstructions.png"), n: int = 16, seed: SeedOpt = 0
) -> None:
    """Test images (odd rows) above their reconstructions (even rows)."""
    import torch

    from genlab.images import make_grid, save_png

    model, data = _latent_model_and_data(run)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[:n]
    batch = data.batch(idx)
    with torch.inference_mode():
        recon = model.decode(model.encode(batch.x, batch.y), batch.y)
    rows = []
    per_row = 8
    for i in range(0, n, per_row):
        rows += [batch.x[i : i + per_row], recon[i : i + per_row]]
    save_png(out, make_grid(torch.cat(rows), nrow=per_row), _meta(run, seed))
    _echo(f"wrote {out}")


@app.command()
def interpolate(
    run: RunArg,
    out: OutOpt = Path("interpolation.png"),
    pairs: Annotated[int, typer.Option(help="Rows (image pairs).")] = 6,
    steps: Annotated[int, typer.Option(help="Images per row.")] = 10,
    method: Method = Method.slerp,
    seed: SeedOpt = 0,
) -> None:
    """Decode paths between the latents of random pairs of test images (one row each).

    For a GAN (no encoder) the paths join random latents z ~ N(0, I).
    """
    import torch

    from genlab.images import make_grid, save_png
    from genlab.latent import interpolate as interp

    model = _load(run)
    if _decoder_only(model):  # a GAN: paths between latents drawn from the prior
        path = _prior_paths(model, pairs, steps, method.value, seed)
    else:
        data = _test_data(run)
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
        a, b = data.batch(idx[:pairs]), data.batch(idx[pairs : 2 * pairs])
        path = interp(model, a.x, b.x, steps=steps, method=method.value, y0=a.y, y1=b.y)
    save_png(out, make_grid(path.flatten(0, 1), nrow=steps), _meta(run, seed))
    _echo(f"wrote {out}")


@app.command()
def morph(
    run: RunArg,
    out: OutOpt = Path("morph.png"),
    a: Annotated[int | None, typer.Option(help="Index of the first test image.")] = None,
    b: Annotated[int | None, typer.Option(help="Index of the second test image.")] = None,
    from_: Annotated[str, typer.Option("--from", help="Class of the first image.")] = ("Sneaker"),
    to: Annotated[str, typer.Option(help="Class of the second image.")] = "Ankle boot",
    steps: int = 10,
    method: Method = Method.slerp,
    seed: SeedOpt = 0,
) -> None:
    """A strip morphing one chosen test image into another: real, decoded path, real."""
    import torch

    from genlab.images import make_grid, save_png
    from genlab.latent import class_index, morph_strip

    model, data = _latent_model_and_data(run)
    g = torch.Generator().manual_seed(seed)

    def pick(index: int | None, cls: str) -> int:
        if index is not None:
            if not 0 <= index < len(data):
                raise GenlabError(f"image index {index} out of range 0..{len(data) - 1}")
            return index
        if not data.class_names:
            return int(torch.randint(len(data), (1,), generator=g))
        members = (data.labels == class_index(data.class_names, cls)).nonzero().flatten()
        return int(members[torch.randint(len(members), (1,), generator=g)])

    ia, ib = pick(a, from_), pick(b, to)
    xa, xb = data.batch(torch.tensor([ia])), data.batch(torch.tensor([ib]))
    strip = morph_strip(model, xa.x, xb.x, steps=steps, method=method.value, ya=xa.y, yb=xb.y)
    save_png(
        out, make_grid(strip, nrow=strip.shape[0]), {**_meta(run, seed), "images": f"{ia},{ib}"}
    )
    _echo(f"wrote {out} (test images {ia} -> {ib})")


@app.command()
def arithmetic(
    run: RunArg,
    out: OutOpt = Path("arithmetic.png"),
    from_: Annotated[str, typer.Option("--from", help="Class to start from.")] = ("Sneaker"),
    to: Annotated[str, typer.Option(help="Class to move towards.")] = "Ankle boot",
    n: Annotated[int, typer.Option(help="Rows (source images).")] = 6,
    seed: SeedOpt = 0,
) -> None:
    """Latent vector arithmetic: add (mean z of TO - mean z of FROM) with growing strength.

    For an unconditional GAN on Fashion-MNIST the class means are over latents whose samples the
    shipped classifier labels FROM or TO (Radford et al. 2016, section 6.3).
    """
    import torch

    from genlab.images import make_grid, save_png
    from genlab.latent import class_arithmetic

    model = _load(run)
    if _decoder_only(model):
        rows = _sampled_arithmetic(run, model, from_, to, n, seed)
        save_png(out, make_grid(rows.flatten(0, 1), nrow=rows.shape[1]), _meta(run, seed))
        _echo(
            f"wrote {out}: each row moves a generated {from_} towards {to} along the "
            "difference of class means of z (classes from the shipped classifier)"
        )
        return
    data = _test_data(run)
    rows = class_arithmetic(
        model, data, from_, to, n=n, generator=torch.Generator().manual_seed(seed)
    )
    save_png(out, make_grid(rows.flatten(0, 1), nrow=rows.shape[1]), _meta(run, seed))
    _echo(f"wrote {out}: each row starts with a {from_} image, then strengths towards {to}")


@app.command("latent-map")
def latent_map(
    run: RunArg,
    out: OutOpt = Path("latent_map.png"),
    n: Annotated[int, typer.Option(help="Test images to embed.")] = 5000,
) -> None:
    """A 2-D map of the latent space coloured by class (PCA when the latent is not 2-D)."""
    from genlab.latent import embed, plot_latent_map, project_2d

    model = _load(run)
    _needs(model, "encode")
    data = _test_data(run)
    n = min(n, len(data))
    z = embed(model, _subset(data, n))
    coords, method = project_2d(z)
    plot_latent_map(
        coords,
        data.labels[:n],
        data.class_names,
        out,
        title=f"{run.name}: latent space ({method})",
        metadata=_meta(run, None),
    )
    _echo(f"wrote {out} ({method} of {z.shape[1]}-D latents, {n} test images)")


def _subset(data, n):
    from genlab.data import ImageData

    return ImageData(data.images[:n], data.labels[:n], data.class_names)


@app.command()
def walk(
    run: RunArg,
    out: OutOpt = Path("walk.png"),
    dims: Annotated[int, typer.Option(help="How many latent dimensions to walk.")] = 8,
    steps: int = 9,
    seed: SeedOpt = 0,
) -> None:
    """Walk along single latent dimensions around a test image's latent (one row each).

    For a GAN (no encoder) the walk starts from a random z ~ N(0, I).
    """
    import torch

    from genlab.images import make_grid, save_png
    from genlab.latent import latent_walk

    model = _load(run)
    if _decoder_only(model):  # a GAN: around z ~ N(0, I), in units of the prior's spread (1)
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(model.config.latent_dim, generator=g)
        y = _random_classes(model, 1, g)
        y = None if y is None else int(y)
        grid = latent_walk(model, z, list(range(min(dims, z.shape[0]))), steps=steps, y=y)
        save_png(out, make_grid(grid.flatten(0, 1), nrow=steps), _meta(run, seed))
        _echo(f"wrote {out}")
        return
    data = _test_data(run)
    i = int(torch.randint(len(data), (1,), generator=torch.Generator().manual_seed(seed)))
    b = data.batch(torch.tensor([i]))
    from genlab.latent import embed as embed_images

    std = embed_images(model, _subset(data, min(2000, len(data)))).std(0)
    with torch.inference_mode():
        z = model.encode(b.x, b.y)[0]
    # The most used dimensions (largest spread over the data) first; steps in units of std.
    order = std.argsort(descending=True)[: min(dims, z.shape[0])].tolist()
    grid = latent_walk(model, z, order, steps=steps, std=std, y=b.y)
    save_png(out, make_grid(grid.flatten(0, 1), nrow=steps), _meta(run, seed))
    _echo(f"wrote {out}")


@app.command()
def embed(
    run: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("embeddings.csv"),
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
) -> None:
    """Dimensionality reduction: write the latent vector of every image, with labels, as CSV."""
    from genlab.data import DataSpec, load_data
    from genlab.latent import embed as embed_images
    from genlab.plots import save_embeddings_csv
    from genlab.runs import config_from_dict, read_config

    if split not in ("train", "test"):
        raise GenlabError(f"--split {split}: use train or test")
    model = _load(run)
    _needs(model, "encode")
    spec = config_from_dict(DataSpec, read_config(run).get("data", {}))
    data = load_data(spec, split)
    z = embed_images(model, data)
    save_embeddings_csv(out, z, data.labels, data.class_names)
    _echo(f"wrote {out}: {z.shape[0]} rows, {z.shape[1]} latent dimensions")


@app.command()
def nll(
    run: RunArg,
    k: Annotated[int, typer.Option(help="Importance samples.")] = 64,
    n: Annotated[int, typer.Option(help="Test images (0 = all).")] = 2000,
    seed: SeedOpt = 0,
) -> None:
    """Test-set negative ELBO and importance-weighted NLL (IWAE) of a VAE, nats and bits/dim."""
    import torch

    from genlab.models.vae import VAE, evaluate_nll

    model = _load(run)
    if not isinstance(model, VAE):
        raise GenlabError(f"{run}: nll needs a VAE run")
    data = _test_data(run)
    n = len(data) if n <= 0 else min(n, len(data))
    r = evaluate_nll(
        model, data.images[:n], data.labels[:n], k=k, generator=torch.Generator().manual_seed(seed)
    )
    _echo(
        f"{n} test images: -ELBO {r.neg_elbo_nats:.2f} nats ({r.neg_elbo_bpd:.4f} bits/dim), "
        f"IWAE NLL (k={k}) {r.nll_nats:.2f} nats ({r.nll_bpd:.4f} bits/dim)"
    )


@app.command()
def plot(run: RunArg, out: OutOpt = Path("loss.png")) -> None:
    """Loss curves of a run from its metrics.csv (for a GAN: D and G, with a reading guide)."""
    from genlab.plots import plot_metrics
    from genlab.runs import read_config

    csv_path = run / "metrics.csv"
    if not csv_path.is_file():
        raise GenlabError(f"{csv_path}: missing; the run has not logged any step yet")
    if read_config(run)["family"] == "gan":
        from genlab.training.gan_plots import plot_gan_curves

        plot_gan_curves(run, out, metadata=_meta(run, None))
    else:
        plot_metrics(csv_path, out, metadata=_meta(run, None))
    _echo(f"wrote {out}")


@app.command("gan-gradients")
def gan_gradients(
    runs: Annotated[list[Path], typer.Argument(help="GAN runs (minimax or ns loss).")],
    out: OutOpt = Path("gan_gradients.png"),
) -> None:
    """Why the minimax loss saturates: G's gradient against D(G(z)), with measured points.

    The curves are |d loss_G / d logit| for the minimax and non-saturating losses; each run adds
    one point per metrics.csv row: mean D(G(z)) and G's gradient norm at its updates.
    """
    from genlab.models.gan import plot_gradient_picture
    from genlab.runs import read_config
    from genlab.training.gan_plots import gradient_points

    measured = {}
    for run in runs:
        config = read_config(run)
        if config["family"] != "gan":
            raise GenlabError(f"{run}: a {config['family']} run; gan-gradients needs GAN runs")
        measured[f"{run.name} ({config['model']['loss']})"] = gradient_points(run)
    plot_gradient_picture(out, measured, metadata=_meta(runs[0], None))
    _echo(f"wrote {out}: {sum(len(d) for d, _ in measured.values())} measured points")


@app.command("toy-gan")
def toy_gan(
    data: Annotated[str, typer.Option(help="ring (8 modes) or grid (25 modes).")] = "ring",
    loss: Annotated[str, typer.Option(help="minimax, ns, hinge or wgan-gp.")] = "ns",
    steps: Annotated[int, typer.Option(help="Generator steps.")] = 2000,
    n_critic: Annotated[int, typer.Option(help="D steps per G step.")] = 1,
    lr: Annotated[float, typer.Option(help="Adam learning rate of both players.")] = 2e-3,
    frames: Annotated[int, typer.Option(help="Snapshots in the GIF (about).")] = 20,
    seed: SeedOpt = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="The GIF to write.")] = Path(
        "toy_gan.gif"
    ),
) -> None:
    """Mode collapse made visible: a small GAN on a 2-D mixture of Gaussians, as a GIF."""
    from genlab.toy2d import animate, train_toy

    if frames < 1:
        raise GenlabError(f"--frames must be >= 1, got {frames}")
    result = train_toy(
        data, loss, steps=steps, seed=seed, n_critic=n_critic, lr=lr,
        snapshot_every=max(1, steps // frames),
    )  # fmt: skip
    animate(result, out)
    cov, k = result.coverage[-1], len(result.centres)
    _echo(
        f"wrote {out} ({len(result.snapshots)} frames): after {steps} steps the {loss} GAN "
        f"covers {cov.modes_covered}/{k} modes, {cov.high_quality:.0%} of samples within 3 std"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the demo.")] = Path(
        "demo"
    ),
    minutes: Annotated[float, typer.Option(help="Training budget in minutes.")] = 3.0,
    data_dir: Annotated[Path | None, typer.Option(help="Fashion-MNIST IDX directory.")] = None,
    retrain: Annotated[bool, typer.Option(help="Train again even if the demo run exists.")] = False,
    eval_n: Annotated[int, typer.Option(help="Samples for `genlab eval` (0 skips it).")] = 10_000,
    gan_minutes: Annotated[
        float, typer.Option(help="Training budget of the demo's GAN (0 skips the GAN section).")
    ] = 3.0,
    diffusion_minutes: Annotated[
        float,
        typer.Option(
            help="Budget of each diffusion run: the first-stage VAE, a latent diffusion model "
            "and a text-to-image model (0 skips the diffusion section)."
        ),
    ] = 3.0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a VAE, a GAN and latent diffusion models on Fashion-MNIST for a few minutes each,
    write every picture, evaluate the VAE, and write index.html."""
    import time

    from genlab.demo import GAN_SECTIONS, SECTIONS, write_index

    t0 = time.perf_counter()
    run = out / "run"
    _demo_run(run, Family.vae, minutes, data_dir, retrain, progress)
    sample(run, out / "samples.png", 64, 0, None)
    reconstruct(run, out / "reconstructions.png", 32, 0)
    interpolate(run, out / "interpolation.png", 6, 10, Method.slerp, 0)
    morph(run, out / "morph.png", None, None, "Sneaker", "Ankle boot", 10, Method.slerp, 0)
    arithmetic(run, out / "arithmetic.png", "Sneaker", "Ankle boot", 6, 0)
    latent_map(run, out / "latent_map.png", 5000)
    walk(run, out / "walk.png", 8, 9, 0)
    plot(run, out / "loss.png")
    table = None
    if eval_n:
        from genlab.evaluation.evaluate import EvalConfig, evaluate_run
        from genlab.evaluation.report import eval_table

        _echo(f"evaluating {eval_n} samples (genlab eval {run} --n {eval_n})")
        table = eval_table(evaluate_run(run, EvalConfig(n=eval_n), progress=progress))
        (out / "evaluation.txt").write_text(table + "\n")
        _echo(table)
    sections = list(SECTIONS)
    if gan_minutes:
        gan_run = out / "gan-run"
        _demo_run(gan_run, Family.gan, gan_minutes, data_dir, retrain, progress)
        sample(gan_run, out / "gan_samples.png", 64, 0, None)
        interpolate(gan_run, out / "gan_interpolation.png", 6, 10, Method.slerp, 0)
        plot(gan_run, out / "gan_curves.png")
        gan_gradients([gan_run], out / "gan_gradients.png")
        sections += GAN_SECTIONS
    if diffusion_minutes:
        sections += _demo_diffusion(out, diffusion_minutes, data_dir, retrain, progress)
    index = write_index(out, run, sections, seconds=time.perf_counter() - t0, evaluation=table)
    _echo(f"demo ready: open {index}")


def _demo_diffusion(
    out: Path, minutes: float, data_dir: Path | None, retrain: bool, progress: bool
) -> list[tuple[str, str, str, str]]:
    """The demo's diffusion section: a spatial VAE, a class-conditional latent diffusion model
    and a text-to-image model, `minutes` each, and their pictures."""
    from genlab.demo import DIFFUSION_SECTIONS
    from genlab.training.diffusion import DIFFUSION_TRAIN

    first, ldm, t2i = out / "vae-4x7x7", out / "ldm-run", out / "txt2img-run"
    lr = DIFFUSION_TRAIN["lr"]
    _demo_run(first, Family.vae, minutes, data_dir, retrain, progress, **DEMO_FIRST_STAGE)
    retrain = retrain or _stale(ldm, first) or _stale(t2i, first)
    _demo_run(ldm, Family.ldm, minutes, data_dir, retrain, progress, vae=first, lr=lr,
              conditional=True)  # fmt: skip
    _demo_run(t2i, Family.txt2img, minutes, data_dir, retrain, progress, vae=first, lr=lr)
    none = {"class_": None, "prompt": None, "sampler": None, "steps": None, "guidance": None}
    forward(ldm, out=out / "ldm_forward.png", n=4, columns=10, seed=0)
    strip = out / "ldm_denoise.png"
    denoise(ldm, out / "ldm_denoise.gif", strip=strip, n=16, frames=20, rows=4, seed=0, **none)
    del none["guidance"]
    guidance(ldm, out / "ldm_guidance.png", "0,1,2,4", 10, classifier=None, seed=0, **none)
    sample(ldm, out / "ldm_samples.png", 64, 0, None)
    for name, prompt in DEMO_PROMPTS.items():
        txt2img(t2i, prompt, out / f"txt2img_{name}.png", n=16, seed=0, guidance=None,
                sampler=None, steps=None)  # fmt: skip
    return DIFFUSION_SECTIONS


DEMO_FIRST_STAGE = {"latent_channels": 4, "beta": 0.1}
"""The demo's latent diffusion first stage: a 4x7x7 latent, a light KL weight for sharpness."""
DEMO_PROMPTS = {"boots": "a pair of ankle boots", "sweater": "a wool sweater"}
"""One prompt worded like the training captions, one never seen in training."""


def _stale(run: Path, first_stage: Path) -> bool:
    """Whether a latent run was made from an older first stage than the one there now."""
    from genlab.training.checkpoint import checkpoint_dir

    if not (run / "config.json").is_file() or checkpoint_dir(first_stage) is None:
        return False
    return (run / "config.json").stat().st_mtime < (first_stage / "config.json").stat().st_mtime


def _demo_run(
    run: Path,
    family: Family,
    minutes: float,
    data_dir: Path | None,
    retrain: bool,
    progress: bool,
    **options,
) -> None:
    """Train a demo run for `minutes`, or reuse the one already there."""
    import shutil

    from genlab.runs import read_config, write_json
    from genlab.training import train as run_training
    from genlab.training.checkpoint import checkpoint_dir

    done = (run / "config.json").is_file() and checkpoint_dir(run) is not None
    if done and not retrain:
        _echo(f"reusing the trained demo run {run} (use --retrain to train again)")
        return
    if run.exists():
        if not (run / "config.json").is_file() or not read_config(run).get("demo"):
            raise GenlabError(f"{run}: exists and is not a demo run; choose another --out")
        shutil.rmtree(run)
    name = family.value.upper()
    _echo(f"training a {name} on Fashion-MNIST for {minutes:g} minutes into {run}")
    _create(family, out=run, data_dir=data_dir, max_minutes=minutes, sample_every=10**9, **options)
    write_json(run / "config.json", {**read_config(run), "demo": True})
    result = run_training(run, progress=progress)
    _echo(f"trained {result.step} steps at {result.images_per_s:.0f} images/s")


# ----------------------------------------------------------------------------- evaluation

NOpt = Annotated[int, typer.Option(help="Samples to generate and score.")]
FeaturesOpt = Annotated[
    Path | None,
    typer.Option(help="A classifier run trained on the data (`genlab train classifier`)."),
]
InceptionOpt = Annotated[
    Path | None,
    typer.Option(help="Inception-v3 FID weights (pytorch-fid's pt_inception-2015-12-05 file)."),
]


@app.command("eval")
def eval_(
    run: Annotated[Path | None, typer.Argument(help="A run directory to sample from.")] = None,
    images: Annotated[
        Path | None, typer.Option(help="Score these instead: a folder of images or a grid PNG.")
    ] = None,
    n: NOpt = 10_000,
    seed: SeedOpt = 0,
    json_: Annotated[
        Path | None, typer.Option("--json", help="Also write the record to this file.")
    ] = None,
    tile: Annotated[int | None, typer.Option(help="Grid tile side in pixels.")] = None,
    padding: Annotated[int | None, typer.Option(help="Grid border in pixels.")] = None,
    data: Annotated[
        str, typer.Option(help="Real data for --images: 'fashion-mnist' or a folder.")
    ] = ("fashion-mnist"),
    data_dir: Annotated[Path | None, typer.Option(help="Fashion-MNIST IDX directory.")] = None,
    size: Annotated[int, typer.Option(help="Image size for folder data.")] = 32,
    channels: Annotated[int, typer.Option(help="1 or 3 for folder data.")] = 1,
    features: FeaturesOpt = None,
    inception_weights: InceptionOpt = None,
    references: Annotated[
        bool, typer.Option(help="Score the floor and ceilings too (cached after the first time).")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    sampler: SamplerOpt = None,
    steps: StepsOpt = None,
    eta: EtaOpt = None,
    guidance: GuidanceOpt = None,
    classifier: ClassifierOpt = None,
    classifier_scale: ClassifierScaleOpt = 1.0,
) -> None:
    """Score a run's samples (or --images) with every metric, next to real-data references.

    Diffusion runs take the sampling options of `genlab sample`; the record's file name then
    names them (RUN/eval/eval-n<n>-seed<s>-sampler_ddim-steps_10.json)."""
    from genlab.evaluation.evaluate import (
        EvalConfig,
        evaluate_images,
        evaluate_run,
        record_path,
        sampling_tag,
    )
    from genlab.evaluation.report import eval_table
    from genlab.runs import write_json

    if (run is None) == (images is None):
        raise GenlabError("give a run directory or --images DIR_OR_GRID (one of them)")
    config = EvalConfig(n=n, seed=seed, references=references)
    given = (sampler, steps, eta, guidance, classifier)
    if images is not None and given != (None,) * 5:
        raise GenlabError("--sampler, --steps, --eta, --guidance and --classifier need a run")
    if run is not None:
        model = _load(run)
        options = _sampling_options(model, *given, classifier_scale)
        described = {
            k: str(v) for k, v in zip(("sampler", "steps", "eta", "w", "classifier"), given,
                                      strict=True) if v is not None
        }  # fmt: skip
        if classifier is not None:
            described["classifier"] = Path(classifier).name
            described["s"] = str(classifier_scale)
        record = evaluate_run(
            run, config, features_run=features, inception_weights=inception_weights,
            progress=progress, sample_options=options, described=described, model=model,
        )  # fmt: skip
        where = record_path(run, config, sampling_tag(described))
    else:
        record = evaluate_images(
            images, config, data=data, data_dir=data_dir, size=size, channels=channels,
            tile=tile, padding=padding, features_run=features,
            inception_weights=inception_weights, progress=progress,
        )  # fmt: skip
        where = None
    _echo(eval_table(record))
    if json_ is not None:
        write_json(json_, record)
        where = json_
    if where is not None:
        _echo(f"wrote {where}")


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories to rank.")],
    n: NOpt = 10_000,
    seed: SeedOpt = 0,
    html: Annotated[Path, typer.Option(help="The HTML page to write.")] = Path("compare.html"),
    fresh: Annotated[
        bool, typer.Option(help="Evaluate again even where a run has a current record.")
    ] = False,
    features: FeaturesOpt = None,
    inception_weights: InceptionOpt = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Rank runs on the same metrics: a table here and an HTML page with their samples."""
    import json

    from genlab.atomic import atomic_path
    from genlab.evaluation.evaluate import EvalConfig, evaluate_run, record_path, run_step
    from genlab.evaluation.report import compare_html, compare_table

    config = EvalConfig(n=n, seed=seed)
    records, grids, evaluators = [], {}, {}
    for run in runs:
        path = record_path(run, config)
        record = None
        if path.is_file() and not fresh and features is None and inception_weights is None:
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                record = None
            if record and record.get("source", {}).get("step") != run_step(run):
                record = None  # trained further since: evaluate again
        if record is None:
            record = evaluate_run(
                run, config, features_run=features, inception_weights=inception_weights,
                progress=progress, evaluators=evaluators,
            )  # fmt: skip
        else:
            _echo(f"{run}: using {path} (current; --fresh evaluates again)")
        records.append(record)
        grids[record["source"]["run"]] = path.parent / f"samples-seed{seed}.png"
    _echo(compare_table(records))
    html.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(html) as tmp:
        tmp.write_text(compare_html(records, grids))
    _echo(f"wrote {html}")


# ----------------------------------------------------------------------------- data


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Data set name: fashion-mnist.")] = "fashion-mnist",
    dest: Annotated[Path | None, typer.Option(help="Directory (default: the user cache).")] = None,
    url: Annotated[str | None, typer.Option(help="Mirror base URL.")] = None,
) -> None:
    """Download a data set and verify its published checksums."""
    from genlab.data.fashion_mnist import OFFICIAL_URL, fetch_fashion_mnist

    if name != "fashion-mnist":
        raise GenlabError(f"unknown data set {name!r}: only fashion-mnist can be fetched")
    where = fetch_fashion_mnist(str(dest) if dest else None, base_url=url or OFFICIAL_URL)
    _echo(f"fashion-mnist ready in {where}")


@data_app.command("info")
def data_info(data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Where Fashion-MNIST is found and what it holds."""
    from genlab.data.fashion_mnist import find_data_dir, load_fashion_mnist

    where = find_data_dir(str(data_dir) if data_dir else None)
    for split in ("train", "test"):
        d = load_fashion_mnist(split, data_dir=str(where))
        _echo(f"{split}: {len(d)} images {tuple(d.shape)} from {where}")


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for user errors, with one line on stderr)."""
    try:
        code = app(args=argv, prog_name="genlab", standalone_mode=False)
    except GenlabError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except typer.TyperException as e:  # usage errors: typer prints usage and the problem
        e.show()
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        typer.echo("interrupted; the last checkpoint is kept", err=True)
        return 130
    except OSError as e:
        name = f"{e.filename}: " if getattr(e, "filename", None) else ""
        typer.echo(f"error: {name}{e.strerror or e}", err=True)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
