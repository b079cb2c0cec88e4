"""Where models run: one device policy for every command and the Python API.

A device is named as on the command line's `--device`: `auto` (the default: a CUDA GPU where
there is one, else Apple's MPS, else the CPU), `cpu`, `cuda`, `cuda:N` or `mps`. `resolve`
turns a name into a `torch.device`, and a device that is not there is one line (a
`GenlabError`, exit code 2 from the CLI). `using(name)` makes a device the default of whatever
runs inside it (`Run.model`, the feature network of `genlab eval`, the pictures): the CLI wraps
each command in it; in Python, name the device where you load (`genlab.load(run,
device="cuda")`) or wrap a block:

```python
with genlab.devices.using("cuda:1"):
    genlab.pictures.latent.morph("runs/vae").save("morph.png")
```

Training goes through Hugging Face accelerate: under `accelerate launch` or torchrun each
process takes the GPU of its local rank (accelerate's rules) and `--device` may only say
`auto`, `cuda` or `cpu`.

Nothing here imports torch at module level: `genlab --help` stays fast.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING

from genlab.errors import GenlabError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = (
    "Where the model runs: auto (a CUDA GPU where there is one, else Apple's MPS, else the "
    "CPU), cpu, cuda, cuda:N or mps."
)
_DEFAULT: contextvars.ContextVar[str] = contextvars.ContextVar("genlab_device")
_PROCESS_DEFAULT = {"device": "auto"}  # where no `using` block says otherwise (any thread)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve(name: str | torch.device | None = None) -> torch.device:
    """The torch.device named `name` (None: the device of the innermost `using`, else auto).

    Raises:
        GenlabError: the name is not a device, or the device is not on this machine.
    """
    import torch

    name = _DEFAULT.get(_PROCESS_DEFAULT["device"]) if name is None else str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise GenlabError(
            f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GenlabError(f"--device {name}: no CUDA GPU here; use --device cpu (or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise GenlabError(
                f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
        return device if device.index is not None else torch.device("cuda", 0)
    if device.type == "mps":
        if not _mps_available():
            raise GenlabError(f"--device {name}: no Apple MPS device here; use --device cpu")
        return torch.device("mps")
    raise GenlabError(f"--device {name}: genlab runs on auto, cpu, cuda, cuda:N or mps")


@contextlib.contextmanager
def using(name: str | torch.device | None) -> Iterator[torch.device]:
    """Make the device `name` (checked by `resolve`) the default inside the block; None keeps
    the current default. Yields the resolved device."""
    device = resolve(name)
    token = _DEFAULT.set(str(device))
    try:
        yield device
    finally:
        _DEFAULT.reset(token)


def set_default(name: str | torch.device | None) -> torch.device:
    """Make `name` the default of the whole process, threads included (the app's handlers run
    in worker threads, which a `using` block does not reach); None keeps it. Returns it."""
    device = resolve(name)
    _PROCESS_DEFAULT["device"] = str(device)
    return device


def describe(device: torch.device) -> str:
    """The device in words for a run's record: "cpu", "cuda:0 (NVIDIA H200)", "mps"."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type
