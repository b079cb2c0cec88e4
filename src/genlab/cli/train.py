"""`genlab train`: one subcommand per family, its options read from the registry (the family's
own, the data and budget options, TrainConfig's fields), built only when asked for, so that
`genlab --help` imports no torch. `genlab train --resume RUN` continues a run;
`genlab train --config FILE` reads the options from a JSON or TOML file (a run's config.json
trains the same run again), and options given on the command line win over the file's.
"""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import DEVICE, OptionType, click_option, echo, is_reporter
from genlab.errors import GenlabError
from genlab.options import Option

MAX_STEPS = Option("max_steps", "int", None, "New total steps.", min=1, max=10**12)
MAX_MINUTES = Option("max_minutes", "float", None, "New wall-clock budget.", min=0.0,
                     min_open=True, max=10**6)  # fmt: skip
GROUP_OPTIONS = ("--resume", "--config", "--max-steps", "--max-minutes", "--progress", "--device")


def report(result) -> None:
    """The last line of training; exit 130 when it was interrupted."""
    if not is_reporter():
        return
    metrics = ", ".join(
        f"{k} {v:.4g}" for k, v in result.last_metrics.items() if not k.startswith("grad_norm")
    )
    echo(
        f"{result.run_dir}: step {result.step} ({result.stopped_by}), {result.elapsed_s:.0f} s, "
        f"{result.images_per_s:.0f} {result.rate_unit}/s" + (f", {metrics}" if metrics else "")
    )
    if result.detail:
        echo(result.detail)
    if result.stopped_by == "interrupt":
        echo(
            f"interrupted; checkpoint saved: continue with `genlab train --resume {result.run_dir}`"
        )
        raise click.exceptions.Exit(130)


class FamilyCommand(click.Command):
    """`genlab train FAMILY`: an option of another family is refused with one line saying
    which families take it."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as e:
            raise click.UsageError(_not_an_option(self.name, e.option_name), ctx) from None


def _not_an_option(family: str, flag: str) -> str:
    from genlab.families import FAMILIES
    from genlab.training.create import options_of

    if flag.split("=")[0] in GROUP_OPTIONS[:2]:
        what = "RUN" if flag.startswith("--resume") else "FILE"
        return f"{flag} belongs before the family: genlab train {flag.split('=')[0]} {what}"
    takers = [
        name for name, f in FAMILIES.items()
        if any(flag in o.spellings for o in options_of(f).values())
    ]  # fmt: skip
    where = f"; it is one of {', '.join(takers)}" if takers else ""
    return f"{flag} is not an option of `genlab train {family}`{where} (see --help)"


def family_command(name: str) -> click.Command:
    """The `genlab train NAME` command, from the family's record."""
    from genlab.families import get_family
    from genlab.training.create import options_of

    family = get_family(name)
    options = options_of(family)
    params = [click_option(o) for o in options.values()]
    params.append(click_option(Option("progress", "bool", True, "Show a progress bar.")))
    params.append(click_option(DEVICE))

    def callback(progress: bool, device: str | None, **values):
        from genlab.devices import resolve
        from genlab.training import create, train

        parent = click.get_current_context().parent
        progress = progress and (parent is None or parent.params.get("progress", True))
        device = device or (parent.params.get("device") if parent is not None else None)
        resolve(device)  # a device that is not there: one line before the run is made
        run_dir = create(name, **values)
        report(train(run_dir, progress=progress, device=device))

    return FamilyCommand(
        name, params=params, callback=callback, help=f"{family.summary}", short_help=family.summary
    )


class TrainGroup(click.Group):
    """The families as subcommands, listed from the registry when asked for."""

    def list_commands(self, ctx):
        from genlab.families import FAMILIES

        return list(FAMILIES)

    def get_command(self, ctx, name):
        from genlab.families import FAMILIES

        return family_command(name) if name in FAMILIES else None

    def resolve_command(self, ctx, args):
        from genlab.families import FAMILIES

        if args and args[0] not in FAMILIES and not args[0].startswith("-"):
            raise click.UsageError(f"no family {args[0]!r}; families: {', '.join(FAMILIES)}", ctx)
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx, args):
        """`genlab train --config FILE [options]`: put the file's family after --config."""
        from genlab.families import FAMILIES

        for i, arg in enumerate(args):
            if arg in FAMILIES:
                break
            if arg == "--config" and i + 1 < len(args) or arg.startswith("--config="):
                path = args[i + 1] if arg == "--config" else arg.split("=", 1)[1]
                at = i + 2 if arg == "--config" else i + 1
                if at >= len(args) or args[at] not in FAMILIES:
                    from genlab.training import read_options

                    family, _ = read_options(path)
                    args = [*args[:at], family, *args[at:]]
                break
        return super().parse_args(ctx, args)


@click.group(
    cls=TrainGroup,
    invoke_without_command=True,
    no_args_is_help=True,
    subcommand_metavar="FAMILY [OPTIONS]",
)
@click.option("--resume", type=click.Path(path_type=Path), help="Continue this run exactly.")
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="Read the options from a JSON or TOML file (a run's config.json: the same run again).",
)
@click.option("--max-steps", type=OptionType(MAX_STEPS), help="With --resume: new total steps.")
@click.option(
    "--max-minutes", type=OptionType(MAX_MINUTES), help="With --resume: new wall-clock budget."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--device", type=OptionType(DEVICE), default=None, help=DEVICE.help)
@click.pass_context
def train(ctx, resume, config, max_steps, max_minutes, progress, device):
    """Train a model into a new run directory (genlab train FAMILY --out RUN ...), or continue
    one (genlab train --resume RUN). `genlab train FAMILY --help` lists a family's options."""
    from genlab.training import train as run_training

    if ctx.invoked_subcommand is None:
        if resume is None:
            raise GenlabError("give a family (genlab train vae --out RUN) or --resume RUN")
        if config is not None:
            raise GenlabError("--resume continues a run as it was: it takes no --config")
        report(run_training(resume, max_steps=max_steps, max_minutes=max_minutes,
                            progress=progress, device=device))  # fmt: skip
        return
    if resume is not None:
        raise GenlabError("--resume continues an existing run: give no family and no --out")
    defaults = {}
    if config is not None:
        defaults = _file_defaults(ctx.invoked_subcommand, config)
    defaults.update({k: v for k, v in (("max_steps", max_steps), ("max_minutes", max_minutes))
                     if v is not None})  # fmt: skip
    ctx.default_map = {ctx.invoked_subcommand: defaults}


def _file_defaults(name: str, path: Path) -> dict:
    """The options of a file for `genlab train NAME`, checked like the command line's."""
    from genlab.families import get_family
    from genlab.options import check_options
    from genlab.training import options_of, read_options

    family, values = read_options(path)
    if family != name:
        raise GenlabError(f"--config {path}: trains a {family}, not a {name}")
    known = options_of(get_family(name))
    return check_options(values, known, f"genlab train {name} (in {path})")
