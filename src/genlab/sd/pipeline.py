"""A local Stable Diffusion model (Rombach et al. 2022) on diffusers, strictly offline.

`StableDiffusion` wraps one loaded diffusers pipeline and makes pictures from `Request`s: the
plain values that determine a picture (prompt, seed, steps, sampler, guidance, size, input
image). Every picture carries its request in its PNG metadata, so `replay` makes it again.
Randomness comes only from a CPU `torch.Generator` seeded per picture, so a seed gives the same
starting noise on every device.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

import genlab
from genlab.errors import GenlabError
from genlab.sd.checks import (
    ModelSource,
    activation_bytes,
    available_memory,
    size_text,
)
from genlab.sd.schedulers import DEFAULT_SCHEDULER, SCHEDULERS, make_scheduler

MODES = ("txt2img", "img2img", "inpaint")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
METADATA_VERSION = "1"
PIPELINE_CLASSES = {
    "txt2img": "StableDiffusionPipeline",
    "img2img": "StableDiffusionImg2ImgPipeline",
    "inpaint": "StableDiffusionInpaintPipeline",
}


@dataclass(frozen=True)
class Request:
    """Everything that determines one picture; stored in its PNG and replayed from it."""

    prompt: str
    negative_prompt: str = ""
    steps: int = 20
    guidance_scale: float = 7.5
    """Classifier-free guidance weight w (Ho & Salimans 2022); at most 1 turns guidance off."""
    scheduler: str = DEFAULT_SCHEDULER
    seed: int = 0
    width: int | None = None
    """Pixels; None: the model's native size (txt2img) or the input image's (img2img)."""
    height: int | None = None
    mode: str = "txt2img"
    strength: float = 0.75
    """img2img/inpaint: how much of the input to re-noise (1.0 ignores it)."""
    image: str | None = None
    """img2img/inpaint: the input picture's path."""
    mask: str | None = None
    """inpaint: white where to paint, black where to keep."""


class Picture(NamedTuple):
    """One generated picture and the resolved request that made it."""

    image: np.ndarray
    """(H, W, 3) uint8."""
    request: Request
    nsfw: bool
    """The model's safety checker blacked it out."""
    seconds: float


class StepTiming(NamedTuple):
    """Measured seconds per denoising step (one UNet call on a batch of 2 for guidance)."""

    precision: str
    width: int
    height: int
    seconds: float


class Interrupted(Exception):
    """Generation stopped on request (Ctrl-C) at a step boundary."""

    def __init__(self, step: int, total: int):
        super().__init__(f"stopped at step {step}/{total}")
        self.step, self.total = step, total


def image_digest(image: np.ndarray) -> str:
    """sha256 of decoded pixels: the input of img2img, whatever file format held it."""
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def read_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise GenlabError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError) as e:
        raise GenlabError(f"{path}: not a readable image ({e})") from None


def _resize(image: np.ndarray, width: int, height: int) -> Any:
    from PIL import Image

    im = Image.fromarray(image)
    return im if im.size == (width, height) else im.resize((width, height), Image.LANCZOS)


class StableDiffusion:
    """A loaded Stable Diffusion model; make it with `genlab.sd.load(path)`.

    Example:
        sd = genlab.sd.load("models/sd15")
        pic = sd.txt2img("a lighthouse at dusk", seed=1, steps=20)
        Image.fromarray(pic.image)
    """

    def __init__(self, pipe: Any, source: ModelSource, device: str, precision: str):
        self.pipe, self.source, self.device, self.precision = pipe, source, device, precision
        self._pipes = {"txt2img": pipe}

    @property
    def inpainting_model(self) -> bool:
        """An inpainting checkpoint (UNet with 9 input channels): only `inpaint` works."""
        return self.source.in_channels == 9

    @property
    def native_size(self) -> int:
        return self.source.native_size

    # ------------------------------------------------------------------------- generation

    def txt2img(self, prompt: str, **options: Any) -> Picture:
        """A picture from a prompt; options are `Request` fields (seed, steps, width, ...)."""
        return self.generate(Request(prompt, mode="txt2img", **options))

    def img2img(self, prompt: str, image: str | os.PathLike, **options: Any) -> Picture:
        """A picture from a prompt and an input image file (strength=0.75 by default)."""
        return self.generate(Request(prompt, mode="img2img", image=str(image), **options))

    def inpaint(
        self, prompt: str, image: str | os.PathLike, mask: str | os.PathLike, **options: Any
    ) -> Picture:
        """Repaint the white part of `mask` in `image` (strength=1.0 by default)."""
        options.setdefault("strength", 1.0)
        return self.generate(
            Request(prompt, mode="inpaint", image=str(image), mask=str(mask), **options)
        )

    def resolve(self, request: Request) -> Request:
        """The request with its size filled in and every value checked."""
        r = request
        if r.mode not in MODES:
            raise GenlabError(f"unknown mode {r.mode!r}: use {', '.join(MODES)}")
        if r.scheduler not in SCHEDULERS:
            raise GenlabError(
                f"unknown scheduler {r.scheduler!r}; choose one of {', '.join(SCHEDULERS)}"
            )
        if r.steps < 1:
            raise GenlabError(f"--steps {r.steps}: give at least 1")
        if r.guidance_scale < 0:
            raise GenlabError(f"--guidance-scale {r.guidance_scale}: give 0 or more")
        if self.inpainting_model and r.mode != "inpaint":
            raise GenlabError(
                f"{self.source.path}: an inpainting checkpoint (UNet with 9 input channels); "
                "use `genlab sd inpaint` with --image and --mask"
            )
        if r.mode != "txt2img":
            if not r.image:
                raise GenlabError(f"{r.mode} needs an input image (--image FILE)")
            if not 0.0 < r.strength <= 1.0:
                raise GenlabError(f"--strength {r.strength}: give a value in (0, 1]")
            if int(r.steps * r.strength) < 1:
                raise GenlabError(
                    f"--strength {r.strength} of --steps {r.steps} leaves no denoising step; "
                    "raise either"
                )
        if r.mode == "inpaint" and not r.mask:
            raise GenlabError("inpaint needs a mask (--mask FILE, white where to paint)")
        width, height = r.width, r.height
        if width is None or height is None:
            if r.mode == "txt2img":
                w0 = h0 = self.native_size
            else:
                h0, w0 = read_image(r.image).shape[:2]
            f = self.source.vae_scale_factor
            width = width or max(f, w0 // f * f)
            height = height or max(f, h0 // f * f)
        f = self.source.vae_scale_factor
        if width <= 0 or height <= 0 or width % f or height % f:
            raise GenlabError(
                f"size {width}x{height}: width and height must be positive multiples of {f}"
            )
        image = str(Path(r.image).resolve()) if r.image else None
        mask = str(Path(r.mask).resolve()) if r.mask else None
        return replace(r, width=width, height=height, image=image, mask=mask)

    def check_memory(self, width: int, height: int) -> None:
        """Refuse a size whose working memory will not fit (the weights are already loaded)."""
        need = activation_bytes(width, height, DTYPES[self.precision].itemsize)
        free = available_memory(self.device)
        if need > free:
            raise GenlabError(
                f"{width}x{height} needs about {size_text(need)} of working memory and "
                f"{size_text(free)} is free on {self.device}; use a smaller --width/--height"
            )

    def _pipe_for(self, mode: str) -> Any:
        if mode not in self._pipes:
            import diffusers

            cls = getattr(diffusers, PIPELINE_CLASSES[mode])
            self._pipes[mode] = cls.from_pipe(self.pipe)
            self._pipes[mode].set_progress_bar_config(disable=True)
        return self._pipes[mode]

    def generate(
        self,
        request: Request,
        *,
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Picture:
        """Make one picture.

        Args:
            request: what to make (`resolve` fills in the size).
            on_step: called after each denoising step with (step, total).
            should_stop: polled after each step; True raises `Interrupted`.

        Returns:
            The picture (H, W, 3) uint8 and the resolved request.
        """
        r = self.resolve(request)
        self.check_memory(r.width, r.height)
        pipe = self._pipe_for(r.mode)
        pipe.scheduler = make_scheduler(r.scheduler, self.pipe.scheduler.config)

        def step_end(p, i, t, tensors):
            if should_stop is not None and should_stop():
                raise Interrupted(i + 1, p.num_timesteps)
            if on_step is not None:
                on_step(i + 1, p.num_timesteps)
            return {}

        kwargs: dict[str, Any] = dict(
            prompt=r.prompt,
            negative_prompt=r.negative_prompt or None,
            num_inference_steps=r.steps,
            guidance_scale=r.guidance_scale,
            generator=torch.Generator("cpu").manual_seed(r.seed),
            output_type="np",
            callback_on_step_end=step_end,
        )
        if r.mode == "txt2img":
            kwargs.update(width=r.width, height=r.height)
        else:
            kwargs.update(
                image=_resize(read_image(r.image), r.width, r.height), strength=r.strength
            )
        if r.mode == "inpaint":
            mask = _resize(read_image(r.mask, "L"), r.width, r.height)
            kwargs.update(mask_image=mask, width=r.width, height=r.height)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = pipe(**kwargs)
        image = (np.clip(out.images[0], 0.0, 1.0) * 255.0).round().astype(np.uint8)
        nsfw = bool(out.nsfw_content_detected and out.nsfw_content_detected[0])
        return Picture(image, r, nsfw, time.perf_counter() - t0)

    def steps_to_run(self, request: Request) -> int:
        """Denoising steps a request runs: all of them, or strength x steps from an image."""
        if request.mode == "txt2img":
            return request.steps
        return min(int(request.steps * request.strength), request.steps)

    # ------------------------------------------------------------------------- provenance

    def metadata(self, picture: Picture) -> dict[str, str]:
        """PNG tEXt fields that let `replay` make the picture again."""
        import diffusers
        import transformers

        r = picture.request
        meta = {"genlab_sd": METADATA_VERSION}
        for f in fields(Request):
            value = getattr(r, f.name)
            if value is not None and (r.mode != "txt2img" or f.name != "strength"):
                meta[f.name] = str(value)
        if r.image:
            meta["image_sha256"] = image_digest(read_image(r.image))
        if r.mask:
            meta["mask_sha256"] = image_digest(read_image(r.mask, "L"))
        meta["guidance"] = meta.pop("guidance_scale")
        meta["size"] = f"{r.width}x{r.height}"
        meta["model"] = str(self.source.path.resolve())
        if self.source.single_file:
            meta["model_config"] = str(self.source.config_dir.resolve())
        meta.update(
            precision=self.precision,
            device=self.device,
            software=f"genlab {genlab.__version__}",
            versions=f"diffusers {diffusers.__version__}, transformers {transformers.__version__}"
            f", torch {torch.__version__}",
        )
        return meta

    # ------------------------------------------------------------------------- timing

    def time_step(
        self, width: int, height: int, precision: str | None = None, repeats: int = 1
    ) -> StepTiming:
        """Seconds per denoising step at a size: one UNet call on a batch of 2 (guidance).

        One warm-up call, then the mean of `repeats` timed calls. `precision` "bf16" on fp32
        weights runs under bf16 autocast (what "auto" measures before choosing).
        """
        unet, text = self.pipe.unet, self.pipe.text_encoder
        f = self.source.vae_scale_factor
        g = torch.Generator("cpu").manual_seed(0)
        latents = torch.randn(2, unet.config.in_channels, height // f, width // f, generator=g)
        latents = latents.to(self.device, unet.dtype)
        ids = self.pipe.tokenizer(
            ["", ""], padding="max_length", max_length=self.pipe.tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids.to(self.device)  # fmt: skip
        precision = precision or self.precision
        autocast = precision != self.precision and precision in ("bf16", "fp16")
        with torch.inference_mode():
            context = text(ids)[0]
            t = torch.tensor(500, device=self.device)
            times = []
            for _ in range(1 + repeats):
                with torch.autocast(self.device.split(":")[0], DTYPES[precision], enabled=autocast):
                    _sync(self.device)
                    t0 = time.perf_counter()
                    unet(latents, t, encoder_hidden_states=context)
                    _sync(self.device)
                times.append(time.perf_counter() - t0)
        return StepTiming(precision, width, height, sum(times[1:]) / repeats)

    def time_decode(self, width: int, height: int) -> float:
        """Seconds for the VAE to decode one picture of this size."""
        f, vae = self.source.vae_scale_factor, self.pipe.vae
        z = torch.randn(1, vae.config.latent_channels, height // f, width // f)
        with torch.inference_mode():
            z = z.to(self.device, vae.dtype)
            _sync(self.device)
            t0 = time.perf_counter()
            vae.decode(z / vae.config.scaling_factor)
            _sync(self.device)
        return time.perf_counter() - t0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def request_from_metadata(meta: dict[str, str], where: str = "image") -> Request:
    """The Request stored in a PNG by `StableDiffusion.metadata`."""
    if meta.get("genlab_sd") != METADATA_VERSION:
        raise GenlabError(f"{where}: no genlab sd metadata; only `genlab sd` pictures replay")
    values: dict[str, Any] = {}
    meta = {**meta, "guidance_scale": meta.get("guidance", "")}
    try:
        for f in fields(Request):
            if f.name in meta:
                raw = meta[f.name]
                kind = str(f.type)
                if "int" in kind:
                    values[f.name] = int(raw)
                elif "float" in kind:
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
        return Request(**values)
    except (TypeError, ValueError) as e:
        raise GenlabError(f"{where}: damaged genlab sd metadata ({e})") from None


def make_requests(prompt: str, *, n: int = 1, seed: int = 0, **fields) -> list[Request]:
    """n requests for a prompt, the seeds seed, seed + 1, ... (`Request`'s other fields as
    keywords: steps, guidance_scale, scheduler, width, height, mode, image, mask, strength).

    Raises:
        GenlabError: n < 1 or an unknown scheduler.
    """
    if n < 1:
        raise GenlabError(f"--n {n}: give at least 1")
    scheduler = fields.get("scheduler", DEFAULT_SCHEDULER)
    if scheduler not in SCHEDULERS:
        raise GenlabError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    return [Request(prompt, seed=seed + i, **fields) for i in range(n)]
