"""Replaying a picture of `genlab sd` from its PNG metadata, and the `doctor` report of a
model: what it holds, the memory it needs here, and its measured speed."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from genlab.errors import GenlabError


class Replay(NamedTuple):
    """What a picture's metadata says made it."""

    request: object  # genlab.sd.pipeline.Request
    model: Path
    config: Path | None
    device: str
    precision: str
    note: str
    """A warning to show ("" when none), e.g. a CUDA picture replayed on the CPU."""


def duration_text(seconds: float) -> str:
    """ "42 s", "3 min 05 s" or "2 h 10 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def read_replay(picture: Path, model: Path | None = None, config: Path | None = None) -> Replay:
    """The request of a PNG written by `genlab sd`, its inputs checked to be unchanged.

    Raises:
        GenlabError: no such picture, no genlab metadata, or its input images moved or changed.
    """
    from genlab.images import read_png_metadata
    from genlab.sd.pipeline import image_digest, read_image, request_from_metadata

    if not picture.is_file():
        raise GenlabError(f"{picture}: no such picture")
    try:
        meta = read_png_metadata(picture)
    except OSError as e:
        raise GenlabError(f"{picture}: not a readable PNG ({e})") from None
    request = request_from_metadata(meta, str(picture))
    for key in ("image", "mask"):
        path = getattr(request, key)
        if path is None:
            continue
        if not Path(path).is_file():
            raise GenlabError(f"{picture}: its input {key} {path} is gone; put it back to replay")
        digest = image_digest(read_image(path, "L" if key == "mask" else "RGB"))
        if digest != meta.get(f"{key}_sha256"):
            raise GenlabError(f"{picture}: its input {key} {path} has changed since")
    if config is None and "model_config" in meta:
        config = Path(meta["model_config"])
    device, note = meta.get("device", "cpu"), ""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            device, note = "cpu", "made on CUDA, replayed on the CPU: expect small differences"
    model = model or Path(meta["model"])
    return Replay(request, model, config, device, meta.get("precision", "auto"), note)


def compare_pictures(before: Path, after: Path) -> str:
    """Whether two pictures are identical, or their largest pixel difference."""
    import numpy as np

    from genlab.sd.pipeline import read_image

    a, b = read_image(before), read_image(after)
    if a.shape == b.shape and np.array_equal(a, b):
        return f"{after} is identical to {before}"
    diff = int(np.abs(a.astype(int) - b.astype(int)).max()) if a.shape == b.shape else "size"
    return f"{after} differs from {before} (largest pixel difference {diff}/255)"


def doctor(model: Path, config, width, height, steps, device, precision, allow_pickle, load):
    """The lines of `genlab sd doctor`: the model's parts, the memory it needs at the size, and
    (with `load`, a function loading the model) the measured seconds per step. A generator:
    each line as soon as it is known."""
    from genlab.runtime import bf16_native
    from genlab.sd.checks import available_memory, estimate_memory, inspect_model, size_text
    from genlab.sd.loading import resolve_device, resolve_precision
    from genlab.sd.pipeline import DTYPES

    source = inspect_model(model, config=config, allow_pickle=allow_pickle)
    kind = "single file" if source.single_file else "diffusers folder"
    yield f"{source.path}: {kind}, {size_text(source.disk_bytes)} on disk"
    if source.single_file:
        yield f"  configs: {source.config_dir}"
    for c in source.components:
        what = f"{c.params / 1e6:,.1f} M weights, {'/'.join(c.dtypes)}" if c.params else ""
        yield f"  {c.name:<16} {c.class_name:<28} {what}".rstrip()
    if source.pickled:
        yield "  weights are pickled (loaded only with --allow-pickle)"
    if source.in_channels == 9:
        yield "  an inpainting checkpoint: use genlab sd inpaint"
    device = resolve_device(device)
    chosen = resolve_precision(precision, device)
    shown = "fp32 (bf16 measured at load)" if chosen == "measure" else chosen
    dtype = DTYPES["fp32" if chosen == "measure" else chosen]
    width, height = width or source.native_size, height or source.native_size
    yield f"device: {device}, precision: {shown}; native bf16 on this CPU: {bf16_native()}"
    mem = estimate_memory(source, dtype.itemsize, width, height, available_memory(device))
    loading = f", loading {size_text(mem.loading)}" if mem.loading else ""
    yield (
        f"memory at {width}x{height}: about {size_text(mem.total)} needed (weights "
        f"{size_text(mem.weights)}, working {size_text(mem.activations)}{loading}), "
        f"{size_text(mem.available)} available: " + ("fits" if mem.fits else "does NOT fit")
    )
    if load is None:
        return
    sd = load(model, config, device, precision, allow_pickle, False)
    precisions = [sd.precision]
    if device == "cpu" and bf16_native() and sd.precision == "fp32":
        precisions.append("bf16")
    timings = [sd.time_step(width, height, p) for p in precisions]
    for t in timings:
        how = " (autocast)" if t.precision != sd.precision else ""
        yield f"measured: {t.seconds:.2f} s per step at {width}x{height} in {t.precision}{how}"
    decode = sd.time_decode(width, height)
    yield (
        f"decoding: {decode:.2f} s; one picture of {steps} steps in {sd.precision}: about "
        f"{duration_text(timings[0].seconds * steps + decode)}"
    )
