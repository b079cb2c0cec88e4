"""Reading and writing what runs are made of: configs (JSON) and weights (safetensors).

The lowest layer of genlab: every other module may import it, it imports none of them but
`atomic` and `errors`. Nothing is ever pickled.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_path
from genlab.errors import GenlabError


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
