"""Creating runs: `create(family, out, **options)` is `genlab train FAMILY --out OUT ...` in
Python, with the same option names, defaults and ranges (`options_of`).

A family's options are its record's own (`Family.options`), the data options (--data,
--data-dir, --size, --channels, --limit), the budget (--max-steps, --max-minutes, --epochs) and
the fields of `TrainConfig` (--batch-size, --lr, --ema, ..., with the family's defaults); an
own option replaces a shared one of the same name. config.json keeps every option's value
("options"), so `genlab train --config RUN/config.json --out NEW` trains the same run again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import torch

import genlab
from genlab.data import DataSpec, ImageData, data_size, image_spec, require_batches
from genlab.errors import GenlabError
from genlab.families import FAMILIES, get_family
from genlab.family import FROZEN, Family, LoadedRun
from genlab.options import Option, check_options, field_options
from genlab.runs import CONFIG, Run, save_weights, write_json
from genlab.training.config import PRECISIONS, TrainConfig
from genlab.training.distributed import on_main_process

DATA_OPTIONS = (
    Option(
        "data",
        "str",
        "fashion-mnist",
        "'fashion-mnist', or a folder of images (class sub-folders are labels).",
    ),
    Option("data_dir", "path", None, "Directory with the Fashion-MNIST IDX files."),
    Option("size", "int", 32, "Image side for folder data.", min=4, max=1024),
    Option("channels", "int", 1, "1 (grayscale) or 3 (RGB) for folder data.", choices=(1, 3)),
    Option("limit", "int", None, "Use only the first N training images.", min=1, max=10**9),
)

TRAIN_OPTIONS = field_options(
    TrainConfig,
    batch_size={"min": 1, "max": 65_536},
    lr={"min_open": True, "max": 10.0},
    betas={"length": 2, "max": 0.9999},
    weight_decay={"max": 100.0},
    warmup_steps={"max": 10**9},
    min_lr_ratio={"max": 1.0},
    lr_schedule={"choices": ("cosine", "constant")},
    max_steps={"min": 1, "max": 10**12},
    max_minutes={"min_open": True, "max": 10**6},
    grad_clip={"min_open": True, "max": 1e6},
    ema_decay={"max": 0.999999, "flags": ("--ema",), "help": "EMA decay (0: no EMA)."},
    precision={"choices": PRECISIONS},
    log_every={"min": 1, "max": 10**9},
    sample_every={"min": 1, "max": 10**12},
    checkpoint_every={"min": 1, "max": 10**12},
    seed={"max": 2**32 - 1},
)
"""TrainConfig's fields as options (the budgets max_steps and max_minutes among them)."""

EPOCHS = Option(
    "epochs",
    "float",
    None,
    "Budget in passes over the data (10 when no budget is given).",
    min=0.0,
    min_open=True,
    max=10**6,
)
OUT = Option("out", "path", None, "The new run directory.", required=True)


def options_of(family: Family) -> dict[str, Option]:
    """Every option of `genlab train FAMILY` by name, with the family's defaults, in the order
    of its --help: out, data, the family's own, then training and budget."""
    own = {o.name: o for o in family.options}
    shared = [OUT, *DATA_OPTIONS, EPOCHS] if family.data_options else [OUT, EPOCHS]
    train = [
        dataclasses.replace(o, default=family.train_defaults.get(o.name, o.default))
        for o in TRAIN_OPTIONS
        if o.name not in family.train_ignores
    ]
    options = {o.name: o for o in shared[:-1] if o.name not in own}
    options.update(own)
    budget = (EPOCHS,) if family.data_options else ()
    options.update({o.name: o for o in (*train, *budget) if o.name not in own})
    return options


def _json_value(value: Any) -> Any:
    """An option's value for config.json; paths absolute, so that the file works anywhere."""
    if isinstance(value, LoadedRun):
        return str(Path(value.path).resolve())
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, tuple):
        return list(value)
    return value


def _load_run(option: Option, path: Path) -> LoadedRun:
    run = Run.open(path)
    if option.of and run.name not in option.of:
        raise GenlabError(
            f"{option.flag} {path}: a {run.name} run; give a run of {' or '.join(option.of)}"
        )
    return LoadedRun(run.path, dict(run.config), run.model())


def _training_data(family: Family, values: dict[str, Any]) -> tuple[dict[str, DataSpec], Any]:
    if family.specs is not None:
        specs = family.specs(values)
    else:
        keys = ("data", "data_dir", "size", "channels", "limit")
        specs = {"data": image_spec(**{k: values[k] for k in keys})}
    return specs, family.read_data(specs, "train")


def _train_config(family: Family, values: dict[str, Any], extra: dict[str, Any], size: int):
    """The TrainConfig: the shared training options, the family's defaults for the fields it
    ignores, the fields its options decide (`extra`), and the epochs made steps."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    own = {o.name for o in family.options}
    fields = {k: v for k, v in family.train_defaults.items() if k in names}
    fields.update({k: v for k, v in values.items() if k in names and k not in own})
    fields.update(extra)
    fields["ema_decay"] = fields.get("ema_decay") or None  # 0 turns EMA off
    epochs = values.get("epochs")
    if fields.get("max_steps") is None and fields.get("max_minutes") is None:
        epochs = epochs or 10.0
    if epochs is not None:
        steps = max(1, int(epochs * (size // fields["batch_size"])))
        max_steps = fields.get("max_steps")
        fields["max_steps"] = min(max_steps, steps) if max_steps is not None else steps
    return TrainConfig(**fields)


def create(family: str, out: str | os.PathLike | None = None, **options: Any) -> Path:
    """Create a new run directory of `family` (nothing is trained yet: `genlab.train(run)`).

    The Python form of `genlab train FAMILY --out OUT ...`: the same option names (with _),
    defaults and ranges; `genlab train FAMILY --help` lists them. Under `accelerate launch` or
    torchrun only the main process creates the run; the others wait for it.

    Args:
        family: a name of `genlab.families.FAMILIES` (ae, vae, gan, cgan, cyclegan, ddpm, ...).
        out: the new run directory (it must not exist, or be empty).
        **options: the family's options, e.g. `create("vae", "runs/vae", max_minutes=3)`.

    Returns:
        The run directory.

    Raises:
        GenlabError: an unknown option or family, a value out of its range, unusable data, or
            an existing run at `out`.
    """
    record = get_family(family)
    known = options_of(record)
    values = check_options({**options, "out": out}, known, f"genlab train {family}")
    values = {name: values.get(name, o.default) for name, o in known.items()}
    for name, o in known.items():
        if o.required and values[name] is None:
            raise GenlabError(f"genlab train {family}: give {o.flag} ({o.help})")
    run_dir = Path(values["out"])
    on_main_process(lambda: _create(record, run_dir, known, values))
    return run_dir


def _require_new(run_dir: Path) -> None:
    """Refuse to write a run where something is already (before any work is done)."""
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise GenlabError(
            f"{run_dir}: already exists and is not empty; continue it with "
            f"`genlab train --resume {run_dir}` or choose another --out"
        )


def _create(family: Family, run_dir: Path, known: dict[str, Option], values: dict) -> Path:
    _require_new(run_dir)
    record = {k: _json_value(v) for k, v in values.items() if k != "out"}
    if record.get("data") not in (None, "fashion-mnist") and Path(record["data"]).is_dir():
        record["data"] = str(Path(record["data"]).resolve())
    for name, o in known.items():
        if o.kind == "run" and values[name] is not None:
            values[name] = _load_run(o, values[name])
    specs, data = _training_data(family, values)
    configured = family.configure(values, data)
    with torch.random.fork_rng(devices=[]):  # a config the model refuses fails here, not later
        family.model(configured.config)
    tcfg = _train_config(family, values, configured.train, data_size(data))
    require_batches(data, tcfg.batch_size)
    extra: dict[str, Any] = {}
    if isinstance(data, ImageData):
        extra["class_names"] = list(data.class_names)
    extra.update(configured.extra)
    extra.update({k: dataclasses.asdict(v) for k, v in specs.items() if k != "data"})
    extra["options"] = record
    create_run(run_dir, family.name, configured.config, tcfg, specs["data"], extra=extra)
    if configured.frozen:
        save_weights(run_dir / FROZEN, configured.frozen)
    return run_dir


def create_run(
    run_dir: str | Path,
    family: str,
    model_config: Any,
    train_config: TrainConfig,
    data_spec: DataSpec,
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Create a run directory with its config.json from configs made already (`create` makes
    them from options). Refuses to overwrite an existing run."""
    run_dir = Path(run_dir)
    _require_new(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "family": family,
        "model": dataclasses.asdict(model_config),
        "train": dataclasses.asdict(train_config),
        "data": dataclasses.asdict(data_spec),
        "versions": {"genlab": genlab.__version__, "torch": torch.__version__.split("+")[0]},
        **(extra or {}),
    }
    write_json(run_dir / CONFIG, config)
    return run_dir


# ------------------------------------------------------------------------------ options files


def read_options(path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """The family and options of a JSON or TOML file: a flat table of options with a "family"
    entry, or a run's config.json (its recorded options: the same run again).

    Raises:
        GenlabError: the file is unreadable, not a table, or names no known family.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise GenlabError(f"--config {path}: cannot be read ({e})") from None
    try:
        table = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise GenlabError(f"--config {path}: not valid {kind} ({e})") from None
    if not isinstance(table, dict) or not isinstance(table.get("family"), str):
        raise GenlabError(f"--config {path}: needs a table with a 'family' entry")
    family = table["family"]
    if family not in FAMILIES:
        raise GenlabError(
            f"--config {path}: unknown family {family!r}; known: {', '.join(FAMILIES)}"
        )
    if "model" in table and "train" in table:  # a run's config.json
        return family, run_options(table, str(path))
    return family, {k: v for k, v in table.items() if k != "family"}


def run_options(config: dict[str, Any], source: str) -> dict[str, Any]:
    """The options that created a run (config.json's "options"; for runs of older genlab
    versions, rebuilt from the model, training and data configs)."""
    if isinstance(config.get("options"), dict):
        return dict(config["options"])
    known = options_of(get_family(config["family"], source))
    found = {**config.get("train", {}), **config.get("model", {}), **config.get("agent", {})}
    options = {k: v for k, v in found.items() if k in known and v is not None}
    data = config.get("data", {})
    if data.get("name") == "folder":
        options.update(data=data.get("path"), size=data.get("size") or 32)
        options["channels"] = data.get("channels", 1)
    elif data.get("path"):
        options["data_dir"] = data["path"]
    if data.get("limit"):
        options["limit"] = data["limit"]
    if "first_stage" in config and "vae" in known:
        options["vae"] = config["first_stage"]
    return options
