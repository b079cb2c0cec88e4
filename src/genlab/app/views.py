"""What each tab of the web app computes, without gradio: run names and control values in,
images (uint8 arrays), files in the app's own output folder and one-line texts out.

Every function takes a run by its catalog name (`Catalog.get`), so the page cannot name a path;
every file written goes to `Views.out`, the only folder (with the runs themselves) the app
serves. Errors are `GenlabError`s with one line, which the page shows as such.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.app.catalog import (
    AGENT,
    DIFFUSION,
    GUIDE,
    LATENT,
    STEPWISE,
    TEXT,
    Catalog,
    Entry,
    ModelCache,
)
from genlab.errors import GenlabError

EVERY_CLASS = "(every class)"
NO_CLASSIFIER = "(none)"
SHOW = 196
"""Side in pixels a single 28-pixel image is shown at (nearest-neighbour, 7x)."""


def enlarge(image: np.ndarray, side: int = SHOW) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W) or (H, W, 3) uint8 image (or grid) by an integer
    factor, its longer side to about `side`."""
    k = max(1, side // max(image.shape[:2]))
    return image.repeat(k, 0).repeat(k, 1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """One image (C, H, W) in [0, 1] as (H, W) or (H, W, 3) uint8."""
    from genlab.images import to_uint8 as convert

    return convert(x.float().cpu())


def grid(x: torch.Tensor, nrow: int | None = None) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] as one uint8 grid."""
    from genlab.images import make_grid

    nrow = nrow or max(1, math.ceil(math.sqrt(len(x))))
    return make_grid(x.float().cpu(), nrow=nrow)


@dataclass(frozen=True)
class Controls:
    """Which sampling controls apply to a run (the Sample tab shows only those)."""

    classes: list[str]
    samplers: tuple[str, ...]  # the run's samplers (short names), the default first; () none
    steps: int  # the run's default sampler steps (0 without samplers)
    guidance: bool
    temperature: bool
    prompt: bool
    note: str

    @property
    def diffusion(self) -> bool:
        """The run takes a sampler and steps (diffusion, flow matching)."""
        return bool(self.samplers)


@dataclass(frozen=True)
class LatentSpace:
    """A latent model's encoded test images and their principal directions."""

    z: torch.Tensor  # (N, D) encoded test images
    labels: torch.Tensor  # (N,)
    images: torch.Tensor  # (N, C, H, W) uint8
    mean: torch.Tensor  # (D,)
    axes: torch.Tensor  # (K, D) unit principal directions, the largest variance first
    sd: torch.Tensor  # (K,) standard deviation of the test latents along each axis
    coords: torch.Tensor  # (N, 2) projections on the first two axes
    extent: tuple[float, float, float, float]  # the latent map's window (x0, x1, y0, y1)


class Views:
    """The app's computations over one catalog, writing into `out`."""

    def __init__(self, catalog: Catalog, out: str | os.PathLike, latent_images: int = 2000):
        self.catalog = catalog
        self.out = Path(out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.models = ModelCache()
        self.latent_images = latent_images
        self._spaces: dict[tuple[Path, tuple[int, ...]], LatentSpace] = {}
        self._lock = threading.Lock()

    # -- helpers ----------------------------------------------------------------------------

    def entry(self, name: str | None) -> Entry:
        return self.catalog.get(name).check()

    def model(self, name: str | None):
        return self.models.get(self.entry(name))

    def _file(self, kind: str, key: str, suffix: str = ".png") -> Path:
        """A new file in the output folder, named by what made it."""
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        folder = self.out / kind
        folder.mkdir(exist_ok=True)
        return folder / f"{kind}-{digest}{suffix}"

    def describe(self, name: str | None) -> str:
        """One line on a run: family, training, and its recorded quality."""
        e = self.entry(name)
        parts = [f"**{e.name}**: {e.family}"]
        if e.provenance:
            p = e.provenance
            parts.append(p["summary"])
            m = p.get("eval", {}).get("metrics", {})
            if "fd" in m:
                parts.append(f"FD {m['fd']:.1f} (n = {p['eval']['n']:,})")
        else:
            from genlab.runs import trained_step

            step = trained_step(e.path)
            parts.append(f"step {step}" if step is not None else "no checkpoint yet")
        return "; ".join(parts)

    # -- Sample -----------------------------------------------------------------------------

    def controls(self, name: str | None) -> Controls:
        from genlab.families import get_family
        from genlab.samplers import short_names

        e = self.entry(name)
        samplers = getattr(get_family(e.family).model, "SAMPLERS", ()) if e.family else ()
        model = e.config.get("model") or {}
        if samplers and model.get("sampler") in samplers:  # the run's default first
            samplers = (model["sampler"], *(s for s in samplers if s != model["sampler"]))
        classes = e.class_names if e.conditional else []
        prompt = TEXT in e.can
        note = "Text to image: write a prompt in the Text to image tab." if prompt else ""
        steps = int(model.get("steps") or 50) if samplers else 0
        return Controls(
            classes, short_names(samplers), steps, bool(samplers) and e.conditional,
            STEPWISE in e.can, prompt, note,
        )  # fmt: skip

    def sample(
        self,
        name: str | None,
        seed: int,
        n: int,
        class_name: str | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        temperature: float | None = None,
        prompt: str | None = None,
    ) -> tuple[Path, str]:
        """A grid of n seeded samples as a PNG with its metadata (run, seed, options)."""
        from genlab.sampling import sample, save_samples

        e, c = self.entry(name), self.controls(name)
        model = self.model(name)
        seed, n = int(seed), int(n)
        options: dict[str, Any] = {}
        if c.classes and class_name and class_name != EVERY_CLASS:
            options["class_name"] = class_name
        if c.diffusion:
            options.update(sampler=sampler or None, steps=int(steps) if steps else None)
            if c.guidance and guidance is not None:
                options["guidance"] = float(guidance)
        if c.temperature and temperature is not None:
            options["temperature"] = float(temperature)
        if prompt is not None:
            options["prompt"] = prompt
        with self._lock, torch.inference_mode():
            s = sample(e.path, n, seed=seed, model=model, **options)
        key = f"{e.name}|{seed}|{n}|{sorted(options.items())}"
        path = self._file("samples", key)
        save_samples(s, path, {"run": e.name, "app": "genlab app"})
        described = ", ".join(f"{k} {v}" for k, v in options.items() if v is not None)
        return path, f"{e.name}, seed {seed}, n {n}" + (f", {described}" if described else "")

    # -- Latent space -----------------------------------------------------------------------

    def space(self, name: str | None, k: int = 8) -> LatentSpace:
        """The encoded test images of a latent run and their principal directions (cached)."""
        from genlab.latent.maps import embed
        from genlab.sampling import test_data

        e = self.entry(name)
        if LATENT not in e.can:
            raise GenlabError(
                f"{e.name}: a {e.family} run; the latent explorer needs an ae or "
                "vae run with a vector latent"
            )
        model = self.model(name)
        key = (e.path, ModelCache._stamp(e.path))
        if key in self._spaces:
            return self._spaces[key]
        data = test_data(e.path)
        m = min(self.latent_images, len(data.images))
        images, labels = data.images[:m], data.labels[:m]
        z = embed(model, images, y=labels if e.conditional else None)  # (m, D)
        mean = z.mean(0)
        _, s, vh = torch.linalg.svd((z - mean).double(), full_matrices=False)
        k = min(k, vh.shape[0])
        axes = vh[:k].float()
        sd = (s[:k] / math.sqrt(max(m - 1, 1))).float()
        coords = (z - mean) @ axes[:2].T
        lo, hi = coords.min(0).values, coords.max(0).values
        pad = 0.05 * (hi - lo)
        extent = (
            float(lo[0] - pad[0]),
            float(hi[0] + pad[0]),
            float(lo[1] - pad[1]),
            float(hi[1] + pad[1]),
        )
        space = LatentSpace(z, labels, images, mean, axes, sd, coords, extent)
        self._spaces = {key: space}  # one at a time: a few MB each
        return space

    def latent_start(
        self, name: str | None, source: str, index: int, seed: int
    ) -> tuple[list[float], int, np.ndarray]:
        """The starting latent: an encoded test image (`index`) or a draw from the prior
        (`seed`; an autoencoder has none, so a Gaussian fitted to its test latents). Returns z,
        its class (-1 unknown) and the image it came from (or the decoded draw)."""
        e, space = self.entry(name), self.space(name)
        if source == "test image":
            i = int(index) % len(space.z)
            z, label = space.z[i], int(space.labels[i])
            shown = enlarge(to_uint8(space.images[i].float() / 255))
        else:
            g = torch.Generator().manual_seed(int(seed))
            eps = torch.randn(space.z.shape[1], generator=g)
            fitted = space.mean + (eps[: len(space.sd)] * space.sd) @ space.axes
            z = eps if e.prior else fitted
            label = int(torch.randint(len(e.class_names) or 1, (1,), generator=g))
            shown = self.decode(name, z.tolist(), label)
        return z.tolist(), label, shown

    def decode(self, name: str | None, z: list[float], label: int = -1) -> np.ndarray:
        from genlab.latent import model_device

        e, model = self.entry(name), self.model(name)
        device = model_device(model)
        zt = torch.tensor([z], dtype=torch.float32, device=device)
        y = torch.tensor([max(label, 0)], device=device) if e.conditional else None
        with self._lock, torch.inference_mode():
            x = model.decode(zt, y) if y is not None else model.decode(zt)
        return enlarge(to_uint8(x[0]))

    def move(
        self, name: str | None, z: list[float], label: int, sliders: list[float]
    ) -> np.ndarray:
        """Decode z moved along the principal directions by `sliders` standard deviations."""
        space = self.space(name)
        s = torch.tensor(list(sliders)[: len(space.sd)], dtype=torch.float32)
        k = len(s)
        moved = torch.tensor(z) + (s * space.sd[:k]) @ space.axes[:k]
        return self.decode(name, moved.tolist(), label)

    def latent_map(self, name: str | None, size: int = 480) -> np.ndarray:
        """The test latents on the first two principal axes, coloured by class, the class
        names at their centres. The axes fill the image, so a click maps back linearly."""
        from matplotlib.figure import Figure

        from genlab.plots import figure_array

        e, space = self.entry(name), self.space(name)
        fig = Figure(figsize=(size / 100, size / 100), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        c = space.coords.numpy()
        ax.scatter(
            c[:, 0],
            c[:, 1],
            c=space.labels.numpy(),
            cmap="tab10",
            s=5,
            alpha=0.6,
            linewidths=0,
            vmin=0,
            vmax=9,
        )
        for i, cls in enumerate(e.class_names):
            pts = c[space.labels.numpy() == i]
            if len(pts):
                mx, my = np.median(pts, 0)
                ax.text(
                    mx,
                    my,
                    cls,
                    fontsize=8,
                    ha="center",
                    weight="bold",
                    bbox={"facecolor": "white", "alpha": 0.6, "pad": 1, "lw": 0},
                )
        x0, x1, y0, y1 = space.extent
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xticks([])
        ax.set_yticks([])
        return figure_array(fig)

    def map_point(
        self, name: str | None, px: float, py: float, size: tuple[int, int]
    ) -> tuple[list[float], np.ndarray]:
        """Decode the point clicked at pixel (px, py) of the latent map (width, height):
        z = mean + c1 axis1 + c2 axis2."""
        space = self.space(name)
        w, h = size
        x0, x1, y0, y1 = space.extent
        c1 = x0 + (px / max(w - 1, 1)) * (x1 - x0)
        c2 = y1 - (py / max(h - 1, 1)) * (y1 - y0)
        z = space.mean + c1 * space.axes[0] + c2 * space.axes[1]
        return [c1, c2], self.decode(name, z.tolist(), -1)

    def morph(self, name: str | None, from_class: str, to_class: str, seed: int) -> np.ndarray:
        from genlab.pictures import latent

        e = self.entry(name)
        with self._lock:
            return latent.morph(
                e.path, from_class=from_class, to_class=to_class, seed=int(seed)
            ).grid()

    def arithmetic(self, name: str | None, from_class: str, to_class: str, seed: int) -> np.ndarray:
        from genlab.pictures import latent

        e = self.entry(name)
        with self._lock:
            return latent.arithmetic(e.path, from_class, to_class, seed=int(seed)).grid()

    # -- Diffusion --------------------------------------------------------------------------

    def forward(
        self, name: str | None, index: int, t: int, seed: int = 0
    ) -> tuple[np.ndarray, str]:
        """A test image noised by q(x_t | x_0) at timestep t, and the signal left in it."""
        from genlab.pictures.diffusion import forward_strip
        from genlab.sampling import test_data

        e, model = self.entry(name), self.model(name)
        if not {DIFFUSION, TEXT} & e.can:
            raise GenlabError(f"{e.name}: a {e.family} run, not a diffusion run")
        data = test_data(e.path)
        i = int(index) % len(data.images)
        t = max(0, min(int(t), model.config.T - 1))
        x0 = data.images[i : i + 1].float() / 255
        g = torch.Generator().manual_seed(int(seed))
        with self._lock:
            x = forward_strip(model, torch.cat([x0]), [t], g)
        abar = float(model.schedule.alpha_bar[t])
        text = (
            f"t = {t} of {model.config.T}: x_t = {math.sqrt(abar):.3f} x_0 + "
            f"{math.sqrt(1 - abar):.3f} eps"
        )
        return np.concatenate([enlarge(to_uint8(x0[0])), enlarge(to_uint8(x[0]))], 1), text

    def reverse(
        self,
        name: str | None,
        seed: int,
        n: int = 8,
        class_name: str | None = None,
        guidance: float | None = None,
        steps: int = 50,
        classifier: str | None = None,
        classifier_scale: float = 1.0,
    ) -> tuple[list[np.ndarray], list[int]]:
        """The reverse process of n samples (DDIM), every step recorded as a grid: the frames
        the step slider scrubs, and their timesteps (T: pure noise, -1: the images)."""
        from genlab.pictures.diffusion import reverse_frames
        from genlab.sampling import named_class, sampling_options

        e, model = self.entry(name), self.model(name)
        if DIFFUSION not in e.can:
            raise GenlabError(f"{e.name}: choose a ddpm or ldm run (text to image has its tab)")
        n, steps = int(n), int(steps)
        y = None
        clf_entry = None
        if classifier and classifier != NO_CLASSIFIER:
            clf_entry = self.entry(classifier)
            if GUIDE not in clf_entry.can:
                raise GenlabError(f"{clf_entry.name}: not a noisy-classifier run")
        use_class = class_name and class_name != EVERY_CLASS
        if use_class:
            source = clf_entry.path if clf_entry is not None else e.path
            y = named_class(source, class_name, n)
        elif e.conditional or clf_entry is not None:
            k = e.config["model"].get("num_classes") or len(clf_entry.class_names)
            y = torch.arange(n) % k
        options = sampling_options(model, "ddim", steps)
        if clf_entry is not None:
            clf = self.models.get(clf_entry)
            options["model_fn"] = model.classifier_guided(
                model.model_fn(), clf, y, n, float(classifier_scale)
            )
            y = y if e.conditional else None
        elif e.conditional and guidance is not None:
            options["guidance"] = float(guidance)
        g = torch.Generator().manual_seed(int(seed))
        with self._lock:
            frames, ts = reverse_frames(model, n, steps + 1, g, y=y, **options)
        return [grid(f, nrow=min(n, 8)) for f in frames], ts

    # -- Text to image ----------------------------------------------------------------------

    def vocabulary(self, name: str | None) -> str:
        """What a text-to-image run learned from: its classes and caption templates."""
        from genlab.text import CAPTION_TEMPLATES

        e = self.entry(name)
        if TEXT not in e.can:
            raise GenlabError(f"{e.name}: a {e.family} run, not a text-to-image run")
        example = CAPTION_TEMPLATES[0].format(e.class_names[-1].lower())
        return (
            f"Trained on captions of Fashion-MNIST's ten classes ({', '.join(e.class_names)}), "
            f"worded {len(CAPTION_TEMPLATES)} ways, e.g. '{example}'. The sentence encoder "
            "(all-MiniLM-L6-v2) places other wordings near the closest of these; colours, "
            "materials and scenes it never saw change little."
        )

    # -- Compare ----------------------------------------------------------------------------

    def record(self, name: str) -> dict[str, Any] | None:
        """A run's evaluation: a shipped run's n = 10,000 record, or the latest `genlab eval`
        record in RUN/eval/ with the largest n."""
        import json

        e = self.entry(name)
        if e.provenance:  # its FID (Inception), where recorded, is at a smaller n
            ev = e.provenance.get("eval", {})
            standard = (ev.get("standard_fid") or {}).get("fid_inception")
            return {"n": ev.get("n"), **ev.get("metrics", {}), "fid_inception": standard}
        best, standard = None, None
        for f in sorted((e.path / "eval").glob("eval-n*.json")):
            try:
                r = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if not isinstance(r, dict) or not isinstance(r.get("metrics"), dict):
                continue
            if r["metrics"].get("fid_inception") is not None:  # `--features inception`
                if standard is None or r.get("n", 0) >= standard[0]:
                    standard = (r.get("n", 0), r["metrics"]["fid_inception"])
            elif "-features_" not in f.name and (best is None or r.get("n", 0) >= best.get("n", 0)):
                best = {"n": r.get("n"), **r["metrics"]}
        if standard is not None:
            best = {**(best or {"n": None}), "fid_inception": standard[1]}
        return best

    def compare(self, names: list[str], sort_by: str = "fd") -> tuple[list[list[Any]], list]:
        """The eval table of the chosen runs (sorted by `sort_by`; FD and KID ascending, the
        rest descending) and a 16-sample grid of each."""
        if not names:
            raise GenlabError("choose one or more runs to compare")
        rows, gallery = [], []
        for name in names:
            r = self.record(name) or {}
            rows.append(
                [
                    name,
                    self.entry(name).family,
                    r.get("n"),
                    _round(r.get("fd")),
                    _round(r.get("fid_inception")),
                    _round(r.get("kid_mean")),
                    _round(r.get("precision")),
                    _round(r.get("recall")),
                    _round(r.get("coverage")),
                    r.get("modes_covered"),
                    _round(r.get("conditional_accuracy")),
                ]
            )
            path, _ = self.sample(name, 0, 16)
            gallery.append((str(path), name))
        column = {c: i for i, c in enumerate(COMPARE_COLUMNS)}[sort_by]
        lower_better = sort_by in ("fd", "fid_inception", "kid_mean")

        def key(row):
            v = row[column]
            if v is None:
                return (1, 0)
            return (0, v if lower_better else -v)

        order = sorted(range(len(rows)), key=lambda i: key(rows[i]))
        return [rows[i] for i in order], [gallery[i] for i in order]

    # -- PixelCNN ---------------------------------------------------------------------------

    def pixel_by_pixel(
        self, name: str | None, seed: int, n: int = 4, temperature: float = 1.0, every: int = 28
    ) -> Iterator[tuple[np.ndarray, str]]:
        """Yield the grid of n PixelCNN samples as they are written, every `every` pixels."""
        import queue

        e, model = self.entry(name), self.model(name)
        if STEPWISE not in e.can:
            raise GenlabError(f"{e.name}: a {e.family} run, not a pixelcnn run")
        from genlab.pictures.autoregressive import written_so_far

        frames: queue.Queue = queue.Queue()
        h, w = model.grid
        total = h * w
        done_flag = object()
        n = int(n)

        def callback(done: int, v: torch.Tensor) -> None:
            if done % every == 0 or done == total:
                frames.put((done, written_so_far(model, v, done)))

        def work() -> None:
            try:
                with torch.inference_mode():
                    model.sample(
                        int(n),
                        generator=torch.Generator().manual_seed(int(seed)),
                        temperature=float(temperature),
                        callback=callback,
                    )
            except Exception as err:  # handed to the page as one line
                frames.put(err)
            frames.put(done_flag)

        with self._lock:
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            while (item := frames.get()) is not done_flag:
                if isinstance(item, Exception):
                    raise GenlabError(f"{e.name}: sampling failed ({item})")
                done, x = item
                yield grid(x, nrow=min(int(n), 4)), f"{done} of {total} pixels written"
            thread.join()

    # -- DQN --------------------------------------------------------------------------------

    def play(self, name: str | None, episode: int = 0) -> tuple[Path, str]:
        """A GIF of one greedy episode of an agent run, and its return."""
        from genlab.pictures.agent import play

        e = self.entry(name)
        if AGENT not in e.can:
            raise GenlabError(f"{e.name}: a {e.family} run, not an agent (dqn, qtable)")
        path = self._file("play", f"{e.name}|{int(episode)}|{ModelCache._stamp(e.path)}", ".gif")
        with self._lock:
            _, returns, frames = play(e.path, path, episodes=1, every=2, first_episode=int(episode))
        env = e.config.get("data", {}).get("env", "")
        return path, f"{e.name} on {env}: return {returns[0]:g} ({frames} frames)"


COMPARE_COLUMNS = [
    "run",
    "family",
    "n",
    "fd",
    "fid_inception",
    "kid_mean",
    "precision",
    "recall",
    "coverage",
    "modes_covered",
    "conditional_accuracy",
]


def _round(v: Any) -> Any:
    return None if v is None else round(float(v), 3)
