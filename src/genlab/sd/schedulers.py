"""The samplers `genlab sd --scheduler` offers: a name -> a diffusers scheduler class and options.

Each is built from the model's own scheduler config (`from_config`), so the model's noise
schedule and prediction type (epsilon, or v for SD 2.x 768) carry over unchanged.
"""

from __future__ import annotations

from typing import Any

# name -> (diffusers class, options over the model's config)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),  # Song et al. 2021, deterministic (eta 0)
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),  # Liu et al. 2022; SD 1.x's default
    "euler": ("EulerDiscreteScheduler", {}),  # Karras et al. 2022, Algorithm 2 without churn
    "euler-ancestral": ("EulerAncestralDiscreteScheduler", {}),  # adds fresh noise each step
    "dpm++-2m": (  # Lu et al. 2022, DPM-Solver++(2M): good pictures in 20 steps
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    "dpm++-2m-karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "unipc": ("UniPCMultistepScheduler", {}),  # Zhao et al. 2023
    "lcm": ("LCMScheduler", {}),  # Luo et al. 2023: 4-8 steps, for LCM-distilled models only
}
DEFAULT_SCHEDULER = "dpm++-2m"


def make_scheduler(name: str, model_config: Any):
    """A fresh scheduler `name` on the model's scheduler config (a diffusers FrozenDict)."""
    import diffusers

    from genlab.errors import GenlabError

    if name not in SCHEDULERS:
        raise GenlabError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    class_name, options = SCHEDULERS[name]
    config = {k: v for k, v in dict(model_config).items() if not k.startswith("_")}
    return getattr(diffusers, class_name).from_config(config, **options)
