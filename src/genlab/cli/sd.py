"""`genlab sd ...`: run a local Stable Diffusion model, strictly offline (the library's
`genlab.sd`). torch and diffusers are imported inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from genlab.cli.common import command_meta, echo, opt
from genlab.options import Option
from genlab.sd.schedulers import DEFAULT_SCHEDULER, SCHEDULERS

MODEL = Option("model", "path", None, "A diffusers folder (model_index.json) or a .safetensors "
               "checkpoint.", required=True)  # fmt: skip
CONFIG = Option("config", "path", None, "For a single checkpoint file: its diffusers configs.")
SIZE = {"min": 64, "max": 4096}
GENERATION = (
    MODEL,
    CONFIG,
    Option("negative_prompt", "str", "", "What to steer away from."),
    Option("steps", "int", 20, "Denoising steps.", min=1, max=1000),
    Option(
        "guidance_scale",
        "float",
        7.5,
        "Classifier-free guidance weight (1 or less: none).",
        min=0.0,
        max=100.0,
    ),  # fmt: skip
    Option("scheduler", "str", DEFAULT_SCHEDULER, "Sampler.", choices=tuple(SCHEDULERS)),
    Option(
        "seed", "int", 0, "Seed of the first picture; the next ones add 1.", min=0, max=2**32 - 1
    ),  # fmt: skip
    Option("width", "int", None, "Pixels, a multiple of 8 (default: native).", **SIZE),
    Option("height", "int", None, "Pixels, a multiple of 8 (default: native).", **SIZE),
    Option("n", "int", 1, "How many pictures (seeds seed, seed+1, ...).", min=1, max=10_000),
    Option(
        "device",
        "str",
        "auto",
        "auto (CUDA if present), cpu or cuda.",
        choices=("auto", "cpu", "cuda"),
    ),  # fmt: skip
    Option(
        "precision",
        "str",
        "auto",
        "auto (measured on the CPU), fp32, bf16, or fp16 (CUDA).",
        choices=("auto", "fp32", "bf16", "fp16"),
    ),  # fmt: skip
)
LOADING = (
    Option(
        "allow_pickle", "bool", False, "Accept pickled weights (.ckpt/.bin): they can run code."
    ),
    Option("safety_checker", "bool", True, "Run the model's safety checker if it has one."),
    Option("progress", "bool", True, "Show a progress bar per picture."),
)

NAMED = {o.name: o for o in (*GENERATION, *LOADING)}


def options(*records: Option):
    def decorate(fn):
        for record in reversed(records):
            fn = opt(record)(fn)
        return fn

    return decorate


def out_option(fn):
    return click.option(
        "--out", "-o", "out", type=click.Path(path_type=Path), default=Path("sd.png"),
        show_default=True, help="PNG to write; with --n > 1, NAME-0.png, NAME-1.png.",
    )(fn)  # fmt: skip


def _load(model: Path, config, device, precision, allow_pickle, safety_checker):
    from genlab.sd.loading import load_offline

    sd = load_offline(model, config=config, device=device, precision=precision,
                      allow_pickle=allow_pickle, safety_checker=safety_checker)  # fmt: skip
    click.echo(f"loaded {model} on {sd.device} in {sd.precision}", err=True)
    return sd


def _outputs(out: Path, n: int) -> list[Path]:
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix or '.png'}") for i in range(n)]


def _generate(sd, requests, outs: list[Path], progress: bool) -> None:
    """Make and save each request in turn: a bar per picture, an estimate after step 1."""
    import time

    from tqdm.auto import tqdm

    from genlab.images import save_png
    from genlab.runtime import StopFlag
    from genlab.sd.pipeline import Interrupted
    from genlab.sd.replay import duration_text

    n, written, command = len(requests), 0, command_meta()["command"]
    with StopFlag() as flag:
        for i, (request, out) in enumerate(zip(requests, outs, strict=True)):
            bar = tqdm(total=sd.steps_to_run(request), unit="step", desc=f"picture {i + 1}/{n}",
                       disable=not progress, dynamic_ncols=True, leave=False)  # fmt: skip
            t0 = time.perf_counter()

            def on_step(step, steps, i=i, bar=bar, t0=t0):
                bar.total = steps
                bar.update(step - bar.n)
                if i == 0 and step == 1 and progress:
                    first = time.perf_counter() - t0
                    bar.write(f"first step {first:.1f} s: about {duration_text(first * steps)} "
                              f"per picture, {duration_text(first * steps * n)} for {n} "
                              "(plus decoding)", file=sys.stderr)  # fmt: skip

            try:
                picture = sd.generate(request, on_step=on_step, should_stop=lambda: flag.requested)
            except (Interrupted, KeyboardInterrupt) as e:
                where = f" at step {e.step}/{e.total}" if isinstance(e, Interrupted) else ""
                click.echo(f"stopped{where} of picture {i + 1}/{n}; wrote {written} of {n}",
                           err=True)  # fmt: skip
                raise click.exceptions.Exit(130) from None
            finally:
                bar.close()
            save_png(out, picture.image, {**sd.metadata(picture), "command": command})
            written += 1
            note = " (blacked out by the model's safety checker)" if picture.nsfw else ""
            echo(f"wrote {out} (seed {request.seed}, {picture.seconds:.1f} s){note}")


def _run(mode: str, prompt: str, out: Path, values: dict, **extra) -> None:
    from genlab.sd.pipeline import make_requests

    load = {k: values.pop(k) for k in ("model", "config", "device", "precision", "allow_pickle",
                                       "safety_checker")}  # fmt: skip
    progress = values.pop("progress")
    requests = make_requests(prompt, mode=mode, **values, **extra)
    sd = _load(**load)
    _generate(sd, requests, _outputs(out, len(requests)), progress)


@click.group(no_args_is_help=True)
def sd() -> None:
    """Generate with a local Stable Diffusion model (strictly offline)."""


@sd.command()
@click.argument("prompt")
@options(*GENERATION, *LOADING)
@out_option
def txt2img(prompt: str, out: Path, **values) -> None:
    """Draw pictures from a prompt."""
    _run("txt2img", prompt, out, values)


@sd.command()
@click.argument("prompt")
@click.option("--image", required=True, type=click.Path(path_type=Path),
              help="The picture to start from.")  # fmt: skip
@opt(Option("strength", "float", 0.75, "How much to change it: 0 keeps it, 1 ignores it.",
            min=0.0, max=1.0))  # fmt: skip
@options(*GENERATION, *LOADING)
@out_option
def img2img(prompt: str, image: Path, strength: float, out: Path, **values) -> None:
    """Redraw a picture following a prompt (size: the picture's, rounded down to 8)."""
    _run("img2img", prompt, out, values, image=str(image), strength=strength)


@sd.command()
@click.argument("prompt")
@click.option("--image", required=True, type=click.Path(path_type=Path),
              help="The picture to repaint.")  # fmt: skip
@click.option("--mask", required=True, type=click.Path(path_type=Path),
              help="White where to paint, black where to keep.")  # fmt: skip
@opt(Option("strength", "float", 1.0, "1 repaints the masked part fully.", min=0.0, max=1.0))
@options(*GENERATION, *LOADING)
@out_option
def inpaint(prompt: str, image: Path, mask: Path, strength: float, out: Path, **values) -> None:
    """Repaint the white part of a mask following a prompt."""
    _run("inpaint", prompt, out, values, image=str(image), mask=str(mask), strength=strength)


@sd.command()
@click.argument("picture", type=click.Path(path_type=Path))
@click.option("--out", "-o", "out", type=click.Path(path_type=Path), default=None,
              help="Where to write (default NAME-replay.png).")  # fmt: skip
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="The model, if it moved since (default: as recorded).")  # fmt: skip
@opt(CONFIG)
@options(*LOADING)
def replay(picture: Path, out, model, config, allow_pickle, safety_checker, progress) -> None:
    """Make a picture again from its metadata and say whether it came out identical."""
    from genlab.sd.replay import compare_pictures, read_replay

    r = read_replay(picture, model, config)
    if r.note:
        click.echo(r.note, err=True)
    sd_model = _load(r.model, r.config, r.device, r.precision, allow_pickle, safety_checker)
    out = out or picture.with_name(f"{picture.stem}-replay.png")
    _generate(sd_model, [r.request], [out], progress)
    echo(compare_pictures(picture, out))


@sd.command()
@options(*(NAMED[name] for name in ("model", "config", "width", "height")))
@opt(Option("steps", "int", 20, "For the time estimate of one picture.", min=1, max=1000))
@options(*(NAMED[name] for name in ("device", "precision", "allow_pickle")))
@opt(Option("measure", "bool", True, "Load the model and time a step."))
def doctor(model, config, width, height, steps, device, precision, allow_pickle, measure) -> None:
    """What a model holds, the memory it needs here, and its measured seconds per step."""
    from genlab.sd.replay import doctor as report

    lines = report(model, config, width, height, steps, device, precision, allow_pickle,
                   _load if measure else None)  # fmt: skip
    for line in lines:
        echo(line)


COMMANDS = [sd]
