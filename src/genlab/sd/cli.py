"""`genlab sd ...`: run a local Stable Diffusion model. Thin: parses, calls genlab.sd, prints.

torch and diffusers are imported inside the commands so that `genlab --help` stays instant.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from genlab.errors import GenlabError
from genlab.sd.schedulers import DEFAULT_SCHEDULER, SCHEDULERS

sd_app = typer.Typer(
    help="Generate with a local Stable Diffusion model (strictly offline).",
    no_args_is_help=True,
)

ModelOpt = Annotated[
    Path,
    typer.Option(help="A diffusers folder (model_index.json) or a .safetensors checkpoint."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(help="For a single checkpoint file: a folder with its diffusers configs."),
]
PromptArg = Annotated[str, typer.Argument(help="What to draw.")]
NegativeOpt = Annotated[str, typer.Option(help="What to steer away from.")]
StepsOpt = Annotated[int, typer.Option(help="Denoising steps.")]
GuidanceOpt = Annotated[
    float, typer.Option(help="Classifier-free guidance weight (1 or less: no guidance).")
]
SchedulerOpt = Annotated[str, typer.Option(help="Sampler: " + ", ".join(SCHEDULERS) + ".")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the first picture; the next ones add 1.")]
SizeOpt = Annotated[int | None, typer.Option(help="Pixels, a multiple of 8 (default: native).")]
NOpt = Annotated[int, typer.Option("--n", help="How many pictures (seeds seed, seed+1, ...).")]
OutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="PNG to write; with --n > 1, NAME-0.png, NAME-1.png.")
]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA if present), cpu or cuda.")]
PrecisionOpt = Annotated[
    str, typer.Option(help="auto (measured on the CPU), fp32, bf16, or fp16 (CUDA).")
]
PickleOpt = Annotated[
    bool, typer.Option(help="Accept pickled weights (.ckpt/.bin): they can run code.")
]
CheckerOpt = Annotated[bool, typer.Option(help="Run the model's safety checker if it has one.")]
ProgressOpt = Annotated[bool, typer.Option(help="Show a progress bar per picture.")]


def _quiet_libraries() -> None:
    """diffusers/transformers log warnings and progress bars of their own: keep errors only."""
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _load(model: Path, config, device, precision, allow_pickle, safety_checker):
    from genlab.sd.loading import load, offline

    offline()
    _quiet_libraries()
    sd = load(
        model, config=config, device=device, precision=precision, allow_pickle=allow_pickle,
        safety_checker=safety_checker,
    )  # fmt: skip
    typer.echo(f"loaded {model} on {sd.device} in {sd.precision}", err=True)
    return sd


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _outputs(out: Path, n: int) -> list[Path]:
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix or '.png'}") for i in range(n)]


def _generate(sd, requests, outs: list[Path], progress: bool) -> None:
    """Make and save each request in turn: a bar per picture, an estimate after step 1."""
    import time

    from tqdm.auto import tqdm

    from genlab.images import save_png
    from genlab.sd.pipeline import Interrupted
    from genlab.training.loop import StopFlag

    command = "genlab " + shlex.join(sys.argv[1:]) if sys.argv else "genlab"
    n, written = len(requests), 0
    with StopFlag() as flag:
        for i, (request, out) in enumerate(zip(requests, outs, strict=True)):
            total = sd.steps_to_run(request)
            bar = tqdm(total=total, unit="step", desc=f"picture {i + 1}/{n}", disable=not progress,
                       dynamic_ncols=True, leave=False)  # fmt: skip
            t0 = time.perf_counter()

            def on_step(step, steps, i=i, bar=bar, t0=t0):
                bar.total = steps
                bar.update(step - bar.n)
                if i == 0 and step == 1 and progress:
                    first = time.perf_counter() - t0
                    bar.write(
                        f"first step {first:.1f} s: about {_duration(first * steps)} per "
                        f"picture, {_duration(first * steps * n)} for {n} (plus decoding)",
                        file=sys.stderr,
                    )

            try:
                picture = sd.generate(request, on_step=on_step, should_stop=lambda: flag.requested)
            except (Interrupted, KeyboardInterrupt) as e:
                bar.close()
                where = f" at step {e.step}/{e.total}" if isinstance(e, Interrupted) else ""
                typer.echo(
                    f"stopped{where} of picture {i + 1}/{n}; wrote {written} of {n}", err=True
                )
                raise typer.Exit(130) from None
            finally:
                bar.close()
            meta = {**sd.metadata(picture), "command": command}
            save_png(out, picture.image, meta)
            written += 1
            note = " (blacked out by the model's safety checker)" if picture.nsfw else ""
            typer.echo(f"wrote {out} (seed {request.seed}, {picture.seconds:.1f} s){note}")


def _requests(prompt, negative_prompt, steps, guidance_scale, scheduler, seed, width, height,
              n, **extra):  # fmt: skip
    from genlab.sd.pipeline import Request

    if n < 1:
        raise GenlabError(f"--n {n}: give at least 1")
    if scheduler not in SCHEDULERS:
        raise GenlabError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    return [
        Request(
            prompt,
            negative_prompt,
            steps,
            guidance_scale,
            scheduler,
            seed + i,
            width,
            height,
            **extra,
        )  # fmt: skip
        for i in range(n)
    ]


@sd_app.command()
def txt2img(
    prompt: PromptArg,
    model: ModelOpt,
    config: ConfigOpt = None,
    negative_prompt: NegativeOpt = "",
    steps: StepsOpt = 20,
    guidance_scale: GuidanceOpt = 7.5,
    scheduler: SchedulerOpt = DEFAULT_SCHEDULER,
    seed: SeedOpt = 0,
    width: SizeOpt = None,
    height: SizeOpt = None,
    n: NOpt = 1,
    out: OutOpt = Path("sd.png"),
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    allow_pickle: PickleOpt = False,
    safety_checker: CheckerOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Draw pictures from a prompt."""
    requests = _requests(
        prompt, negative_prompt, steps, guidance_scale, scheduler, seed, width, height, n,
        mode="txt2img",
    )  # fmt: skip
    sd = _load(model, config, device, precision, allow_pickle, safety_checker)
    _generate(sd, requests, _outputs(out, n), progress)


@sd_app.command()
def img2img(
    prompt: PromptArg,
    model: ModelOpt,
    image: Annotated[Path, typer.Option(help="The picture to start from.")],
    strength: Annotated[
        float, typer.Option(help="How much to change it: 0 keeps it, 1 ignores it.")
    ] = 0.75,
    config: ConfigOpt = None,
    negative_prompt: NegativeOpt = "",
    steps: StepsOpt = 20,
    guidance_scale: GuidanceOpt = 7.5,
    scheduler: SchedulerOpt = DEFAULT_SCHEDULER,
    seed: SeedOpt = 0,
    width: SizeOpt = None,
    height: SizeOpt = None,
    n: NOpt = 1,
    out: OutOpt = Path("sd.png"),
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    allow_pickle: PickleOpt = False,
    safety_checker: CheckerOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Redraw a picture following a prompt (size: the picture's, rounded down to 8)."""
    requests = _requests(
        prompt, negative_prompt, steps, guidance_scale, scheduler, seed, width, height, n,
        mode="img2img", image=str(image), strength=strength,
    )  # fmt: skip
    sd = _load(model, config, device, precision, allow_pickle, safety_checker)
    _generate(sd, requests, _outputs(out, n), progress)


@sd_app.command()
def inpaint(
    prompt: PromptArg,
    model: ModelOpt,
    image: Annotated[Path, typer.Option(help="The picture to repaint.")],
    mask: Annotated[Path, typer.Option(help="White where to paint, black where to keep.")],
    strength: Annotated[float, typer.Option(help="1 repaints the masked part fully.")] = 1.0,
    config: ConfigOpt = None,
    negative_prompt: NegativeOpt = "",
    steps: StepsOpt = 20,
    guidance_scale: GuidanceOpt = 7.5,
    scheduler: SchedulerOpt = DEFAULT_SCHEDULER,
    seed: SeedOpt = 0,
    width: SizeOpt = None,
    height: SizeOpt = None,
    n: NOpt = 1,
    out: OutOpt = Path("sd.png"),
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    allow_pickle: PickleOpt = False,
    safety_checker: CheckerOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Repaint the masked part of a picture (best with an inpainting checkpoint)."""
    requests = _requests(
        prompt, negative_prompt, steps, guidance_scale, scheduler, seed, width, height, n,
        mode="inpaint", image=str(image), mask=str(mask), strength=strength,
    )  # fmt: skip
    sd = _load(model, config, device, precision, allow_pickle, safety_checker)
    _generate(sd, requests, _outputs(out, n), progress)


@sd_app.command()
def replay(
    picture: Annotated[Path, typer.Argument(help="A PNG written by genlab sd.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write (default NAME-replay.png).")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="The model, if it moved since (default: as recorded).")
    ] = None,
    config: ConfigOpt = None,
    allow_pickle: PickleOpt = False,
    safety_checker: CheckerOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Make a picture again from its metadata and say whether it came out identical."""
    import numpy as np

    from genlab.images import read_png_metadata
    from genlab.sd.pipeline import image_digest, read_image, request_from_metadata

    if not picture.is_file():
        raise GenlabError(f"{picture}: no such picture")
    try:
        meta = read_png_metadata(picture)
    except OSError as e:
        raise GenlabError(f"{picture}: not a readable PNG ({e})") from None
    request = request_from_metadata(meta, str(picture))
    for key in ("image", "mask"):
        path = getattr(request, key)
        if path is None:
            continue
        if not Path(path).is_file():
            raise GenlabError(f"{picture}: its input {key} {path} is gone; put it back to replay")
        if image_digest(read_image(path, "L" if key == "mask" else "RGB")) != meta.get(
            f"{key}_sha256"
        ):
            raise GenlabError(f"{picture}: its input {key} {path} has changed since")
    model = model or Path(meta["model"])
    if config is None and "model_config" in meta:
        config = Path(meta["model_config"])
    device = meta.get("device", "cpu")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            typer.echo("made on CUDA, replayed on the CPU: expect small differences", err=True)
            device = "cpu"
    sd = _load(model, config, device, meta.get("precision", "auto"), allow_pickle, safety_checker)
    out = out or picture.with_name(f"{picture.stem}-replay.png")
    _generate(sd, [request], [out], progress)
    before, after = read_image(picture), read_image(out)
    if before.shape == after.shape and np.array_equal(before, after):
        typer.echo(f"{out} is identical to {picture}")
    else:
        diff = (
            int(np.abs(before.astype(int) - after.astype(int)).max())
            if before.shape == after.shape
            else "size"
        )
        typer.echo(f"{out} differs from {picture} (largest pixel difference {diff}/255)")


@sd_app.command()
def doctor(
    model: ModelOpt,
    config: ConfigOpt = None,
    width: SizeOpt = None,
    height: SizeOpt = None,
    steps: Annotated[int, typer.Option(help="For the time estimate of one picture.")] = 20,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    allow_pickle: PickleOpt = False,
    measure: Annotated[bool, typer.Option(help="Load the model and time a step.")] = True,
) -> None:
    """What a model holds, the memory it needs here, and its measured seconds per step."""
    from genlab.sd.checks import available_memory, estimate_memory, inspect_model, size_text
    from genlab.sd.loading import resolve_device, resolve_precision
    from genlab.sd.pipeline import DTYPES
    from genlab.training.loop import bf16_native

    source = inspect_model(model, config=config, allow_pickle=allow_pickle)
    kind = "single file" if source.single_file else "diffusers folder"
    typer.echo(f"{source.path}: {kind}, {size_text(source.disk_bytes)} on disk")
    if source.single_file:
        typer.echo(f"  configs: {source.config_dir}")
    for c in source.components:
        what = f"{c.params / 1e6:,.1f} M weights, {'/'.join(c.dtypes)}" if c.params else ""
        typer.echo(f"  {c.name:<16} {c.class_name:<28} {what}".rstrip())
    if source.pickled:
        typer.echo("  weights are pickled (loaded only with --allow-pickle)")
    if source.in_channels == 9:
        typer.echo("  an inpainting checkpoint: use genlab sd inpaint")
    device = resolve_device(device)
    chosen = resolve_precision(precision, device)
    shown = "fp32 (bf16 measured at load)" if chosen == "measure" else chosen
    dtype = DTYPES["fp32" if chosen == "measure" else chosen]
    width = width or source.native_size
    height = height or source.native_size
    typer.echo(f"device: {device}, precision: {shown}; native bf16 on this CPU: {bf16_native()}")
    mem = estimate_memory(source, dtype.itemsize, width, height, available_memory(device))
    typer.echo(
        f"memory at {width}x{height}: about {size_text(mem.total)} needed (weights "
        f"{size_text(mem.weights)}, working {size_text(mem.activations)}"
        + (f", loading {size_text(mem.loading)}" if mem.loading else "")
        + f"), {size_text(mem.available)} available: "
        + ("fits" if mem.fits else "does NOT fit")
    )
    if not measure:
        return
    sd = _load(model, config, device, precision, allow_pickle, False)
    precisions = [sd.precision]
    if device == "cpu" and bf16_native() and sd.precision == "fp32":
        precisions.append("bf16")
    timings = [sd.time_step(width, height, p) for p in precisions]
    for t in timings:
        how = " (autocast)" if t.precision != sd.precision else ""
        typer.echo(
            f"measured: {t.seconds:.2f} s per step at {width}x{height} in {t.precision}{how}"
        )
    decode = sd.time_decode(width, height)
    typer.echo(
        f"decoding: {decode:.2f} s; one picture of {steps} steps in {sd.precision}: about "
        f"{_duration(timings[0].seconds * steps + decode)}"
    )
