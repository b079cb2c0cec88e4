"""The sampler names: the one list that `genlab.diffusion.sample`, `genlab.flow.solve`, the
model configs, the command line and the app read. Free of torch, so that the command line
offers the names without importing it."""

from __future__ import annotations

from genlab.errors import GenlabError

SAMPLERS = ("ddpm", "ddim", "dpmpp_2m")
"""The samplers of `genlab.diffusion.sample` (and DiffusionConfig.sampler): ancestral DDPM,
DDIM, DPM-Solver++ 2M."""
FLOW_SAMPLERS = ("euler", "midpoint", "heun")
"""The ODE solvers of `genlab.flow.solve` (and FlowMatchingConfig.sampler)."""
SAMPLER_ALIASES = {"dpm": "dpmpp_2m"}
"""Short names the command line, the Python API and the app take too."""


def short_names(samplers: tuple[str, ...]) -> tuple[str, ...]:
    """The shortest name of each sampler, as offered to users ("ddpm", "ddim", "dpm")."""
    return tuple(
        next((alias for alias, full in SAMPLER_ALIASES.items() if full == name), name)
        for name in samplers
    )


SAMPLER_NAMES = short_names(SAMPLERS)
"""The diffusion samplers' shortest names."""
ALL_SAMPLER_NAMES = (*SAMPLER_NAMES, *FLOW_SAMPLERS)
"""Every sampler a user can name, diffusion and flow."""


def sampler_named(name: str, allowed: tuple[str, ...] = SAMPLERS) -> str:
    """The sampler a user's name means ("dpm" -> "dpmpp_2m") among the `allowed` ones (a
    model's), or a one-line error naming those."""
    full = SAMPLER_ALIASES.get(name, name)
    if full not in allowed:
        raise GenlabError(f"--sampler {name}: this run takes {', '.join(short_names(allowed))}")
    return full
