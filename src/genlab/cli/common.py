"""What every command module shares: options built from `genlab.options.Option` records (so
the command line and the Python API check values alike), the common options, and output.

Nothing here imports torch: `genlab --help` answers at once.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from pathlib import Path

import click

from genlab.devices import DEVICE_HELP
from genlab.errors import GenlabError
from genlab.options import Option
from genlab.samplers import ALL_SAMPLER_NAMES, SAMPLERS


class OptionType(click.ParamType):
    """A click type that checks values with an Option record: a bad value is one line naming
    the option and its valid range, and exit code 2."""

    def __init__(self, option: Option):
        self.option = option
        self.name = option.kind

    def convert(self, value, param, ctx):
        if isinstance(value, str) and self.option.kind == "str" and not self.option.choices:
            return value
        try:
            return self.option.check(value)
        except GenlabError as e:
            raise click.BadParameter(str(e), ctx=ctx, param=param) from None

    def get_metavar(self, param, ctx=None):
        o = self.option
        if o.choices:
            return "[" + "|".join(map(str, o.choices)) + "]"
        return {"ints": "INTS", "floats": "NUMBERS", "run": "RUN", "path": "PATH"}.get(
            o.kind, o.kind.upper()
        )


def click_option(option: Option) -> click.Option:
    """The click option of an Option record (a --flag/--no-flag pair for booleans)."""
    value = option.default
    help_text = option.help
    if option.bounds():
        help_text += f" [{option.bounds()}]"
    decls = [*option.spellings, option.name]
    if option.kind == "bool":
        flag = option.flag[2:]
        decls = [f"--{flag}/--no-{flag}", option.name]
        return click.Option(decls, default=bool(value), show_default=True, help=help_text)
    extra = {} if option.required else {"default": value}  # click: a default None is a value
    return click.Option(
        decls,
        type=OptionType(option),
        required=option.required,
        show_default=value is not None,
        help=help_text,
        **extra,
    )


def attach(param: click.Parameter):
    """A decorator adding `param` to a command, as click's own decorators do."""

    def decorate(fn):
        fn.__click_params__ = [*getattr(fn, "__click_params__", []), param]
        return fn

    return decorate


def opt(option: Option):
    """Decorator form of `click_option`."""
    return attach(click_option(option))


# ------------------------------------------------------------------------------ common options

DEVICE = Option("device", "str", None, DEVICE_HELP + " [default: auto]")


def on_device(command):
    """Adds --device to a command that runs a model, and runs the command with that device as
    the default of everything it loads (`genlab.devices.using`): a device that is not there is
    one line and exit code 2, before anything is loaded. Without --device a command keeps the
    device of its caller (auto, or the device `genlab demo --device` runs its figures on)."""

    @functools.wraps(command)
    def run(*args, device: str, **kwargs):
        from genlab.devices import using

        with using(device):
            return command(*args, **kwargs)

    return opt(DEVICE)(run)


SEED = Option("seed", "int", 0, "Random seed: the same seed gives the same picture.", min=0,
              max=2**32 - 1)  # fmt: skip
CLASS = Option("class_name", "str", None, "Class name (conditional models).", flags=("--class",))
PROMPT = Option("prompt", "str", None, "txt2img: the prompt.")
STRIP_ROWS = Option("rows", "int", 4, "Samples in the strip.", min=1, max=1024)
TEMPERATURE = Option(
    "temperature", "float", None,
    "PixelCNN: < 1 sharpens each pixel's distribution, > 1 flattens it (default 1); Glow: the "
    "latent's scale (default the run's, 0.7).",
    min=0.0, min_open=True,
)  # fmt: skip
SAMPLER = Option(
    "sampler", "str", None,
    "Diffusion: ddpm (all T steps), ddim or dpm (DPM-Solver++ 2M); flow matching: euler, "
    "midpoint or heun (2 evaluations per step).",
    choices=(*ALL_SAMPLER_NAMES, *(s for s in SAMPLERS if s not in ALL_SAMPLER_NAMES)),
)  # fmt: skip
STEPS = Option(
    "steps", "int", None, "Diffusion and flow matching: sampler steps (the run's default: 50, 12).",
    min=1, max=100_000,
)  # fmt: skip
ETA = Option("eta", "float", None, "Diffusion: DDIM eta (0 deterministic).", min=0.0, max=1.0)
GUIDANCE = Option(
    "guidance", "float", None,
    "Diffusion, flow matching: classifier-free guidance weight w (1 = none, 0 = unconditional).",
    min=0.0, max=100.0,
)  # fmt: skip
CLASSIFIER = Option(
    "classifier", "run", None, "Diffusion: a noisy-classifier run for classifier guidance."
)
CLASSIFIER_SCALE = Option(
    "classifier_scale", "float", 1.0, "Diffusion: classifier guidance scale s (with --classifier).",
    min=0.0, max=1000.0,
)  # fmt: skip
PROGRESS = Option("progress", "bool", True, "Show progress bars.")


def strip_option(columns: str):
    """The --strip of an animation command: also a PNG, rows = samples, columns = `columns`."""
    return click.option(
        "--strip", type=click.Path(path_type=Path), default=None,
        help=f"Also a PNG strip: rows = samples, columns = {columns}.",
    )  # fmt: skip


def n_option(default: int, help_text: str, maximum: int = 100_000) -> Option:
    """The --n of a command: how many images, at least 1."""
    return Option("n", "int", default, help_text, min=1, max=maximum)


def out_option(default: str, help_text: str = "The PNG file to write.") -> click.Option:
    """--out/-o with a default file name."""
    return click.Option(
        ["--out", "-o", "out"], type=click.Path(path_type=Path), default=Path(default),
        show_default=True, help=help_text,
    )  # fmt: skip


def out(default: str, help_text: str = "The PNG file to write."):
    """Decorator form of `out_option`."""
    return attach(out_option(default, help_text))


def run_argument(help_text: str = "A run directory written by `genlab train`."):
    """The RUN argument of a command."""
    return click.argument("run", type=click.Path(path_type=Path), metavar="RUN")


# ------------------------------------------------------------------------------ output


def echo(message: str) -> None:
    click.echo(message)


def command_meta() -> dict[str, str]:
    """PNG metadata: the command that made a picture."""
    return {"command": "genlab " + shlex.join(sys.argv[1:]) if sys.argv else "genlab"}


def is_reporter() -> bool:
    """Whether this process reports (the main one under `accelerate launch`/torchrun)."""
    return os.environ.get("RANK", "0") == "0"
