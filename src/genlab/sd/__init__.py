"""Local Stable Diffusion through diffusers, strictly offline: `genlab.sd.load(path)`.

    import genlab.sd
    sd = genlab.sd.load("models/stable-diffusion-v1-5")       # a diffusers folder, or
    sd = genlab.sd.load("model.safetensors", config="models/sd15-configs")  # one file
    pic = sd.txt2img("a lighthouse at dusk", seed=1, steps=20, scheduler="dpm++-2m")
    pic.image            # (H, W, 3) uint8; sd.metadata(pic) is what the PNG stores

Nothing here contacts a hub: the Hugging Face libraries are put in offline mode and every load
is local_files_only. torch and diffusers are imported on first use, so importing this package
is cheap (the CLI registers its commands without them).
"""

from __future__ import annotations

from genlab.sd.checks import ModelSource, inspect_model
from genlab.sd.schedulers import DEFAULT_SCHEDULER, SCHEDULERS

__all__ = ["DEFAULT_SCHEDULER", "SCHEDULERS", "ModelSource", "inspect_model", "load"]


def load(path, **options):
    """Load a Stable Diffusion model from disk; see `genlab.sd.loading.load` for options.

    Returns:
        A `genlab.sd.pipeline.StableDiffusion`.
    """
    from genlab.sd.loading import load as load_pipeline

    return load_pipeline(path, **options)
