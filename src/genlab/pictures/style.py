"""Pictures of a StyleGAN run: what each resolution's style controls (style mixing), the
truncation trick, what the noise inputs change, and perceptual path length in z and in w.

Every picture holds the per-pixel noise fixed across its tiles (one draw shared by all), so the
tiles differ only in what the picture varies.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch

from genlab.errors import GenlabError
from genlab.pictures import Picture
from genlab.sampling import model_of


def stylegan_model(run: str | os.PathLike):
    """The model of a stylegan run, or a one-line error."""
    from genlab.models.stylegan import StyleGAN

    return model_of(run, StyleGAN, "stylegan", "; train one with `genlab train stylegan`")


def _ws(model, n: int, seed: int, psi: float) -> torch.Tensor:
    """w of n seeded z's, truncated: z_i is drawn from seed + i, so a row of one picture can be
    found again in another by its seed."""
    z = torch.stack(
        [torch.randn(model.latent_dim, generator=torch.Generator().manual_seed(seed + i))
         for i in range(n)]
    )  # fmt: skip
    return model.mapping(z, psi)


def coarse_layers(model) -> int:
    """The layers that read the styles of the bottom and the next resolution (7 and 14 px at
    28, 4 and 8 px at 32 and 64): the default crossover of `style_mix`."""
    return min(4, model.num_ws - 1)


@torch.inference_mode()
def style_mix(
    run: str | os.PathLike,
    rows: int = 4,
    columns: int = 6,
    coarse: int | None = None,
    psi: float = 1.0,
    seed: int = 0,
) -> Picture:
    """The style-mixing grid: the top row shows the column sources (seeds seed + rows, ...), the
    left column the row sources (seeds seed, ...); tile (i, j) takes its coarse styles (layers
    below `coarse`) from row i and its fine styles from column j."""
    from genlab.models.stylegan import mix_styles

    model = stylegan_model(run)
    coarse = coarse_layers(model) if coarse is None else coarse
    if not 0 <= coarse <= model.num_ws:
        raise GenlabError(f"--coarse {coarse}: this generator has layers 0..{model.num_ws}")
    w_rows, w_cols = _ws(model, rows, seed, psi), _ws(model, columns, seed + rows, psi)
    noise = model.noise(1, torch.Generator().manual_seed(seed))  # shared by every tile

    def draw(ws: torch.Tensor) -> torch.Tensor:
        return model.synthesize(ws, noise).cpu()

    blank = torch.ones(1, model.config.channels, *[model.config.image_size] * 2)
    tiles = [blank, draw(w_cols)]
    for i in range(rows):
        mixed = mix_styles(w_rows[i : i + 1].expand(columns, -1), w_cols[:, None].expand(
            -1, model.num_ws, -1), torch.tensor(coarse))  # fmt: skip
        tiles += [draw(w_rows[i : i + 1]), draw(mixed)]
    info = {"run": str(run), "seed": str(seed), "coarse_layers": str(coarse), "psi": str(psi)}
    note = (
        f"rows: coarse styles (layers 0-{coarse - 1} of {model.num_ws}) from the left column; "
        "columns: fine styles from the top row"
    )
    return Picture(torch.cat(tiles).float(), columns + 1, info, note)


@torch.inference_mode()
def truncation(
    run: str | os.PathLike, n: int = 6, psis: tuple[float, ...] | None = None, seed: int = 0
) -> Picture:
    """The truncation sweep: one row per seed, psi from 0 (every row the mean-w image) to 1."""
    model = stylegan_model(run)
    psis = psis if psis is not None else tuple(round(0.125 * i, 3) for i in range(9))
    w = _ws(model, n, seed, 1.0)
    noise = model.noise(1, torch.Generator().manual_seed(seed))  # shared by every tile
    ws = torch.stack([torch.lerp(model.w_avg.expand_as(w), w, p) for p in psis], 1)  # (n, P, D)
    flat = ws.flatten(0, 1)
    x = model.synthesize(flat, noise).cpu()
    info = {"run": str(run), "seed": str(seed), "psi": ",".join(map(str, psis))}
    note = f"columns: psi = {', '.join(map(str, psis))}; psi = 0 is the mean w for every row"
    return Picture(x.float(), len(psis), info, note)


class NoiseVariation(NamedTuple):
    """tiles: per seed, `variations` images with the same w and different noise, then the
    per-pixel standard deviation over `draws` noise draws (scaled to the picture's maximum);
    std: the mean per-pixel std of each seed."""

    picture: Picture
    std: list[float]


@torch.inference_mode()
def noise_variation(
    run: str | os.PathLike, n: int = 4, variations: int = 6, draws: int = 64, seed: int = 0
) -> NoiseVariation:
    """Same w, different per-pixel noise: what the noise inputs control (the stochastic
    details), and the per-pixel standard deviation map over `draws` noise draws."""
    model = stylegan_model(run)
    if variations < 1 or draws < 2:
        raise GenlabError("noise-variation needs --variations >= 1 and --draws >= 2")
    w = _ws(model, n, seed, 1.0)
    g = torch.Generator().manual_seed(seed)
    rows, stds, maps = [], [], []
    for i in range(n):
        wi = w[i : i + 1].expand(draws, -1)
        x = model.synthesize(wi, model.noise(draws, g)).float().cpu()  # (draws, C, H, W)
        std = x.std(0).mean(0, keepdim=True)  # (1, H, W), over draws, averaged over channels
        stds.append(float(std.mean()))
        rows.append(x[:variations])
        maps.append(std)
    peak = max(float(m.max()) for m in maps) or 1.0
    c = model.config.channels
    tiles = []
    for x, m in zip(rows, maps, strict=True):
        tiles += [x, (m / peak).expand(c, -1, -1)[None]]
    info = {"run": str(run), "seed": str(seed), "noise_draws": str(draws)}
    note = (
        f"each row: one w with {variations} noise draws, then the per-pixel std over {draws} "
        f"draws (white = {peak:.3f}); mean std per row: {', '.join(f'{s:.4f}' for s in stds)}"
    )
    return NoiseVariation(Picture(torch.cat(tiles), variations + 1, info, note), stds)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the rows of a and b (normalised, as in Karras et al. 2019's
    PPL for z), t (N,)."""
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a * b).sum(1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega).clamp_min(1e-12)
    t = t[:, None]
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


class PathLength(NamedTuple):
    """Perceptual path length in z (slerp) and in w (lerp), with the interpolation picture:
    each pair of rows is one pair of seeds, interpolated in z (upper) and in w (lower)."""

    ppl_z: float
    ppl_w: float
    n: int
    picture: Picture


def path_length(
    run: str | os.PathLike,
    n: int = 1000,
    eps: float = 1e-4,
    seed: int = 0,
    pairs: int = 3,
    steps: int = 10,
    features: str | os.PathLike | None = None,
) -> PathLength:
    """Perceptual path length (Karras et al. 2019, section 3.1) in z and in w.

    PPL = E[d(G(i(t)), G(i(t + eps))) / eps^2], t ~ U(0, 1), i the interpolation (slerp in z,
    lerp in w), the same noise at both ends; d is the squared distance between the feature
    network's embeddings (the shipped Fashion-MNIST classifier, or `features`, a classifier run)
    instead of the paper's LPIPS on ImageNet VGG features. The 1% tails are dropped, as in the
    paper. Computed in float32, as in the paper. z and t are drawn on the CPU.
    """
    from genlab.evaluation import load_feature_network
    from genlab.latent import model_device

    model = stylegan_model(run)
    net = load_feature_network(run=features)
    device, net_device = model_device(model), model_device(net)
    if n < 2 or eps <= 0:
        raise GenlabError("--n must be >= 2 and --eps > 0")
    g = torch.Generator().manual_seed(seed)
    dists = {"z": [], "w": []}
    with torch.inference_mode():
        for start in range(0, n, 250):
            b = min(250, n - start)
            z0, z1 = (torch.randn(b, model.latent_dim, generator=g) for _ in range(2))
            t = torch.rand(b, generator=g)
            noise = [torch.cat([m, m]) for m in model.noise(b, g)]  # the same at both ends
            w0, w1 = model.mapping(z0), model.mapping(z1)
            t1 = t + eps
            tw, tw1 = t[:, None].to(device), t1[:, None].to(device)
            ends = {
                "z": model.mapping(torch.cat([slerp(z0, z1, t), slerp(z0, z1, t1)])),
                "w": torch.cat([torch.lerp(w0, w1, tw), torch.lerp(w0, w1, tw1)]),
            }
            for space, ws in ends.items():
                f = net(model.synthesize(ws, noise, clamp=False).to(net_device))
                dists[space].append(((f[:b] - f[b:]).square().sum(1) / eps**2).cpu())
    ppl = {}
    for space, d in dists.items():
        d = torch.cat(d)
        lo, hi = torch.quantile(d, 0.01), torch.quantile(d, 0.99)
        ppl[space] = float(d[(d >= lo) & (d <= hi)].mean())
    picture = _interpolations(run, model, pairs, steps, seed)
    return PathLength(ppl["z"], ppl["w"], n, picture)


@torch.inference_mode()
def _interpolations(run, model, pairs: int, steps: int, seed: int) -> Picture:
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, steps, dtype=torch.float32)
    noise = model.noise(1, g)  # shared by every tile
    tiles = []
    for _ in range(pairs):
        z0, z1 = torch.randn(2, model.latent_dim, generator=g)
        zs = slerp(z0.expand(steps, -1), z1.expand(steps, -1), t)
        zs = zs * (z0.norm() * (1 - t) + z1.norm() * t)[:, None]  # slerp on the sphere, rescaled
        w0, w1 = model.mapping(torch.stack([z0, z1]))
        tw = t[:, None].to(w0.device)
        ws = {"z": model.mapping(zs), "w": torch.lerp(w0.expand(steps, -1), w1, tw)}
        for space in ("z", "w"):
            tiles.append(model.synthesize(ws[space], noise).cpu())
    info = {"run": str(run), "seed": str(seed)}
    note = "row pairs: the same two seeds interpolated in z (slerp, upper) and in w (lerp, lower)"
    return Picture(torch.cat(tiles).float(), steps, info, note)
