"""The record a model family declares about itself, in its own module (`FAMILY = Family(...)`).

`genlab.families.FAMILIES` collects them; everything that works on "any family" (creating and
training runs, `genlab.load`, the CLI's per-family `genlab train` commands, sampling, the demo
and the app) reads these records instead of switching on family names. Adding a family is its
model file with its record, one entry in `genlab.families`, and the step that trains it in
`genlab.training.registry` (and its own training curves, if any, in `genlab.pictures.CURVES`):
models never import training or picture code, so those packages map families to their parts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from genlab.options import Option

FROZEN = "frozen.safetensors"
"""Parts of a run that are not trained (a latent model's VAE, caption encodings), written when
the run is created (`Configured.frozen`)."""


class Configured(NamedTuple):
    """What a family makes of its options and training data when a run is created.

    Attributes:
        config: the model's frozen config.
        extra: more entries for config.json (class names, a CycleGAN's domains, ...).
        frozen: tensors that training never changes (a latent model's VAE), written to
            RUN/frozen.safetensors and loaded before the first step (`model.load_frozen`).
        train: TrainConfig fields the family's options decide (a CycleGAN's lr).
    """

    config: Any
    extra: dict[str, Any] = {}
    frozen: dict[str, Any] = {}
    train: dict[str, Any] = {}


class LoadedRun(NamedTuple):
    """An option of kind "run", loaded for `configure`: the directory, its config and model."""

    path: Path
    config: dict[str, Any]
    model: Any


@dataclass(frozen=True)
class Family:
    """One model family: what it is, what it takes, how it trains.

    Attributes:
        name: the name of `genlab train NAME` and of config.json's "family".
        summary: one line for `genlab train --help`.
        config: the frozen config dataclass of the model.
        model: the nn.Module class; `model(config)` builds it.
        configure: (checked options, training data) -> Configured: the model config (and more)
            for a new run. Options of kind "run" arrive as `LoadedRun`s.
        options: the family's own options (beyond the shared data, budget and TrainConfig ones,
            which an option of the same name replaces).
        train_defaults: TrainConfig values that differ from TrainConfig's defaults.
        train_ignores: TrainConfig fields that do not apply (not offered as options).
        specs: options -> {"data": DataSpec, ...} for families whose data is not one image set
            (None: one set from --data, --data-dir, --size, --channels, --limit).
        read: (specs, split) -> the data, for families whose data is not one image set (None:
            `genlab.data.load_data` of specs["data"]).
        data_options: offers the image-data options (--data, --data-dir, --size, --channels,
            --limit) and --epochs; False for families whose data is not images (an agent's
            environment, given by its own options and `specs`).
        agent: acts in an environment (`genlab eval` scores greedy episodes; `genlab play` and
            `genlab q-values` apply). Its model has `act(obs) -> actions`.
        spec_type: the dataclass of config.json's "data" (None: `genlab.data.DataSpec`).
        upgrade: config.json of an older layout -> today's (`Run.open` applies it), so that
            runs made before a config was reorganised still load, train and sample.
    """

    name: str
    summary: str
    config: type
    model: type
    configure: Callable[[dict[str, Any], Any], Configured]
    options: tuple[Option, ...] = ()
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    train_ignores: tuple[str, ...] = ()
    specs: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    read: Callable[[dict[str, Any], str], Any] | None = None
    data_options: bool = True
    agent: bool = False
    spec_type: type | None = None
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def read_data(self, specs: dict[str, Any], split: str = "train") -> Any:
        """One split of the family's data from its specs: an ImageData, or its own (Domains)."""
        if self.read is not None:
            return self.read(specs, split)
        from genlab.data import load_data

        return load_data(specs["data"], split)

    def option(self, name: str) -> Option | None:
        """The family's own option of that name, if it has one."""
        return next((o for o in self.options if o.name == name), None)


DATA_FIELDS = ("channels", "image_size", "num_classes")
"""Model config fields an image family takes from its training data, never from options."""


def image_fields(data: Any) -> dict[str, int]:
    """channels and image_size of a model config, from the training images (N, C, H, W)."""
    c, h, _ = data.shape
    return {"channels": c, "image_size": h}


def image_options(cls: type, *exclude: str, **ranges: Mapping[str, Any]) -> tuple[Option, ...]:
    """The options of an image family's config fields (`field_options` with `ranges`), without
    those its data decides (`DATA_FIELDS`) and the `exclude`d ones."""
    from genlab.options import field_options

    return field_options(cls, exclude=(*DATA_FIELDS, *exclude), **ranges)


def image_config(cls: type, options: Mapping[str, Any], data: Any, **fixed: Any) -> Any:
    """The model config `cls` of an image family: the options naming its fields, the training
    images' channels and size, and the `fixed` values (num_classes, ...), which win."""
    return pick(cls, options, **image_fields(data), **fixed)


def pick(cls: type, options: Mapping[str, Any], **fixed: Any) -> Any:
    """An instance of the config dataclass `cls` from the options naming its fields (None
    values are left to the dataclass' defaults) and the `fixed` values, which win."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in options.items() if k in names and v is not None}
    return cls(**{**given, **fixed})


CONDITIONAL = Option(
    "conditional", "bool", False, "Condition on the data's classes: a model of P(x | class)."
)


def refuse_binarized_colour(options: Mapping[str, Any], data: Any) -> None:
    """A one-line error for --binarize on images that are not grayscale (families with a
    `binarize` option: pixelcnn, vae)."""
    from genlab.errors import GenlabError

    if options.get("binarize") and data.shape[0] != 1:
        raise GenlabError(
            "--binarize needs grayscale images (--channels 1): binarizing RGB pixels has no "
            "standard meaning"
        )


def num_classes(data: Any, what: str, minimum: int = 1, hint: str = "") -> int:
    """The number of classes of labelled training data, or a one-line error saying that `what`
    needs labels (class sub-folders of an image folder), then `hint`."""
    from genlab.errors import GenlabError

    k = len(data.class_names)
    if k < minimum or (data.labels < 0).any():
        at_least = f" of at least {minimum} classes" if minimum > 1 else ""
        raise GenlabError(
            f"{what} needs labelled data{at_least}: put the images in class sub-folders "
            f"(one per class){hint}"
        )
    return k
