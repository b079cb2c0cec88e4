"""The diffusion samplers by name: the one list that `genlab.diffusion.sample`, the model
config, the command line and the app read. Free of torch, so that the command line offers the
names without importing it."""

from __future__ import annotations

from genlab.errors import GenlabError

SAMPLERS = ("ddpm", "ddim", "dpmpp_2m")
"""The samplers of `genlab.diffusion.sample` (and DDPMConfig.sampler): ancestral DDPM, DDIM,
DPM-Solver++ 2M."""
SAMPLER_ALIASES = {"dpm": "dpmpp_2m"}
"""Short names the command line, the Python API and the app take too."""
SAMPLER_NAMES = tuple(
    next((alias for alias, full in SAMPLER_ALIASES.items() if full == name), name)
    for name in SAMPLERS
)
"""The shortest name of each sampler, as offered to users ("ddpm", "ddim", "dpm")."""


def sampler_named(name: str) -> str:
    """The sampler a user's name means ("dpm" -> "dpmpp_2m"), or a one-line error."""
    full = SAMPLER_ALIASES.get(name, name)
    if full not in SAMPLERS:
        raise GenlabError(f"--sampler {name}: use {', '.join(SAMPLER_NAMES)}")
    return full
