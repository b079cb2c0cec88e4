"""Loading a Stable Diffusion model from disk, never from a hub, in the right precision.

1. `offline()` switches the Hugging Face libraries to offline mode for this process;
2. `genlab.sd.checks.inspect_model` checks the files and the memory before anything loads;
3. diffusers loads the folder (`from_pretrained`) or the single file with its local configs
   (`from_single_file`), always with local_files_only and, unless pickles are allowed, only
   safetensors;
4. on a CPU with native bf16, "auto" precision times fp32 and bf16 once and keeps the faster.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import torch

from genlab.errors import GenlabError
from genlab.sd.checks import (
    ModelSource,
    available_memory,
    estimate_memory,
    inspect_model,
    size_text,
)
from genlab.sd.pipeline import DTYPES, StableDiffusion


def offline() -> None:
    """Make every Hugging Face library refuse the network, for this process.

    Set before diffusers/transformers are imported (they read the environment then) and on
    huggingface_hub's constant, which its HTTP session checks before every request.
    """
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ[var] = "1"
    os.environ["DISABLE_TELEMETRY"] = "YES"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY = True


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GenlabError(f"--device {device}: no CUDA GPU here; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise GenlabError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """fp32, bf16 or fp16 for a requested precision; "auto" on a CPU stays a question.

    "auto" on CUDA is bf16 where the GPU has it (no fp16 overflow in the VAE), else fp16. On a
    CPU it is fp32 unless the CPU computes bf16 natively; then the answer is measured
    (`StableDiffusion` does it once per CPU and model), so "auto" comes back "measure".
    """
    from genlab.runtime import bf16_native

    if precision not in ("auto", *DTYPES):
        raise GenlabError(f"unknown precision {precision!r}: use auto, fp32, bf16 or fp16")
    if precision == "fp16" and device == "cpu":
        raise GenlabError("fp16 is for CUDA; on the CPU use fp32 or bf16 (or auto)")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "measure" if bf16_native() else "fp32"


def load(
    path: str | os.PathLike,
    *,
    config: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    allow_pickle: bool = False,
    safety_checker: bool = True,
) -> StableDiffusion:
    """Load a Stable Diffusion model from disk, never from a hub.

    Args:
        path: a diffusers folder (model_index.json) or a single checkpoint file (.safetensors;
            .ckpt only with allow_pickle).
        config: for a single file: a folder with the diffusers configs and tokenizer.
        device: "auto" (CUDA if present), "cpu" or "cuda[:N]".
        precision: "auto" (see `resolve_precision`), "fp32", "bf16" or "fp16" (CUDA).
        allow_pickle: accept pickled weights, which can run code when loaded.
        safety_checker: run the model's safety checker when it has one.

    Raises:
        GenlabError: a missing component, wrong file, refused pickle or too little memory.
    """
    offline()
    source = inspect_model(path, config=config, allow_pickle=allow_pickle)
    device = resolve_device(device)
    chosen = resolve_precision(precision, device)
    dtype = DTYPES["fp32" if chosen == "measure" else chosen]
    width = height = source.native_size
    free = available_memory("cpu")
    memory = estimate_memory(source, dtype.itemsize, width, height, free)
    if memory.weights + memory.loading > free:
        raise GenlabError(
            f"{source.path}: loading needs about {size_text(memory.weights + memory.loading)} and "
            f"{size_text(free)} of memory is free; close other programs or use a smaller model"
        )
    pipe = _load_pipeline(source, dtype, allow_pickle, safety_checker)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    sd = StableDiffusion(pipe, source, device, "fp32" if chosen == "measure" else chosen)
    if chosen == "measure":
        sd = _choose_cpu_precision(sd)
    return sd


def _load_pipeline(source: ModelSource, dtype, allow_pickle: bool, safety_checker: bool):
    import diffusers

    cls = diffusers.StableDiffusionPipeline
    if source.in_channels == 9:
        cls = diffusers.StableDiffusionInpaintPipeline
    options: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    has_checker = all(source.component(c) for c in ("safety_checker", "feature_extractor"))
    if not safety_checker or not has_checker:
        options.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        if source.single_file:
            return cls.from_single_file(str(source.path), config=str(source.config_dir), **options)
        return cls.from_pretrained(
            str(source.path),
            use_safetensors=None if allow_pickle else True,
            variant=source.variant,
            **options,
        )
    except (OSError, ValueError, RuntimeError, KeyError, AttributeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GenlabError(
            f"{source.path}: diffusers could not load it ({first}); check that its files are "
            "complete and belong together"
        ) from e


def _choose_cpu_precision(sd: StableDiffusion) -> StableDiffusion:
    """On a CPU with native bf16: measure fp32 and bf16 once per CPU and model; keep the faster."""
    import json

    from genlab.atomic import atomic_path
    from genlab.data.fashion_mnist import cache_dir

    architecture = {k: v for k, v in sd.pipe.unet.config.items() if not k.startswith("_")}
    unet_config = json.dumps(architecture, sort_keys=True, default=str)  # not where it came from
    key = "|".join([_cpu_name(), torch.__version__, str(torch.get_num_threads()),
                    hashlib.sha256(unet_config.encode()).hexdigest()[:16]])  # fmt: skip
    path = cache_dir() / "sd-precision.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        known = {}
    if key not in known:
        size = max(sd.source.vae_scale_factor, sd.native_size // 2)
        fp32 = sd.time_step(size, size, "fp32").seconds
        bf16 = sd.time_step(size, size, "bf16").seconds
        known[key] = {"fp32": fp32, "bf16": bf16, "size": size}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(known, indent=1))
    if known[key]["bf16"] < known[key]["fp32"]:
        sd.pipe.to(torch.bfloat16)
        sd.precision = "bf16"
    return sd


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def quiet_libraries() -> None:
    """diffusers/transformers log warnings and progress bars of their own: keep errors only."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_offline(path, **options):
    """`load` with the hub switched off and the libraries' own logging quiet."""
    offline()
    quiet_libraries()
    return load(path, **options)
