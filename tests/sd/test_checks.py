"""Checks before loading: missing components, wrong files and pickles get one clear line."""

from __future__ import annotations

import json
import shutil

import pytest

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.sd.checks import estimate_memory, inspect_model


@pytest.fixture
def folder_copy(sd_folder, tmp_path):
    return shutil.copytree(sd_folder, tmp_path / "model")


def test_folder_components_weights_and_geometry(sd_folder):
    from diffusers import UNet2DConditionModel

    source = inspect_model(sd_folder)
    assert not source.single_file and not source.pickled
    names = {c.name for c in source.components}
    assert names == {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    unet = UNet2DConditionModel.from_pretrained(sd_folder / "unet")
    assert source.component("unet").params == sum(p.numel() for p in unet.parameters())
    assert source.component("unet").dtypes == ("F32",)
    assert (source.in_channels, source.native_size) == (4, 16)


@pytest.mark.kernels
def test_single_file_counts_match_the_folder(sd_folder, sd_single_file):
    folder = inspect_model(sd_folder)
    single = inspect_model(sd_single_file.checkpoint, config=sd_single_file.config)
    assert single.single_file and single.config_dir == sd_single_file.config
    for name in ("unet", "vae", "text_encoder"):
        assert single.component(name).params == folder.component(name).params


@pytest.mark.parametrize("component", ["unet", "tokenizer", "text_encoder"])
def test_missing_component_is_named(folder_copy, component):
    shutil.rmtree(folder_copy / component)
    with pytest.raises(GenlabError, match=f"{component} component is missing"):
        inspect_model(folder_copy)


def test_component_without_weights_is_named(folder_copy):
    (folder_copy / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(GenlabError, match="vae component has no weights"):
        inspect_model(folder_copy)


def test_folder_without_model_index(folder_copy):
    (folder_copy / "model_index.json").unlink()
    with pytest.raises(GenlabError, match="model_index.json: missing"):
        inspect_model(folder_copy)


def test_other_pipelines_are_refused(folder_copy):
    index = json.loads((folder_copy / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (folder_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(GenlabError, match="StableDiffusionXLPipeline model"):
        inspect_model(folder_copy)


def test_pickled_folder_weights_are_refused(folder_copy):
    weights = folder_copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(GenlabError, match="pickles .* --allow-pickle"):
        inspect_model(folder_copy)
    assert inspect_model(folder_copy, allow_pickle=True).pickled


def test_wrong_files(tmp_path, sd_single_file):
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(GenlabError, match=r"not a model \(.png\)"):
        inspect_model(png)
    fake = tmp_path / "renamed.safetensors"
    fake.write_bytes(b"PK\x03\x04" + b"\0" * 64)  # a torch.save zip with the wrong name
    with pytest.raises(GenlabError, match="pickled PyTorch checkpoint named .safetensors"):
        inspect_model(fake, config=sd_single_file.config)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(GenlabError, match="not a safetensors file"):
        inspect_model(garbage, config=sd_single_file.config)
    with pytest.raises(GenlabError, match="no such file or folder"):
        inspect_model(tmp_path / "nowhere")


def test_a_file_that_is_not_a_checkpoint(tmp_path, sd_single_file):
    import torch
    from safetensors.torch import save_file

    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.weight": torch.zeros(2, 2)}, lora)
    with pytest.raises(GenlabError, match="not a Stable Diffusion checkpoint"):
        inspect_model(lora, config=sd_single_file.config)


def test_single_file_needs_configs(sd_single_file):
    with pytest.raises(GenlabError, match="needs its configs: give --config"):
        inspect_model(sd_single_file.checkpoint)


def test_single_file_missing_vae_is_named(tmp_path, sd_single_file):
    from safetensors.torch import load_file, save_file

    tensors = load_file(sd_single_file.checkpoint)
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in tensors.items() if not k.startswith("first_stage")}, partial)
    with pytest.raises(GenlabError, match="no vae weights"):
        inspect_model(partial, config=sd_single_file.config)


def test_memory_estimate_grows_with_pixels_and_dtype(sd_folder):
    source = inspect_model(sd_folder)
    small = estimate_memory(source, 4, 256, 256, 2**40)
    big = estimate_memory(source, 4, 512, 512, 2**40)
    assert big.activations == 4 * small.activations and small.fits
    assert estimate_memory(source, 2, 512, 512, 2**40).weights * 2 == big.weights
    assert not estimate_memory(source, 4, 512, 512, 1000).fits


def test_cli_errors_are_one_line(sd_folder, tmp_path, capsys):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x04")
    assert main(["sd", "txt2img", "x", "--model", str(ckpt), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pickled checkpoint" in err and "--allow-pickle" in err
    assert not (tmp_path / "a").exists()
    code = main(["sd", "txt2img", "x", "--model", str(sd_folder), "--scheduler", "nope"])
    assert code == 2 and "--scheduler nope: must be one of" in capsys.readouterr().err
