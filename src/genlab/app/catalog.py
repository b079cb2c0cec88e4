"""The runs the web app offers: the shipped runs and the run directories under `--runs`.

The browser never sends a path: it picks a run by the name the catalog gave it, and the catalog
maps names to folders it found itself. A folder that is not a readable genlab run stays listed
with its one-line error (shown in the page when chosen), so a broken run is visible and harmless.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

SHIPPED_PREFIX = "shipped/"
IMAGES, LATENT, PRIOR, DIFFUSION, TEXT, STEPWISE, AGENT, GUIDE = (
    "images", "latent", "prior", "diffusion", "text", "stepwise", "agent", "guide"
)  # fmt: skip
"""What a run can do, read from its family's model class and config (never from the family's
name, so a new family lands in the right tabs by what it offers): draw images (`sample`), encode
and decode a vector latent (with a N(0, I) prior: an encoder distribution), run a diffusion
process, take a prompt, draw step by step (a
`callback` per position), act in an environment, guide a diffusion model (a noisy classifier)."""


def capabilities(family: str, model_config: dict[str, Any]) -> frozenset[str]:
    """What runs of `family` with this model config can do (the constants above)."""
    import inspect

    from genlab.families import get_family
    from genlab.models.noisy_classifier import NoisyClassifier

    cls = get_family(family).model
    caps = set()
    if hasattr(cls, "act"):
        caps.add(AGENT)
    if hasattr(cls, "sample"):
        caps.add(IMAGES)
        # drawn position by position, and shown so: not a prior, whose positions are codes
        if "callback" in inspect.signature(cls.sample).parameters and not model_config.get("vqvae"):
            caps.add(STEPWISE)
    if (
        hasattr(cls, "encode")
        and hasattr(cls, "decode")
        and getattr(cls, "VECTOR_LATENT", True)
        and not model_config.get("latent_channels")
    ):
        caps.add(LATENT)
        if hasattr(cls, "encode_dist"):
            caps.add(PRIOR)
    if hasattr(cls, "sample_process"):
        caps.add(TEXT if model_config.get("text_dim") else DIFFUSION)
    if issubclass(cls, NoisyClassifier):
        caps.add(GUIDE)
    return frozenset(caps)


@dataclass(frozen=True)
class Entry:
    """One run the app lists: its name in the page, its folder, and what it is."""

    name: str
    path: Path
    family: str | None  # None when the folder is not a readable run
    config: dict[str, Any]
    error: str | None = None
    provenance: dict[str, Any] | None = None  # shipped runs: how they were trained and scored
    can: frozenset[str] = frozenset()  # its capabilities (IMAGES, LATENT, ...)

    @property
    def shipped(self) -> bool:
        return self.provenance is not None

    @property
    def class_names(self) -> list[str]:
        return list(self.config.get("class_names") or [])

    @property
    def conditional(self) -> bool:
        return bool(self.config.get("model", {}).get("num_classes"))

    @property
    def prior(self) -> bool:
        """Whether its latent has a N(0, I) prior to draw from (a VAE; an autoencoder has none)."""
        return PRIOR in self.can

    def check(self) -> Entry:
        """This entry, or a GenlabError with its one-line error."""
        if self.error is not None:
            raise GenlabError(self.error)
        return self


def _entry(name: str, path: Path, provenance: dict[str, Any] | None = None) -> Entry:
    from genlab.runs import Run

    try:
        run = Run.open(path)
        config, family = dict(run.config), run.name
        can = capabilities(family, config.get("model") or {})
    except GenlabError as e:
        return Entry(name, path, None, {}, str(e))
    has_weights = any((path / f).is_file() for f in ("model.safetensors", "ema.safetensors"))
    if not has_weights:
        error = f"{path}: no weights yet (model.safetensors); wait for its first checkpoint"
        return Entry(name, path, family, config, error, None, can)
    return Entry(name, path, family, config, None, provenance, can)


class Catalog:
    """The shipped runs and every folder under `runs_dir` (one level, and one more below a
    folder that is not a run itself), by name. `refresh()` looks again."""

    def __init__(self, runs_dir: str | os.PathLike | None = "runs", shipped: bool = True):
        self.runs_dir = Path(runs_dir).resolve() if runs_dir is not None else None
        self.include_shipped = shipped
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.refresh()

    def refresh(self) -> Catalog:
        from genlab.pretrained import shipped

        entries: OrderedDict[str, Entry] = OrderedDict()
        if self.include_shipped:
            for s in shipped():
                entries[SHIPPED_PREFIX + s.name] = _entry(
                    SHIPPED_PREFIX + s.name, s.path, s.provenance
                )
        if self.runs_dir is not None and self.runs_dir.is_dir():
            for folder in sorted(self.runs_dir.iterdir()):
                if not folder.is_dir() or folder.name.startswith("."):
                    continue
                children = [c for c in sorted(folder.iterdir()) if c.is_dir()]
                nested = [c for c in children if (c / "config.json").is_file()]
                if (folder / "config.json").is_file() or not nested:
                    entries[folder.name] = _entry(folder.name, folder)
                else:  # a folder of runs (e.g. runs/sweep/a, runs/sweep/b)
                    for child in nested:
                        name = f"{folder.name}/{child.name}"
                        entries[name] = _entry(name, child)
        self.entries = entries
        return self

    def get(self, name: str | None) -> Entry:
        """The entry called `name` (its error, if broken, is raised by `Entry.check`)."""
        if not name:
            raise GenlabError("choose a run first")
        if name not in self.entries:
            raise GenlabError(f"no run named {name!r} in this app; refresh the list")
        return self.entries[name]

    def names(self, can: str | None = None, *, broken: bool = True) -> list[str]:
        """Names of the entries that can do `can` (all if None), and the broken ones too unless
        `broken` is False (a broken entry cannot say what it can do)."""
        out = []
        for name, e in self.entries.items():
            if e.error is not None:
                if broken:
                    out.append(name)
            elif can is None or can in e.can:
                out.append(name)
        return out


class ModelCache:
    """Loaded models by run folder, reloaded when the weights change (a run still training is
    read at its last complete checkpoint); at most `size` kept."""

    def __init__(self, size: int = 6):
        self.size = size
        self._models: OrderedDict[Path, tuple[tuple[int, ...], Any]] = OrderedDict()

    @staticmethod
    def _stamp(path: Path) -> tuple[int, ...]:
        files = (path / "config.json", path / "model.safetensors", path / "ema.safetensors")
        return tuple(f.stat().st_mtime_ns if f.is_file() else 0 for f in files)

    def get(self, entry: Entry):
        from genlab.runs import load_model

        entry.check()
        stamp = self._stamp(entry.path)
        cached = self._models.get(entry.path)
        if cached is not None and cached[0] == stamp:
            self._models.move_to_end(entry.path)
            return cached[1]
        try:
            model = load_model(entry.path)
        except GenlabError:
            raise
        except Exception as e:  # a damaged file: one line, never a traceback in the page
            raise GenlabError(f"{entry.path}: cannot be loaded ({type(e).__name__}: {e})") from e
        self._models[entry.path] = (stamp, model)
        while len(self._models) > self.size:
            self._models.popitem(last=False)
        return model
