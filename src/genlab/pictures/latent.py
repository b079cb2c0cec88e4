"""Pictures of a latent space, from a run: reconstructions, interpolations, a morph, latent
vector arithmetic, walks along single dimensions, and the 2-D map. Models with an encoder (ae,
vae) start from encoded test images; a GAN (a decoder only) from latents z ~ N(0, I).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from genlab.data import ImageData
from genlab.errors import GenlabError
from genlab.pictures import Picture
from genlab.runs import Run
from genlab.sampling import test_data

METHODS = ("slerp", "lerp")


def _needs(model, *methods: str) -> None:
    missing = [m for m in methods if not hasattr(model, m)]
    if missing:
        raise GenlabError(
            f"this run's model ({type(model).__name__}) has no {', '.join(missing)}: "
            f"the command needs {' and '.join(methods)} (ae, vae; a GAN generator only decodes)"
        )


def _decoder_only(model) -> bool:
    """A model that decodes latents but cannot encode images (a GAN); else it needs both."""
    _needs(model, "decode")
    return not hasattr(model, "encode")


def _random_classes(model, n: int, g: torch.Generator) -> torch.Tensor | None:
    """(n,) random class ids for a conditional model, None for an unconditional one."""
    from genlab.latent import is_conditional

    if not is_conditional(model):
        return None
    return torch.randint(model.config.num_classes, (n,), generator=g)


def _subset(data: ImageData, n: int) -> ImageData:
    return ImageData(data.images[:n], data.labels[:n], data.class_names)


def _info(run, seed: int | None) -> dict[str, str]:
    info = {"run": str(run)}
    if seed is not None:
        info["seed"] = str(seed)
    return info


def reconstruct(run: str | os.PathLike, n: int = 16, seed: int = 0) -> Picture:
    """Random test images (odd rows) above their reconstructions decode(encode(x)) (even rows)."""
    from genlab.latent import model_device

    run = Run.of(run)
    model, data = run.model(), test_data(run)
    _needs(model, "encode", "decode")
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    batch = data.batch(idx)
    device = model_device(model)
    x, y = batch.x.to(device), batch.y.to(device)
    with torch.inference_mode():
        recon = model.decode(model.encode(x, y), y).cpu()
    rows, per_row = [], 8
    for i in range(0, len(idx), per_row):
        rows += [batch.x[i : i + per_row], recon[i : i + per_row]]
    return Picture(torch.cat(rows), per_row, _info(run, seed))


def _prior_paths(model, pairs: int, steps: int, method: str, seed: int) -> torch.Tensor:
    """(pairs, steps, C, H, W): decoded slerp/lerp paths between pairs of z ~ N(0, I)."""
    from genlab.latent import decode_batched, lerp, slerp

    g = torch.Generator().manual_seed(seed)
    d = model.config.latent_dim
    z0, z1 = torch.randn(pairs, d, generator=g), torch.randn(pairs, d, generator=g)
    path = (slerp if method == "slerp" else lerp)(z0, z1, torch.linspace(0, 1, steps))
    y = _random_classes(model, pairs, g)  # one class per row for a conditional GAN
    y = None if y is None else y.repeat_interleave(steps)
    x = decode_batched(model, path.reshape(pairs * steps, d), y)
    return x.reshape(pairs, steps, *x.shape[1:])


def interpolate(
    run: str | os.PathLike, pairs: int = 6, steps: int = 10, method: str = "slerp", seed: int = 0
) -> Picture:
    """Decoded paths between the latents of random pairs of test images, one row each; for a
    GAN (no encoder) between random latents z ~ N(0, I)."""
    from genlab.latent import interpolate as paths

    if method not in METHODS or steps < 2 or pairs < 1:
        raise GenlabError("interpolate needs --method slerp|lerp, --steps >= 2, --pairs >= 1")
    run = Run.of(run)
    model = run.model()
    if _decoder_only(model):
        path = _prior_paths(model, pairs, steps, method, seed)
    else:
        data = test_data(run)
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
        a, b = data.batch(idx[:pairs]), data.batch(idx[pairs : 2 * pairs])
        path = paths(model, a.x, b.x, steps=steps, method=method, y0=a.y, y1=b.y)
    return Picture(path.flatten(0, 1), steps, _info(run, seed))


def morph(
    run: str | os.PathLike,
    a: int | None = None,
    b: int | None = None,
    from_class: str = "Sneaker",
    to_class: str = "Ankle boot",
    steps: int = 10,
    method: str = "slerp",
    seed: int = 0,
) -> Picture:
    """One test image morphing into another (indices a, b, or random images of two classes):
    the real image, the decoded path, the real image."""
    from genlab.latent import class_index, morph_strip

    run = Run.of(run)
    model, data = run.model(), test_data(run)
    _needs(model, "encode", "decode")
    g = torch.Generator().manual_seed(seed)

    def pick(index: int | None, cls: str) -> int:
        if index is not None:
            if not 0 <= index < len(data):
                raise GenlabError(f"image index {index} out of range 0..{len(data) - 1}")
            return index
        if not data.class_names:
            return int(torch.randint(len(data), (1,), generator=g))
        members = (data.labels == class_index(data.class_names, cls)).nonzero().flatten()
        return int(members[torch.randint(len(members), (1,), generator=g)])

    ia, ib = pick(a, from_class), pick(b, to_class)
    xa, xb = data.batch(torch.tensor([ia])), data.batch(torch.tensor([ib]))
    strip = morph_strip(model, xa.x, xb.x, steps=steps, method=method, ya=xa.y, yb=xb.y)
    info = {**_info(run, seed), "images": f"{ia},{ib}"}
    return Picture(strip, strip.shape[0], info, f"test images {ia} -> {ib}")


def _sampled_arithmetic(run, model, from_class: str, to_class: str, n: int, seed: int):
    """(rows, S, C, H, W): latent arithmetic for a decoder-only model on Fashion-MNIST.

    2000 latents z ~ N(0, I) are decoded and labelled by the shipped classifier; v = mean z of
    TO minus mean z of FROM; each row decodes z + s v for a FROM latent (s = 0: G(z) itself).
    """
    from genlab.data.fashion_mnist import CLASS_NAMES
    from genlab.evaluation import load_feature_network
    from genlab.latent import (
        STRENGTHS,
        attribute_vector_from_latents,
        class_index,
        decode_batched,
        is_conditional,
    )

    if is_conditional(model):
        raise GenlabError(
            f"{run}: a conditional GAN takes the class as an input, so z has no class means to "
            f"subtract; draw each class with `genlab sample {run} --class NAME`"
        )
    names, cfg = Run.of(run).class_names, model.config
    if names != CLASS_NAMES or (cfg.channels, cfg.image_size) != (1, 28):
        raise GenlabError(
            f"{run}: arithmetic needs class means of latents: a model with an encoder (ae, vae), "
            "or a GAN on Fashion-MNIST, whose samples the shipped classifier can label"
        )
    i_from, i_to = class_index(names, from_class), class_index(names, to_class)
    z = torch.randn(2000, cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
    label = load_feature_network().embed(decode_batched(model, z)).logits.argmax(1)  # (2000,)
    for name, i in ((from_class, i_from), (to_class, i_to)):
        if not (label == i).any():
            raise GenlabError(f"none of 2000 samples is a {name}: the generator lacks that class")
    v = attribute_vector_from_latents(z[label == i_to], z[label == i_from])  # (D,)
    s = torch.tensor(STRENGTHS)  # (S,)
    rows = z[label == i_from][:n, None, :] + s[None, :, None] * v  # (rows, S, D)
    x = decode_batched(model, rows.flatten(0, 1))
    return x.reshape(rows.shape[0], len(s), *x.shape[1:])


def arithmetic(
    run: str | os.PathLike,
    from_class: str = "Sneaker",
    to_class: str = "Ankle boot",
    n: int = 6,
    seed: int = 0,
) -> Picture:
    """Latent vector arithmetic: each row adds (mean z of TO - mean z of FROM) with growing
    strength to a FROM image's latent. For an unconditional GAN on Fashion-MNIST the class
    means are over latents whose samples the shipped classifier labels (Radford et al. 2016,
    section 6.3)."""
    from genlab.latent import class_arithmetic

    run = Run.of(run)
    model = run.model()
    if _decoder_only(model):
        rows = _sampled_arithmetic(run, model, from_class, to_class, n, seed)
        note = (
            f"each row moves a generated {from_class} towards {to_class} along the difference "
            "of class means of z (classes from the shipped classifier)"
        )
    else:
        g = torch.Generator().manual_seed(seed)
        rows = class_arithmetic(model, test_data(run), from_class, to_class, n=n, generator=g)
        note = f"each row starts with a {from_class} image, then strengths towards {to_class}"
    return Picture(rows.flatten(0, 1), rows.shape[1], _info(run, seed), note)


def walk(run: str | os.PathLike, dims: int = 8, steps: int = 9, seed: int = 0) -> Picture:
    """Walks along single latent dimensions around a test image's latent, one row each, the
    most used dimensions first (steps in units of their spread); for a GAN (no encoder) around
    a random z ~ N(0, I)."""
    from genlab.latent import embed, encode_batched, latent_walk

    run = Run.of(run)
    model = run.model()
    g = torch.Generator().manual_seed(seed)
    if _decoder_only(model):  # a GAN: around z ~ N(0, I), in units of the prior's spread (1)
        z = torch.randn(model.config.latent_dim, generator=g)
        y = _random_classes(model, 1, g)
        y = None if y is None else int(y)
        grid = latent_walk(model, z, list(range(min(dims, z.shape[0]))), steps=steps, y=y)
        return Picture(grid.flatten(0, 1), steps, _info(run, seed))
    data = test_data(run)
    i = int(torch.randint(len(data), (1,), generator=g))
    b = data.batch(torch.tensor([i]))
    std = embed(model, _subset(data, min(2000, len(data)))).std(0)
    z = encode_batched(model, b.x, b.y)[0]
    order = std.argsort(descending=True)[: min(dims, z.shape[0])].tolist()
    grid = latent_walk(model, z, order, steps=steps, std=std, y=b.y)
    return Picture(grid.flatten(0, 1), steps, _info(run, seed))


def latent_map(
    run: str | os.PathLike,
    out: str | os.PathLike,
    n: int = 5000,
    metadata: dict[str, str] | None = None,
) -> str:
    """A 2-D map of the latents of n test images coloured by class (PCA when the latent is not
    2-D), written to `out`. Returns a note on what it shows."""
    from genlab.latent import embed, plot_latent_map, project_2d

    run = Run.of(run)
    model = run.model()
    _needs(model, "encode")
    data = test_data(run)
    n = min(n, len(data))
    z = embed(model, _subset(data, n))
    coords, method = project_2d(z)
    title = f"{Path(run).name}: latent space ({method})"
    meta = {**_info(run, None), **(metadata or {})}
    plot_latent_map(coords, data.labels[:n], data.class_names, out, title=title, metadata=meta)
    return f"{method} of {z.shape[1]}-D latents, {n} test images"
