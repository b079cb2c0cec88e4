"""genlab: a generative deep learning lab.

Train, sample, evaluate and explore generative models (autoencoders, VAEs, GANs, diffusion) on
real data. Every command of the `genlab` CLI is a function here or in a submodule, with the same
names and options:

```python
import genlab
run = genlab.create("vae", "runs/vae", max_minutes=3)     # genlab train vae --out runs/vae ...
genlab.train(run)                                         # (genlab train --resume runs/vae)
samples = genlab.sample(run, 64, seed=0)                  # genlab sample runs/vae --n 64
genlab.save_samples(samples, "samples.png")
model = genlab.load(run)                                  # the nn.Module, no training code
```

Heavy libraries (torch) are imported only when used, so that `import genlab` and
`genlab --help` stay fast.
"""

from __future__ import annotations

import importlib

from genlab.errors import GenlabError
from genlab.memory import keep_freed_memory

keep_freed_memory()  # a process-wide allocator setting: steps stop faulting their memory in

__version__ = "0.1.0"
__all__ = [
    "GenlabError",
    "__version__",
    "compare",
    "create",
    "evaluate",
    "load",
    "sample",
    "save_samples",
    "train",
]

_LAZY = {
    "create": "genlab.training.create:create",
    "train": "genlab.training.engine:train",
    "sample": "genlab.sampling:sample",
    "save_samples": "genlab.sampling:save_samples",
    "evaluate": "genlab.evaluation.scoring:evaluate",
    "compare": "genlab.evaluation.scoring:compare",
}


def load(run_dir, *, ema: bool = True, device: str = "auto"):
    """Rebuild a trained model from a run directory alone (config.json + safetensors weights).

    Args:
        run_dir: the run directory written by `genlab train`.
        ema: use the EMA weights when the run has them.
        device: where to put the model: auto (a CUDA GPU where there is one, else MPS, else
            the CPU), cpu, cuda, cuda:N or mps (`genlab.devices`).

    Returns:
        The model in eval mode.
    """
    from genlab.runs import load_model

    return load_model(run_dir, ema=ema, device=device)


def __getattr__(name: str):
    if name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")
