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

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_path
from genlab.errors import GenlabError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
EMA_WEIGHTS = "ema.safetensors"


def config_from_dict(cls: type, values: dict[str, Any], source: str = "config") -> Any:
    """Build a frozen dataclass from JSON values (lists become tuples where the field is a tuple).

    Raises:
        GenlabError: unknown or badly typed keys.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise GenlabError(
            f"{source}: unknown {cls.__name__} keys {unknown}; valid: {sorted(fields)}"
        )
    clean = {}
    for name, value in values.items():
        default = fields[name].default
        clean[name] = (
            tuple(value) if isinstance(value, list) and isinstance(default, tuple) else value
        )
    try:
        return cls(**clean)
    except (TypeError, ValueError) as e:
        raise GenlabError(f"{source}: invalid {cls.__name__}: {e}") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


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
    for key in ("family", "model"):
        if key not in config:
            raise GenlabError(f"{path}: has no {key!r} entry; the run directory is damaged")
    return config


def save_weights(
    path: str | os.PathLike, state_dict: dict, metadata: dict[str, str] | None = None
) -> None:
    """Write a state dict as safetensors, atomically (never pickled)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_weights(path: str | os.PathLike) -> dict:
    """Read a safetensors file; refuse unreadable files and NaN/Inf weights with a clear line."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path}: missing; the run has no saved weights yet")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise GenlabError(f"{path}: not a readable safetensors file ({e}); it is corrupt") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise GenlabError(
                f"{path}: tensor {name!r} contains NaN or Inf; these weights are unusable: "
                "retrain or resume from an earlier run"
            )
    return state


def build_model(config: dict[str, Any], source: str = CONFIG):
    """The untrained model a run's config describes."""
    from genlab.models import FAMILIES

    family = config["family"]
    if family not in FAMILIES:
        raise GenlabError(f"{source}: unknown model family {family!r}; known: {sorted(FAMILIES)}")
    config_cls, model_cls = FAMILIES[family]
    return model_cls(config_from_dict(config_cls, config["model"], source))


def load_model(run_dir: str | os.PathLike, *, ema: bool = True, device: str = "cpu"):
    """Rebuild a model from a run directory alone. See `genlab.load`."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    model = build_model(config, str(run_dir / CONFIG))
    path = run_dir / EMA_WEIGHTS if ema and (run_dir / EMA_WEIGHTS).is_file() else run_dir / WEIGHTS
    state = load_weights(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise GenlabError(f"{path}: weights do not match config.json ({first})") from None
    return model.to(device).eval()
