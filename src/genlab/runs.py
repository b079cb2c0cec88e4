"""Run directories: config.json + safetensors weights, readable with no training code.

```
RUN/
  config.json         family, model config, training config, data spec, versions
  model.safetensors   weights (ema.safetensors too when EMA is on); never pickled
  state/              full training state for exact resume (see genlab.training.checkpoint)
  metrics.csv         one row per logged step
  samples/            grids written during training
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genlab.errors import GenlabError
from genlab.io import config_from_dict, load_weights, save_weights, write_json

if TYPE_CHECKING:
    from genlab.family import Family

__all__ = [
    "CONFIG",
    "EMA_WEIGHTS",
    "Run",
    "WEIGHTS",
    "build_model",
    "checkpoint_dir",
    "config_from_dict",
    "load_model",
    "load_state",
    "load_weights",
    "run_path",
    "save_weights",
    "trained_step",
    "write_json",
]

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
EMA_WEIGHTS = "ema.safetensors"
STATE = "state"
"""The training state for exact resume (`genlab.training.checkpoint` writes and reads it)."""


def checkpoint_dir(run_dir: str | os.PathLike) -> Path | None:
    """The directory holding the latest complete checkpoint, or None when there is none
    (state/, or state.old/ after a crash between the two renames of a checkpoint's swap)."""
    run_dir = Path(run_dir)
    for name in (STATE, f"{STATE}.old"):
        if (run_dir / name / "trainer.json").is_file():
            return run_dir / name
    return None


def trained_step(run_dir: str | os.PathLike) -> int | None:
    """The step of a run's latest checkpoint (None without one)."""
    where = checkpoint_dir(run_dir)
    if where is None:
        return None
    return json.loads((where / "trainer.json").read_text()).get("step")


def build_model(config: Mapping[str, Any], source: str = CONFIG):
    """The untrained model a config (config.json's dict) describes."""
    from genlab.families import get_family

    family = get_family(config["family"], source)
    model_config = config_from_dict(family.config, config["model"], source)
    try:
        return family.model(model_config)
    except ValueError as e:  # a value the model cannot take (GenlabError is one too)
        raise GenlabError(f"{source}: {e}") from None


def load_model(run: str | os.PathLike | Run, *, ema: bool = True, device: str | None = None):
    """Rebuild a model from a run directory alone (`Run.model`). See `genlab.load`."""
    return Run.of(run).model(ema=ema, device=device)


def load_state(model, state: dict, path: str | os.PathLike) -> None:
    """`model.load_state_dict(state)`, the weights read from `path`; weights that do not fit
    the model config.json describes are one line."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise GenlabError(f"{path}: weights do not match config.json ({first})") from None


@dataclass(frozen=True)
class Run:
    """A run directory, opened once (its config.json read and checked, its family looked up) and
    passed down to everything a command does with it.

    A Run is an `os.PathLike` of its directory, so `Path(run) / "metrics.csv"` and messages
    `f"{run}: ..."` read as with the path itself.

    Attributes:
        path: the run directory.
        config: config.json, parsed (read-only by convention: `with_config` makes a new Run).
        family: the family's record (`genlab.family.Family`).
    """

    path: Path
    config: Mapping[str, Any]
    family: Family

    @classmethod
    def open(cls, path: str | os.PathLike) -> Run:
        """The run in `path`, with one-line errors for a missing directory, a missing or broken
        config.json and an unknown family."""
        from genlab.families import get_family

        path = Path(path)
        source = path / CONFIG
        if not path.is_dir():
            raise GenlabError(f"{path}: no such run directory; train one with `genlab train`")
        if not source.is_file():
            raise GenlabError(f"{source}: missing; {path} is not a genlab run directory")
        try:
            config = json.loads(source.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise GenlabError(
                f"{source}: not valid JSON ({e}); the run directory is damaged"
            ) from None
        if not isinstance(config, dict):
            raise GenlabError(f"{source}: not a genlab run config (a JSON object); it is damaged")
        for key in ("family", "model"):
            if key not in config:
                raise GenlabError(f"{source}: has no {key!r} entry; the run directory is damaged")
        family = get_family(config["family"], str(source))
        if family.upgrade is not None:
            config = family.upgrade(config)
        return cls(path, config, family)

    @classmethod
    def of(cls, run: str | os.PathLike | Run) -> Run:
        """`run` itself when it is a Run, else `Run.open(run)`: what functions that take a run
        directory or an opened run call first."""
        return run if isinstance(run, Run) else cls.open(run)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def source(self) -> str:
        """The config file's path, for messages about what it says."""
        return str(self.path / CONFIG)

    @property
    def name(self) -> str:
        """The family's name ("vae", "ddpm", ...)."""
        return self.family.name

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the classes the run's data had (empty without labels)."""
        return tuple(self.config.get("class_names", ()))

    @property
    def model_config(self) -> Any:
        """The family's frozen model config, from config.json's "model"."""
        return config_from_dict(self.family.config, self.config["model"], self.source)

    @property
    def train_config(self):
        """The `genlab.training.TrainConfig` of config.json's "train"."""
        from genlab.training.config import TrainConfig

        if not isinstance(self.config.get("train"), dict):
            raise GenlabError(f"{self.source}: has no 'train' entry; the run directory is damaged")
        return config_from_dict(TrainConfig, self.config["train"], self.source)

    def with_config(self, config: Mapping[str, Any]) -> Run:
        """The same run with another config (new budgets before they are stored)."""
        return Run(self.path, config, self.family)

    def specs(self) -> dict[str, Any]:
        """The data specs of config.json ("data", and "data_b", ... of families with several),
        as the family's spec type (`DataSpec`, an agent's `EnvSpec`)."""
        from genlab.data import DataSpec

        spec_type = self.family.spec_type or DataSpec
        keys = [k for k in self.config if k == "data" or k.startswith("data_")]
        specs = {k: config_from_dict(spec_type, self.config[k], self.source) for k in keys}
        specs.setdefault("data", spec_type())
        return specs

    def image_spec(self):
        """The `DataSpec` of the run's images ("data"), or a one-line error for a run whose data
        is not images (an agent's environment)."""
        from genlab.data import DataSpec

        spec = self.specs()["data"]
        if not isinstance(spec, DataSpec):
            raise GenlabError(
                f"{self}: a {self.name} run has no images (it acts in {getattr(spec, 'env', spec)})"
            )
        return spec

    def data(self, split: str = "train") -> Any:
        """One split of the run's data, as its family reads it (an ImageData, a CycleGAN's
        Domains, an agent's environment description)."""
        try:
            return self.family.read_data(self.specs(), split)
        except GenlabError as e:  # say where the data spec came from
            raise GenlabError(f"{self.source}: {e}") from None
        except KeyError as e:  # a spec the family reads is not there
            raise GenlabError(
                f"{self.source}: has no {e} entry; the run directory is damaged"
            ) from None

    def build(self):
        """The untrained model config.json describes."""
        return build_model(self.config, self.source)

    def model(self, *, ema: bool = True, device: str | None = None):
        """The trained model in eval mode on `device` (None: `genlab.devices`' default, auto
        unless a `using` block says otherwise): its EMA weights where it has them and `ema`,
        else model.safetensors; buffers a run may leave out (`RECOMPUTABLE`) recomputed."""
        from genlab.devices import resolve

        device = resolve(device)  # first: a device that is not there is one line, at once
        model = self.build()
        ema_path = self.path / EMA_WEIGHTS
        path = ema_path if ema and ema_path.is_file() else self.path / WEIGHTS
        state = load_weights(path)
        own = model.state_dict()
        left_out = [k for k in getattr(model, "RECOMPUTABLE", ()) if k in own and k not in state]
        if left_out and model.restore(self.config):
            state = {**state, **{k: own[k] for k in left_out}}
        load_state(model, state, path)
        return model.to(device).eval()

    @property
    def checkpoint(self) -> Path | None:
        """The directory of the latest complete checkpoint (None: none yet)."""
        return checkpoint_dir(self.path)

    @property
    def trained_step(self) -> int | None:
        """The step of the latest checkpoint (None without one)."""
        return trained_step(self.path)


def run_path(run: str | os.PathLike | Run) -> Path:
    """The directory of a run given as a path or a Run."""
    return run.path if isinstance(run, Run) else Path(run)
