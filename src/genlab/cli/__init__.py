"""`genlab ...`: the command line. Thin: each command parses, calls one library function of the
same name, prints. One module per topic: train, runs (sample, plot, embed, nll), latent, diffusion,
gan, rl (play, q-values), evaluate, demo, data, sd, pretrained.

Heavy libraries (torch, accelerate, matplotlib) are imported inside the commands, so that
`genlab --help` answers at once. Every mistake is one line on stderr and exit code 2: a value
out of its range, an option of another family, a missing or foreign run, a file that is not an
image (`GenlabError` from the library, click's usage errors from the parser).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from genlab.cli import (
    app,
    autoregressive,
    codebook,
    data,
    demo,
    diffusion,
    evaluate,
    gan,
    latent,
    pretrained,
    rl,
    runs,
    sd,
    style,
)
from genlab.cli.train import train
from genlab.errors import GenlabError


@click.group(
    name="genlab",
    no_args_is_help=True,
    context_settings={"help_option_names": ["--help", "-h"], "max_content_width": 100},
)
def cli() -> None:
    """A generative deep learning lab: train, sample, evaluate and explore generative models."""


cli.add_command(train)
for module in (
    runs,
    latent,
    diffusion,
    autoregressive,
    codebook,
    gan,
    style,
    rl,
    evaluate,
    demo,
    data,
    sd,
    pretrained,
    app,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def _say_error(message: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
        click.echo(f"error: {message}", err=True)


def _usage_line(e: click.ClickException) -> str:
    """A click error as one line: the problem, then where to look."""
    from genlab.cli.common import OptionType

    ours = isinstance(getattr(getattr(e, "param", None), "type", None), OptionType)
    # our options' messages name the option and its range already
    message = e.message if type(e) is click.BadParameter and ours else e.format_message()
    message = " ".join(message.split())
    ctx = getattr(e, "ctx", None)
    if ctx is not None and "--help" not in message:
        message += f" (see {ctx.command_path} --help)"
    return message


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from the library as one line each ("warning: ..."), not Python's two."""
    if os.environ.get("RANK", "0") == "0":
        click.echo(f"warning: {' '.join(str(message).split())}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for mistakes, with one line on stderr).

    A process of torchrun / `accelerate launch` does not return: it ends in `_leave` once its
    process group is closed."""
    import warnings

    shown, warnings.showwarning = warnings.showwarning, _one_line_warning
    try:
        code = _run(argv)
    finally:
        warnings.showwarning = shown
        distributed = _close_process_group()
    if distributed:
        _leave(code)
    return code


def _close_process_group() -> bool:
    """Under torchrun / accelerate launch, close the process group; returns whether there was
    one."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return False
    dist.destroy_process_group()
    return True


def _leave(code: int) -> NoReturn:
    """End a process of a multi-process run without finalizing the interpreter.

    gloo's worker threads outlive `destroy_process_group` (torch keeps the group referenced) and
    may still be releasing the last collective's work, whose tensors were made in Python: that
    takes the GIL. If the interpreter is being finalized by then, Python ends the thread inside a
    C++ destructor and the process aborts ("terminate called without an active exception",
    SIGABRT), about one two-process run in ten on a loaded 2-core machine
    (bench/ddp_exit.py). The exit handlers run first, with the interpreter whole; every file
    genlab writes is closed already (written whole, then renamed)."""
    import atexit
    import contextlib

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing reaches it
            stream.flush()
    os._exit(code)


def _run(argv: list[str] | None) -> int:
    try:
        code = cli.main(args=argv, prog_name="genlab", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help())
        return 0
    except GenlabError as e:
        _say_error(str(e))
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        _say_error(_usage_line(e))
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted; the last checkpoint is kept", err=True)
        return 130
    except OSError as e:
        name = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _say_error(f"{name}{e.strerror or e}")
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
