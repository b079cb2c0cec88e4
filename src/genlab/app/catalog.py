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
IMAGE_FAMILIES = ("ae", "vae", "gan", "cgan", "stylegan", "ddpm", "ldm", "txt2img", "pixelcnn")
"""Families whose runs draw images (the Sample and Compare tabs)."""
DIFFUSION_FAMILIES = ("ddpm", "ldm", "txt2img")
AGENT_FAMILIES = ("dqn", "qtable")


@dataclass(frozen=True)
class Entry:
    """One run the app lists: its name in the page, its folder, and what it is."""

    name: str
    path: Path
    family: str | None  # None when the folder is not a readable run
    config: dict[str, Any]
    error: str | None = None
    provenance: dict[str, Any] | None = None  # shipped runs: how they were trained and scored

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
    def vector_latent(self) -> bool:
        """An encoder with a vector latent: the latent-space explorer's runs."""
        model = self.config.get("model", {})
        return self.family in ("ae", "vae") and not model.get("latent_channels")

    def check(self) -> Entry:
        """This entry, or a GenlabError with its one-line error."""
        if self.error is not None:
            raise GenlabError(self.error)
        return self


def _entry(name: str, path: Path, provenance: dict[str, Any] | None = None) -> Entry:
    from genlab.runs import read_config

    try:
        config = read_config(path)
    except GenlabError as e:
        return Entry(name, path, None, {}, str(e))
    family = config.get("family")
    if not isinstance(family, str):
        return Entry(name, path, None, {}, f"{path}: config.json names no family")
    has_weights = any((path / f).is_file() for f in ("model.safetensors", "ema.safetensors"))
    if not has_weights:
        error = f"{path}: no weights yet (model.safetensors); wait for its first checkpoint"
        return Entry(name, path, family, config, error)
    return Entry(name, path, family, config, None, provenance)


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

    def names(self, families: tuple[str, ...] | None = None, *, broken: bool = True) -> list[str]:
        """Names of the entries of these families (every family if None), the broken ones too
        unless `broken` is False (a broken entry has no family to filter by)."""
        out = []
        for name, e in self.entries.items():
            if e.error is not None:
                if broken:
                    out.append(name)
            elif families is None or e.family in families:
                out.append(name)
        return out

    def latent_names(self) -> list[str]:
        return [n for n, e in self.entries.items() if e.error is not None or e.vector_latent]


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
