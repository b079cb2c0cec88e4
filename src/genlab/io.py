"""Reading and writing what runs are made of: configs (JSON) and weights (safetensors).

The lowest layer of genlab: every other module may import it, it imports none of them but
`atomic` and `errors`. Nothing is ever pickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
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


CHECKSUM = "sha256"
"""The safetensors metadata key of `weights_checksum` (safetensors itself has no checksum)."""
_HEX64 = re.compile(r"[0-9a-f]{64}")


def weights_checksum(tensors: dict, metadata: dict[str, str]) -> str:
    """SHA-256 of a state dict as written: every tensor in sorted key order (its key, dtype,
    shape and bytes), then the other metadata in sorted key order. Any flipped bit of a weights
    file changes it (or makes the file unreadable)."""
    import torch

    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        flat = t.detach().cpu().reshape(-1)  # (one element may keep any stride: clone it)
        if flat.numel() == 1 and flat.stride(0) != 1:
            flat = flat.clone(memory_format=torch.contiguous_format)
        if flat.numel() > 0:
            h.update(flat.view(torch.uint8).numpy().data)
    for key in sorted(metadata):
        if key != CHECKSUM:
            h.update(f"{key}\0{metadata[key]}\0".encode())
    return h.hexdigest()


def save_weights(
    path: str | os.PathLike, state_dict: dict, metadata: dict[str, str] | None = None
) -> None:
    """Write a state dict as safetensors, atomically (never pickled), with its
    `weights_checksum` in the metadata.

    Raises:
        OSError: the file could not be written (a full disk: safetensors' own error for it, an
            OSError to every caller).
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = dict(metadata or {})
    metadata[CHECKSUM] = weights_checksum(tensors, metadata)
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as e:  # "... I/O error: No space left on device (os error 28)"
        code = re.search(r"os error (\d+)", str(e))
        if code is None:
            raise OSError(f"{path}: {e}") from None
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None


def load_weights(path: str | os.PathLike) -> dict:
    """Read a safetensors file; refuse unreadable or damaged files (a checksum that does not
    match: a truncated or flipped file) and NaN/Inf weights with a clear line. Files without a
    checksum (written before genlab stored one) load unchecked."""
    import torch
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path}: missing; the run has no saved weights yet")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise GenlabError(f"{path}: not a readable safetensors file ({e}); it is corrupt") from None
    # A checksum under a flipped key still counts: only files with none are older ones.
    checked = CHECKSUM in metadata or any(_HEX64.fullmatch(v) for v in metadata.values())
    if checked and metadata.get(CHECKSUM) != weights_checksum(state, metadata):
        raise GenlabError(
            f"{path}: damaged (its checksum does not match its contents: a flipped bit or a "
            "partial copy); restore it from a copy, or retrain"
        )
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise GenlabError(
                f"{path}: tensor {name!r} contains NaN or Inf; these weights are unusable: "
                "retrain or resume from an earlier run"
            )
    return state
