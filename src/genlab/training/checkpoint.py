"""Training state for exact resume, without pickle.

A checkpoint is a directory `RUN/state/`:
  model.safetensors, ema.safetensors   the weights at that step
  optimizer.safetensors                optimizer tensors (moments, step counts) and RNG states
  trainer.json                         step, elapsed time, optimizer hyper-parameters

A run with several optimizers (a GAN's discriminator and generator) passes them by name; their
tensors are then keyed "<name>.state.<index>.<slot>" and their hyper-parameters stored under
"optimizers" in trainer.json. Other training-state tensors a loop needs for exact resume (a
CycleGAN's image pools) go in as `extra` and are stored in optimizer.safetensors as "extra.<key>".

It is written as `state.tmp/`, then swapped in by two renames; the inference weights at the top
of the run directory are hard links to the same files. A crash at any point leaves either the old
or the new checkpoint complete (a crash between the two renames leaves `state.old/`, which
`load_checkpoint` uses, and `finish_interrupted_save` puts back when the run resumes); a write
that fails (a full disk) removes `state.tmp/` and raises one line, the old checkpoint kept. Every
safetensors file carries a checksum (`genlab.io.weights_checksum`), so a damaged one is refused
on load. tests/training/test_faults.py kills training at random points of these writes.

accelerate's own save_state pickles the optimizer and RNG state (torch.save); genlab keeps
accelerate for devices, DDP and autocast, and writes the state itself in safetensors + JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from genlab.errors import GenlabError
from genlab.runs import EMA_WEIGHTS, STATE, WEIGHTS, checkpoint_dir, load_weights, save_weights


class Checkpoint(NamedTuple):
    """A loaded checkpoint: weights, optimizer state dicts, RNG states and trainer fields.

    `optimizer` is the state dict of a run with one optimizer (None when it saved named ones);
    `optimizers` maps names to state dicts for a run with several ({} otherwise); `extra`
    holds the tensors passed as `extra` to `save_checkpoint` ({} when none).
    """

    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any] | None
    rng: dict[str, torch.Tensor]
    trainer: dict[str, Any]
    optimizers: dict[str, dict[str, Any]] = {}
    extra: dict[str, torch.Tensor] = {}


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (safetensors) and plain values (JSON)."""
    tensors, plain = {}, {}
    for index, slots in state_dict["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value
            else:
                plain[f"{index}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": plain}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    run_dir: str | os.PathLike,
    model: torch.nn.Module,
    ema: torch.nn.Module | dict[str, torch.Tensor] | None,
    optimizer: Any,
    trainer: dict[str, Any],
    extra: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write a complete checkpoint atomically (see the module docstring).

    Args:
        ema: the EMA model (or its state dict), None without EMA.
        optimizer: the run's optimizer, or several by name (names without dots); optimizers
            or their state dicts.
        extra: more training-state tensors by key, returned as `Checkpoint.extra`.

    Raises:
        GenlabError: the checkpoint could not be written (a full disk); the previous one is
            kept and `state.tmp/` removed.
    """
    run_dir = Path(run_dir)
    tmp = run_dir / f"{STATE}.tmp"
    try:
        _write_state(tmp, model, ema, optimizer, trainer, extra)
        _swap(run_dir)
    except OSError as e:  # a full disk, a quota, a read-only mount: the last checkpoint stays
        shutil.rmtree(tmp, ignore_errors=True)
        where = checkpoint_dir(run_dir)
        kept = (
            f"the checkpoint of step {_step_of(where)} is kept"
            if where is not None
            else "no checkpoint had been written yet"
        )
        raise GenlabError(
            f"{run_dir}: the checkpoint of step {trainer['step']} could not be written "
            f"({e.strerror or e}); {kept}; make room and resume (genlab train --resume {run_dir})"
        ) from None


def _state(part) -> dict[str, Any]:
    """The state dict of a module or optimizer, or a state dict itself."""
    return part.state_dict() if hasattr(part, "state_dict") else part


def _write_state(
    tmp: Path,
    model: torch.nn.Module,
    ema: torch.nn.Module | dict[str, torch.Tensor] | None,
    optimizer: Any,
    trainer: dict[str, Any],
    extra: Mapping[str, torch.Tensor] | None,
) -> None:
    """Write a whole checkpoint into the directory `tmp` (made afresh)."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    step = str(trainer["step"])
    save_weights(tmp / WEIGHTS, model.state_dict(), {"step": step})
    if ema is not None:
        save_weights(tmp / EMA_WEIGHTS, _state(ema), {"step": step})
    if _named(optimizer):
        opt_tensors, opt_meta = {}, {}
        for name, opt in optimizer.items():
            assert name and "." not in name, f"optimizer name {name!r} must be dot-free"
            tensors, opt_meta[name] = _flatten_optimizer(_state(opt))
            opt_tensors.update({f"{name}.{k}": v for k, v in tensors.items()})
        opt_key = "optimizers"
    else:
        opt_tensors, opt_meta = _flatten_optimizer(_state(optimizer))
        opt_key = "optimizer"
    rng = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    more = {f"extra.{k}": v for k, v in (extra or {}).items()}
    save_weights(tmp / "optimizer.safetensors", {**opt_tensors, **rng, **more}, {"step": step})
    with open(tmp / "trainer.json", "w") as f:
        json.dump({**trainer, opt_key: opt_meta}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def _named(optimizer) -> bool:
    """Whether `optimizer` is several optimizers (or their state dicts) by name, not one
    optimizer or one optimizer's state dict (which has "state" and "param_groups")."""
    if not isinstance(optimizer, Mapping):
        return False
    return not {"state", "param_groups"} <= set(optimizer)


def _swap(run_dir: Path) -> None:
    """state -> state.old, state.tmp -> state, drop state.old; then the top-level weights."""
    tmp, final, old = run_dir / f"{STATE}.tmp", run_dir / STATE, run_dir / f"{STATE}.old"
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    _link_weights(run_dir)


def _link_weights(run_dir: Path) -> None:
    """The inference weights at the top of the run: the checkpoint's files (hard links)."""
    for name in (WEIGHTS, EMA_WEIGHTS):
        if (run_dir / STATE / name).is_file():
            _link_atomically(run_dir / STATE / name, run_dir / name)


def _step_of(where: Path) -> int | str:
    try:
        return json.loads((where / "trainer.json").read_text())["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def finish_interrupted_save(run_dir: str | os.PathLike) -> None:
    """Complete what a process killed while checkpointing left undone, keeping the latest
    complete checkpoint: state.old/ back to state/ (killed between the two renames), no
    state.tmp/ or state.old/ left over, the top-level weights linked to state/'s. Called when
    training starts, after the checkpoint (if any) has loaded: the run may have ended in that
    save, so no later save would tidy up."""
    run_dir = Path(run_dir)
    where = checkpoint_dir(run_dir)
    final, old = run_dir / STATE, run_dir / f"{STATE}.old"
    if where == old:  # no state/: the swap stopped between its renames
        shutil.rmtree(final, ignore_errors=True)
        os.replace(old, final)
    shutil.rmtree(run_dir / f"{STATE}.tmp", ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    for name in (WEIGHTS, EMA_WEIGHTS):
        (run_dir / f".{name}.tmp").unlink(missing_ok=True)
    if where is not None:
        _link_weights(run_dir)


def _link_atomically(src: Path, dst: Path) -> None:
    """Make dst the same file as src (a hard link, or a copy), replacing dst atomically."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    if dst.is_file() and os.path.samefile(src, dst):
        return  # linked already (renaming a link onto its own file does nothing: tmp would stay)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def load_checkpoint(run_dir: str | os.PathLike) -> Checkpoint:
    """Read the latest complete checkpoint of a run."""
    where = checkpoint_dir(run_dir)
    if where is None:
        raise GenlabError(
            f"{run_dir}: has no training state to resume from (no {STATE}/trainer.json)"
        )
    try:
        trainer = json.loads((where / "trainer.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GenlabError(
            f"{where / 'trainer.json'}: not valid JSON ({e}); state is damaged"
        ) from None
    flat = load_weights(where / "optimizer.safetensors")
    rng = {k: v for k, v in flat.items() if k.startswith("rng.")}
    optimizer, optimizers = None, {}
    if "optimizers" in trainer:  # several, by name
        for name, meta in trainer.pop("optimizers").items():
            prefix = f"{name}.state."
            tensors = {k[len(name) + 1 :]: v for k, v in flat.items() if k.startswith(prefix)}
            optimizers[name] = _unflatten_optimizer(tensors, meta)
    else:
        opt_tensors = {k: v for k, v in flat.items() if k.startswith("state.")}
        optimizer = _unflatten_optimizer(opt_tensors, trainer.pop("optimizer"))
    ema_path = where / EMA_WEIGHTS
    return Checkpoint(
        model=load_weights(where / WEIGHTS),
        ema=load_weights(ema_path) if ema_path.is_file() else None,
        optimizer=optimizer,
        rng=rng,
        trainer=trainer,
        optimizers=optimizers,
        extra={k[6:]: v for k, v in flat.items() if k.startswith("extra.")},
    )


def restore_rng(rng: dict[str, torch.Tensor]) -> None:
    """Put back the global RNG states saved with a checkpoint."""
    torch.set_rng_state(rng["rng.torch"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
