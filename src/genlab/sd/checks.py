"""What a Stable Diffusion model on disk holds, checked before anything is loaded.

A model is either a diffusers folder (model_index.json and one sub-folder per component) or one
checkpoint file in the original (LDM) layout with a local folder of configs beside it. Everything
here reads only JSON and safetensors headers, so a mistake (a missing component, a pickled file,
the wrong kind of file, a model too big for this machine) is reported in a second, in one line,
before diffusers spends minutes loading gigabytes. No torch, no diffusers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from genlab.errors import GenlabError

# Files that are pickles (unpickling runs arbitrary code): refused without allow_pickle.
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
# The components a Stable Diffusion pipeline needs, and what each sub-folder must hold.
REQUIRED = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
MODEL_COMPONENTS = ("unet", "vae", "text_encoder", "safety_checker")
# May be deleted to save space: generation then runs without the safety checker.
OPTIONAL = ("safety_checker", "feature_extractor", "image_encoder")
PIPELINES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
)
# Working memory per pixel per byte of dtype (see activation_bytes).
ACTIVATION_BYTES_PER_PIXEL = 1000
# Tensor-name prefixes of the original (LDM) single-file layout.
LDM_PREFIXES = {
    "unet": "model.diffusion_model.",
    "vae": "first_stage_model.",
    "text_encoder": "cond_stage_model.",
}
_MAX_HEADER = 100 << 20  # a safetensors header above 100 MB means a corrupt or foreign file


class Component(NamedTuple):
    """One part of the pipeline (unet, vae, text_encoder, ...) as found on disk."""

    name: str
    class_name: str
    files: tuple[Path, ...]
    params: int
    """Number of weights (0 where unknown: pickles, tokenizer, scheduler)."""
    dtypes: tuple[str, ...]
    """Stored dtypes, safetensors names: ("F16",), ("F32",)."""


class ModelSource(NamedTuple):
    """A checked model: where its weights and configs are and what they hold."""

    path: Path
    """What the user gave: a folder or a checkpoint file."""
    single_file: bool
    config_dir: Path
    """The folder with model_index.json (the model itself, or the configs of a single file)."""
    components: tuple[Component, ...]
    pickled: bool
    variant: str | None
    """diffusers weight variant ("fp16") when the folder has only variant files."""
    in_channels: int
    """The UNet's input channels: 4, or 9 for an inpainting checkpoint."""
    sample_size: int
    """The UNet's latent size; times vae_scale_factor gives the native image size."""
    vae_scale_factor: int
    disk_bytes: int

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    @property
    def native_size(self) -> int:
        return self.sample_size * self.vae_scale_factor

    def params(self, names: tuple[str, ...] = MODEL_COMPONENTS) -> int:
        return sum(c.params for c in self.components if c.name in names)


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """The tensor table of a safetensors file: name -> {"dtype", "shape", "data_offsets"}."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if head[:2] == b"PK" or head[:1] == b"\x80":
            raise GenlabError(
                f"{path}: a pickled PyTorch checkpoint named .safetensors; rename it .ckpt and "
                "pass --allow-pickle only if you trust its source"
            )
        if n <= 1 or n > _MAX_HEADER or n + 8 > size:
            raise GenlabError(f"{path}: not a safetensors file (bad header); re-download it")
        try:
            table = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            table = None
    if not isinstance(table, dict):
        raise GenlabError(f"{path}: not a safetensors file (bad header); re-download it")
    table.pop("__metadata__", None)
    return table


def _count(tables: list[dict[str, dict]]) -> tuple[int, tuple[str, ...]]:
    """Floating-point weights and their dtypes (integer buffers such as position_ids skipped)."""
    params, dtypes = 0, set()
    for table in tables:
        for info in table.values():
            if not str(info.get("dtype", "")).startswith(("F", "BF")):
                continue
            n = 1
            for d in info.get("shape", []):
                n *= int(d)
            params += n
            dtypes.add(str(info.get("dtype")))
    return params, tuple(sorted(dtypes))


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GenlabError(f"{path}: missing; {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GenlabError(f"{path}: unreadable JSON ({e}); {what}") from None
    if not isinstance(data, dict):
        raise GenlabError(f"{path}: expected a JSON object; {what}")
    return data


def _weight_files(folder: Path, allow_pickle: bool) -> tuple[tuple[Path, ...], str | None, bool]:
    """A component's weight files, their variant ("fp16" or None) and whether they are pickles."""
    safe = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    plain = [p for p in safe if p.name.count(".") == 1]  # model.safetensors, or its shards
    if plain:
        return tuple(plain), None, False
    if safe:  # only variant files: diffusion_pytorch_model.fp16.safetensors
        variant = safe[0].name.split(".")[-2]
        return tuple(p for p in safe if f".{variant}." in p.name), variant, False
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if pickles and not allow_pickle:
        raise GenlabError(
            f"{folder}: weights only as pickles ({pickles[0].name}), which can run code when "
            "loaded; convert them to safetensors, or pass --allow-pickle if you trust the source"
        )
    return tuple(pickles), None, bool(pickles)


def _folder_components(
    config_dir: Path, index: dict, *, weights: bool, allow_pickle: bool
) -> tuple[list[Component], str | None, bool]:
    """Check every component sub-folder of a diffusers layout (with or without weights)."""
    fix = "the model folder is incomplete: copy that component from the original model"
    components, variant, pickled = [], None, False
    for name in REQUIRED:
        entry = index.get(name)
        if not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
            raise GenlabError(f"{config_dir / 'model_index.json'}: no {name} component; {fix}")
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2:
            continue
        if entry[1] is None:
            continue
        folder = config_dir / name
        if not folder.is_dir():
            if name in OPTIONAL:
                continue
            raise GenlabError(f"{folder}: the {name} component is missing; {fix}")
        files: tuple[Path, ...] = ()
        params, dtypes = 0, ()
        if name == "tokenizer":
            has = {p.name for p in folder.iterdir()}
            if "tokenizer.json" not in has and not {"vocab.json", "merges.txt"} <= has:
                raise GenlabError(
                    f"{folder}: the tokenizer is incomplete (needs tokenizer.json, or vocab.json "
                    f"and merges.txt); {fix}"
                )
        elif name == "scheduler":
            _read_json(folder / "scheduler_config.json", fix)
        elif name in MODEL_COMPONENTS:
            _read_json(folder / "config.json", fix)
            if weights:
                files, v, p = _weight_files(folder, allow_pickle)
                if not files:
                    raise GenlabError(f"{folder}: the {name} component has no weights; {fix}")
                variant, pickled = variant or v, pickled or p
                if not p:
                    params, dtypes = _count([read_safetensors_header(f) for f in files])
        components.append(Component(name, str(entry[1]), files, params, dtypes))
    return components, variant, pickled


def _geometry(config_dir: Path) -> tuple[int, int, int]:
    """(UNet in_channels, UNet sample_size, VAE scale factor) from the component configs."""
    unet = _read_json(config_dir / "unet" / "config.json", "the unet config is needed")
    vae = _read_json(config_dir / "vae" / "config.json", "the vae config is needed")
    scale = 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)
    return int(unet.get("in_channels", 4)), int(unet.get("sample_size", 64)), scale


def _check_index(config_dir: Path) -> dict:
    index = _read_json(
        config_dir / "model_index.json",
        "a diffusers model folder has model_index.json at its top",
    )
    cls = index.get("_class_name")
    if cls not in PIPELINES:
        raise GenlabError(
            f"{config_dir / 'model_index.json'}: a {cls} model; genlab sd runs Stable Diffusion "
            "1.x/2.x (StableDiffusionPipeline and its img2img/inpaint variants)"
        )
    return index


def inspect_model(
    path: str | os.PathLike, *, config: str | os.PathLike | None = None, allow_pickle: bool = False
) -> ModelSource:
    """Check a model folder or checkpoint file without loading it.

    Args:
        path: a diffusers folder (with model_index.json) or a single checkpoint file.
        config: for a single file, a folder with the diffusers configs and tokenizer (a diffusers
            layout without weights); default: the file's own folder when it has model_index.json.
        allow_pickle: accept pickled weights (.ckpt, .bin), which can run code when loaded.

    Raises:
        GenlabError: one line naming the missing component, wrong file or refused pickle.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise GenlabError(f"{path}: no such file or folder; give a diffusers folder or a file")
    if path.is_dir():
        if config is not None:
            raise GenlabError(f"{path}: a model folder carries its own configs; drop --config")
        index = _check_index(path)
        components, variant, pickled = _folder_components(
            path, index, weights=True, allow_pickle=allow_pickle
        )
        disk = sum(f.stat().st_size for c in components for f in c.files)
        return ModelSource(path, False, path, tuple(components), pickled, variant,
                           *_geometry(path), disk)  # fmt: skip
    return _inspect_file(path, config, allow_pickle)


def _inspect_file(path: Path, config, allow_pickle: bool) -> ModelSource:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise GenlabError(
                f"{path}: a pickled checkpoint, which can run code when loaded; use a "
                ".safetensors file, or pass --allow-pickle if you trust its source"
            )
    elif suffix != ".safetensors":
        raise GenlabError(
            f"{path}: not a model ({suffix or 'no extension'}); give a diffusers folder "
            "(with model_index.json) or a .safetensors checkpoint"
        )
    if config is None:
        if not (path.parent / "model_index.json").is_file():
            raise GenlabError(
                f"{path}: a single checkpoint file needs its configs: give --config DIR, a "
                "diffusers folder with model_index.json, component configs and tokenizer/"
            )
        config = path.parent
    config_dir = Path(config).expanduser()
    if not config_dir.is_dir():
        raise GenlabError(f"{config_dir}: --config must be a folder with model_index.json")
    index = _check_index(config_dir)
    components, _, _ = _folder_components(
        config_dir, index, weights=False, allow_pickle=allow_pickle
    )
    components = [c for c in components if c.name != "safety_checker"]
    pickled = suffix in PICKLE_SUFFIXES
    if not pickled:
        table = read_safetensors_header(path)
        found = {}
        for name, prefix in LDM_PREFIXES.items():
            found[name] = {k: v for k, v in table.items() if k.startswith(prefix)}
        if not found["unet"]:
            hint = (
                "it looks like one diffusers component, not a full checkpoint"
                if any(k.startswith(("down_blocks.", "encoder.", "text_model.")) for k in table)
                else "it may be a LoRA, VAE or embedding file"
            )
            raise GenlabError(
                f"{path}: not a Stable Diffusion checkpoint (no model.diffusion_model.* "
                f"tensors); {hint}"
            )
        if any(k.startswith("conditioner.") for k in table):
            raise GenlabError(f"{path}: an SDXL checkpoint; genlab sd runs SD 1.x/2.x")
        for name in ("vae", "text_encoder"):
            if not found[name]:
                raise GenlabError(
                    f"{path}: the checkpoint has no {name} weights ({LDM_PREFIXES[name]}*); "
                    "use a full checkpoint or its diffusers folder"
                )
        components = [
            c._replace(files=(path,), params=_count([found[c.name]])[0],
                       dtypes=_count([found[c.name]])[1])
            if c.name in found else c
            for c in components
        ]  # fmt: skip
    in_channels, sample_size, scale = _geometry(config_dir)
    return ModelSource(path, True, config_dir, tuple(components), pickled, None,
                       in_channels, sample_size, scale, path.stat().st_size)  # fmt: skip


# ----------------------------------------------------------------------------- memory


class MemoryEstimate(NamedTuple):
    """Bytes a generation needs, an estimate from the model's size and the image size."""

    weights: int
    activations: int
    loading: int
    """Extra while loading: a single file is read whole before it is split into components."""
    available: int

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.loading

    @property
    def fits(self) -> bool:
        return self.total <= self.available


def activation_bytes(width: int, height: int, itemsize: int) -> int:
    """Peak working memory while making one width x height picture, beyond the weights.

    An estimate that scales with the pixels: the VAE decoder dominates, keeping a few 128- and
    256-channel feature maps alive at full resolution (the UNet works at 1/8 resolution, and
    torch's fused attention keeps its memory linear in the tokens). Calibrated on SD 1.5 in
    fp32 by bench/sd_unet_speed.py: the VAE decoder peaks at 960-977 MiB above its weights at
    512x512 (about 1,000 bytes per pixel per byte of dtype), a guided UNet step at 350-400 MiB.
    """
    return ACTIVATION_BYTES_PER_PIXEL * width * height * itemsize


def estimate_memory(
    source: ModelSource, itemsize: int, width: int, height: int, available: int
) -> MemoryEstimate:
    """How much memory generating width x height pictures needs, against what is available."""
    weights = source.params() * itemsize if source.params() else source.disk_bytes
    loading = source.disk_bytes if source.single_file else 0
    return MemoryEstimate(weights, activation_bytes(width, height, itemsize), loading, available)


def available_memory(device: str) -> int:
    """Free bytes on the device: host RAM for the CPU, free GPU memory for CUDA."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    import psutil

    return int(psutil.virtual_memory().available)


def size_text(n: int) -> str:
    """Bytes for people: 3.4 GiB, 512 MiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
