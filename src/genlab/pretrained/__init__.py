"""Runs that ship trained: small models trained by genlab's own commands on Fashion-MNIST, in the
package, so that a fresh machine samples, explores and evaluates good models at once.

Each shipped run is a folder `pretrained/runs/NAME/` holding what `genlab.load` needs
(config.json and the weights it samples with, safetensors) and `provenance.json`: the exact
commands that trained it, the seed, steps, wall time, machine and versions, its `genlab eval`
record at n = 10,000, and a small-n record (`check`) that the tests recompute on every machine.
`genlab pretrained get NAME --out RUN` copies one into a run directory of its own; maintainers
add one with `ship` (see scripts/ship_pretrained.py).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

SHIPPED = Path(__file__).parent / "runs"
PROVENANCE = "provenance.json"
SCHEMA = "genlab.pretrained/1"
FILES = ("config.json", "ema.safetensors", "model.safetensors", "metrics.csv")
"""What a shipped run keeps of its run directory: the config, the weights `genlab.load` reads
(the EMA weights where the run has them, else the model's) and its training curves (`genlab
plot`). No training state: a shipped run samples and evaluates; to train further, train a run of
your own with its command."""


@dataclass(frozen=True)
class Shipped:
    """One shipped run: its name, its folder in the package, and its provenance record."""

    name: str
    path: Path
    provenance: dict[str, Any]

    @property
    def family(self) -> str:
        return self.provenance["family"]

    @property
    def summary(self) -> str:
        return self.provenance["summary"]

    @property
    def metrics(self) -> dict[str, Any]:
        """The evaluation's headline metrics: an image run's at n = 10,000 (fd, precision,
        recall, ...), an agent's over its greedy episodes (mean, std, min, max)."""
        return self.provenance.get("eval", {}).get("metrics", {})


def _read(folder: Path) -> Shipped:
    where = folder / PROVENANCE
    try:
        record = json.loads(where.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GenlabError(f"{where}: unreadable shipped-run record ({e}); reinstall genlab") from e
    if record.get("schema") != SCHEMA:
        raise GenlabError(f"{where}: schema {record.get('schema')!r}, expected {SCHEMA!r}")
    return Shipped(folder.name, folder, record)


def shipped(root: Path = SHIPPED) -> list[Shipped]:
    """Every shipped run (in `root`, the package's by default), by name."""
    if not root.is_dir():
        return []
    return [_read(f) for f in sorted(root.iterdir()) if (f / PROVENANCE).is_file()]


def shipped_names(root: Path = SHIPPED) -> list[str]:
    """The names of the shipped runs (without reading their records)."""
    if not root.is_dir():
        return []
    return sorted(f.name for f in root.iterdir() if (f / PROVENANCE).is_file())


def find(name: str, root: Path = SHIPPED) -> Shipped:
    """The shipped run called `name` (a GenlabError naming the others otherwise)."""
    runs = {s.name: s for s in shipped(root)}
    if name not in runs:
        known = ", ".join(runs) or "none (this installation ships no trained runs)"
        raise GenlabError(
            f"no shipped run named {name!r}; shipped: {known} (genlab pretrained list)"
        )
    return runs[name]


def get(name: str, out: str | os.PathLike, root: Path = SHIPPED) -> Path:
    """Copy the shipped run `name` into a new run directory `out` (written whole or not at all).

    Returns:
        `out`, which `genlab sample`, `eval`, the pictures and `genlab.load` then take.
    """
    source = find(name, root)
    out = Path(out)
    if out.exists():
        raise GenlabError(f"--out {out}: already exists; choose a new directory")
    if not out.parent.is_dir():
        raise GenlabError(f"--out {out}: its parent folder {out.parent} does not exist")
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for file in (*FILES, PROVENANCE):
            if (source.path / file).is_file():
                shutil.copyfile(source.path / file, tmp / file)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def headline(record: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a `genlab eval` record that a shipped run keeps."""
    if "episodes" in record:  # an agent: returns of greedy episodes
        return {k: record[k] for k in ("mean", "std", "min", "max") if k in record}
    m = record["metrics"]
    keep = ("fd", "kid_mean", "precision", "recall", "coverage", "modes_covered")
    out = {k: m[k] for k in keep if m.get(k) is not None}
    out["missing_classes"] = [record["class_names"][i] for i in m.get("missing_classes", [])]
    if m.get("conditional_accuracy") is not None:
        out["conditional_accuracy"] = m["conditional_accuracy"]
    return out


def ship(
    run: str | os.PathLike,
    name: str,
    *,
    summary: str,
    commands: list[str],
    evaluation: dict[str, Any],
    check: dict[str, Any],
    machine: str,
    root: Path = SHIPPED,
    first_stage: str | os.PathLike | None = None,
) -> Path:
    """Add a trained run to the shipped runs (maintainers; scripts/ship_pretrained.py).

    Args:
        run: the run directory, trained by `commands`.
        name: the shipped name (`genlab pretrained get NAME`).
        summary: one line for `genlab pretrained list`.
        commands: the exact commands that trained it, in order (a latent model's first stage
            first).
        evaluation: its `genlab eval` record at n = 10,000 (the figure users see).
        check: its `genlab eval` record at a small n, which the tests recompute.
        machine: where it was trained (CPU model, cores, precision).
        root: the folder of shipped runs.
        first_stage: a latent model's first-stage run (its VAE), whose training time counts.
    """
    from genlab.io import write_json
    from genlab.runs import Run, checkpoint_dir

    opened = Run.open(run)
    run, config = opened.path, opened.config
    where = opened.checkpoint
    trainer = json.loads((where / "trainer.json").read_text()) if where else {}
    seconds = [trainer.get("elapsed_s")]
    if first_stage is not None:
        stage = checkpoint_dir(first_stage)
        first = json.loads((stage / "trainer.json").read_text()) if stage else {}
        seconds.insert(0, first.get("elapsed_s"))
    folder = root / name
    if folder.exists():
        raise GenlabError(f"{folder}: a shipped run of that name exists; remove it first")
    record = {
        "schema": SCHEMA,
        "name": name,
        "family": config["family"],
        "summary": summary,
        "commands": list(commands),
        "seed": config.get("train", {}).get("seed"),
        "steps": trainer.get("step"),
        "train_seconds": sum(seconds) if None not in seconds else None,
        "train_seconds_by_command": seconds,
        "machine": machine,
        "versions": config.get("versions", {}),
        "eval": _eval_entry(evaluation),
        "check": _eval_entry(check),
    }
    folder.mkdir(parents=True)
    weights = "ema.safetensors" if (run / "ema.safetensors").is_file() else "model.safetensors"
    if (run / "metrics.csv").is_file():
        shutil.copyfile(run / "metrics.csv", folder / "metrics.csv")
    write_json(folder / "config.json", advertised(config, record["eval"]["sampling"]))
    _ship_weights(run / weights, folder / weights, config)
    write_json(folder / PROVENANCE, record)
    return folder


SAMPLING_FIELDS = {"sampler": ("sampler", str), "steps": ("steps", int), "eta": ("eta", float),
                   "w": ("guidance", float)}  # fmt: skip
"""An eval record's sampling entries (strings) -> the model config's sampling defaults."""


def advertised(config: dict[str, Any], sampling: dict[str, str]) -> dict[str, Any]:
    """A run's config with the sampling its shipped record was evaluated with made its model's
    defaults, so that `genlab sample RUN` draws what `genlab pretrained list` advertises."""
    model, options = dict(config["model"]), dict(config.get("options", {}))
    for key, value in sampling.items():
        if key in SAMPLING_FIELDS and SAMPLING_FIELDS[key][0] in model:
            name, kind = SAMPLING_FIELDS[key]
            model[name] = kind(value)
            if name in options:
                options[name] = kind(value)
    return {**config, "model": model, **({"options": options} if options else {})}


def _ship_weights(source: Path, target: Path, config: dict[str, Any]) -> None:
    """Copy a run's weights, leaving out the buffers its model recomputes on loading
    (`RECOMPUTABLE`: a text-to-image model's caption states), so the package stays small."""
    from genlab.families import get_family
    from genlab.io import load_weights

    recomputed = set(getattr(get_family(config["family"]).model, "RECOMPUTABLE", ()))
    state = load_weights(source)
    if not recomputed & set(state):
        shutil.copyfile(source, target)
        return
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items() if k not in recomputed}, str(target))


def _eval_entry(record: dict[str, Any]) -> dict[str, Any]:
    """What a shipped run keeps of an eval record: how it was made and its headline metrics."""
    if "episodes" in record:  # an agent's record (genlab eval on an agent run)
        return {"n": record["episodes"], "seed": None, "protocol": record.get("protocol"),
                "sampling": {}, "metrics": headline(record), "references": {}}  # fmt: skip
    return {
        "n": record["n"],
        "seed": record["seed"],
        "sampling": record["source"].get("sampling", {}),
        "metrics": headline(record),
        "references": {k: v.get("fd") for k, v in (record.get("references") or {}).items()},
    }
