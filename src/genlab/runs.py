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
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.io import config_from_dict, load_weights, save_weights, write_json

__all__ = [
    "CONFIG",
    "EMA_WEIGHTS",
    "WEIGHTS",
    "build_model",
    "checkpoint_dir",
    "config_from_dict",
    "load_model",
    "load_state",
    "load_weights",
    "read_config",
    "save_weights",
    "trained_step",
    "write_json",
]

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
EMA_WEIGHTS = "ema.safetensors"
STATE = "state"
"""The training state for exact resume (`genlab.training.checkpoint` writes and reads it)."""


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed config.json of a run, with one-line errors for missing or broken files."""
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise GenlabError(f"{run_dir}: no such run directory; train one with `genlab train`")
    if not path.is_file():
        raise GenlabError(f"{path}: missing; {run_dir} is not a genlab run directory")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GenlabError(f"{path}: not valid JSON ({e}); the run directory is damaged") from None
    if not isinstance(config, dict):
        raise GenlabError(f"{path}: not a genlab run config (a JSON object); the run is damaged")
    for key in ("family", "model"):
        if key not in config:
            raise GenlabError(f"{path}: has no {key!r} entry; the run directory is damaged")
    return config


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


def build_model(config: dict[str, Any], source: str = CONFIG):
    """The untrained model a run's config describes."""
    from genlab.families import get_family

    family = get_family(config["family"], source)
    model_config = config_from_dict(family.config, config["model"], source)
    try:
        return family.model(model_config)
    except ValueError as e:  # a value the model cannot take (GenlabError is one too)
        raise GenlabError(f"{source}: {e}") from None


def load_model(run_dir: str | os.PathLike, *, ema: bool = True, device: str = "cpu"):
    """Rebuild a model from a run directory alone. See `genlab.load`."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    model = build_model(config, str(run_dir / CONFIG))
    path = run_dir / EMA_WEIGHTS if ema and (run_dir / EMA_WEIGHTS).is_file() else run_dir / WEIGHTS
    state = load_weights(path)
    own = model.state_dict()
    left_out = [k for k in getattr(model, "RECOMPUTABLE", ()) if k in own and k not in state]
    if left_out and model.restore(config):  # buffers a run may leave out, recomputed
        state = {**state, **{k: own[k] for k in left_out}}
    load_state(model, state, path)
    return model.to(device).eval()


def load_state(model, state: dict, path: str | os.PathLike) -> None:
    """`model.load_state_dict(state)`, the weights read from `path`; weights that do not fit
    the model config.json describes are one line."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise GenlabError(f"{path}: weights do not match config.json ({first})") from None
