"""`genlab pretrained list|get|info`: the runs that ship trained with genlab."""

from __future__ import annotations

import json
from pathlib import Path

import click

from genlab.cli.common import echo


@click.group(no_args_is_help=True)
def pretrained() -> None:
    """Models that ship trained (by genlab's own commands, on Fashion-MNIST): list them, read how
    each was made, copy one into a run directory to sample, explore and evaluate."""


@pretrained.command("list")
def list_() -> None:
    """The shipped runs: name, family, training, their score (FD at n = 10,000; an agent's
    mean greedy return) and what each is."""
    from genlab.pretrained import shipped

    runs = shipped()
    if not runs:
        echo("this installation ships no trained runs")
        return
    rows = [("name", "family", "steps", "minutes", "score", "summary")]
    for s in runs:
        p = s.provenance
        minutes = f"{p['train_seconds'] / 60:.0f}" if p.get("train_seconds") else "?"
        fd, mean = s.metrics.get("fd"), s.metrics.get("mean")
        score = f"FD {fd:.1f}" if fd is not None else f"return {mean:g}" if mean is not None else ""
        rows.append((s.name, s.family, f"{p.get('steps') or '?'}", minutes, score, s.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


@pretrained.command("info")
@click.argument("name")
def info(name: str) -> None:
    """How a shipped run was made: commands, seed, steps, time, machine, its evaluation."""
    from genlab.pretrained import find

    echo(json.dumps(find(name).provenance, indent=2))


@pretrained.command("get")
@click.argument("name")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="The new run directory.")  # fmt: skip
def get(name: str, out: Path) -> None:
    """Copy a shipped run into a new run directory (then `genlab sample RUN`, `genlab eval RUN`,
    the pictures, `genlab.load(RUN)`)."""
    from genlab.pretrained import get as copy

    where = copy(name, out)
    echo(f"wrote {where}: try `genlab sample {where} --out samples.png`")


COMMANDS = [pretrained]
