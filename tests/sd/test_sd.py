"""Generation with a tiny Stable Diffusion: CLI, seeds, guidance, replay, single file, offline."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import tiny_sd
import torch
from helpers import block_network

import genlab.sd
from genlab.cli import main
from genlab.errors import GenlabError
from genlab.images import read_png_metadata
from genlab.sd.pipeline import Interrupted, Request, read_image

FAST = ["--steps", "3", "--no-progress", "--precision", "fp32"]  # auto may pick bf16: see below
# diffusers' schedulers build numpy arrays from tensors the way numpy 2 deprecates; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread per test worker: the tiny UNet is overhead-bound and the 2 cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sd(sd_folder):
    return genlab.sd.load(sd_folder, device="cpu", precision="fp32")  # auto may measure bf16


def txt2img(model, out, *args):
    assert main(["sd", "txt2img", "a cat", "--model", str(model), "--out", str(out), *FAST,
                 *args]) == 0  # fmt: skip
    return read_image(out)


def test_txt2img_writes_pngs_with_everything_needed_to_replay(sd_folder, tmp_path):
    out = tmp_path / "cat.png"
    assert main(["sd", "txt2img", "a cat", "--model", str(sd_folder), "--out", str(out), *FAST,
                 "--n", "2", "--seed", "5", "--negative-prompt", "a dog", "--scheduler", "euler",
                 "--guidance-scale", "4"]) == 0  # fmt: skip
    first, second = tmp_path / "cat-0.png", tmp_path / "cat-1.png"
    assert read_image(first).shape == (16, 16, 3)
    meta = read_png_metadata(first)
    assert {k: meta[k] for k in ("prompt", "negative_prompt", "seed", "steps", "scheduler",
                                 "guidance", "size", "mode")} == {
        "prompt": "a cat", "negative_prompt": "a dog", "seed": "5", "steps": "3",
        "scheduler": "euler", "guidance": "4.0", "size": "16x16", "mode": "txt2img",
    }  # fmt: skip
    assert meta["model"] == str(sd_folder.resolve()) and meta["precision"] == "fp32"
    assert read_png_metadata(second)["seed"] == "6"


def test_seeds_reproduce_and_differ(sd_folder, tmp_path):
    a = txt2img(sd_folder, tmp_path / "a.png", "--seed", "1")
    b = txt2img(sd_folder, tmp_path / "b.png", "--seed", "1")
    c = txt2img(sd_folder, tmp_path / "c.png", "--seed", "2")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_guidance_and_prompt_change_the_picture(sd):
    base = sd.txt2img("a cat", steps=3, guidance_scale=7.5).image
    assert not np.array_equal(base, sd.txt2img("a cat", steps=3, guidance_scale=1.0).image)
    assert not np.array_equal(base, sd.txt2img("a dog", steps=3, guidance_scale=7.5).image)


@pytest.mark.parametrize("scheduler", list(genlab.sd.SCHEDULERS))
def test_every_scheduler_draws(sd, scheduler):
    picture = sd.txt2img("a cat", steps=2, scheduler=scheduler, width=24, height=16)
    assert picture.image.shape == (16, 24, 3) and picture.image.dtype == np.uint8
    assert picture.request.scheduler == scheduler


def test_replay_is_identical(sd_folder, tmp_path, capsys):
    out = tmp_path / "cat.png"
    txt2img(sd_folder, out, "--seed", "3", "--scheduler", "euler-ancestral")
    copy = tmp_path / "again.png"
    assert main(["sd", "replay", str(out), "--out", str(copy), "--no-progress"]) == 0
    assert f"{copy} is identical to {out}" in capsys.readouterr().out
    assert np.array_equal(read_image(out), read_image(copy))


def test_img2img_cli_and_replay(sd_folder, photo, tmp_path, capsys):
    out = tmp_path / "redrawn.png"
    args = ["sd", "img2img", "a cat", "--model", str(sd_folder), "--image", str(photo)]
    assert main([*args, "--strength", "0.6", "--out", str(out), "--steps", "5",
                 "--no-progress"]) == 0  # fmt: skip
    picture = read_image(out)
    assert picture.shape == (20, 24, 3)  # 25x21 rounded down to multiples of 2
    meta = read_png_metadata(out)
    assert (meta["mode"], meta["strength"], meta["image"]) == ("img2img", "0.6", str(photo))
    assert main(["sd", "replay", str(out), "--no-progress"]) == 0
    assert "is identical to" in capsys.readouterr().out
    stronger = tmp_path / "stronger.png"
    assert main([*args, "--strength", "1.0", "--out", str(stronger), "--steps", "5",
                 "--no-progress"]) == 0  # fmt: skip
    assert not np.array_equal(picture, read_image(stronger))


def test_replay_refuses_a_changed_input(sd_folder, photo, tmp_path):
    image = tmp_path / "input.png"
    image.write_bytes(photo.read_bytes())
    out = tmp_path / "out.png"
    assert main(["sd", "img2img", "x", "--model", str(sd_folder), "--image", str(image),
                 "--out", str(out), *FAST]) == 0  # fmt: skip
    pixels = read_image(image).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    from PIL import Image

    Image.fromarray(pixels).save(image)
    assert main(["sd", "replay", str(out)]) == 2
    assert main(["sd", "replay", str(photo)]) == 2  # no genlab sd metadata


def test_single_file_gives_the_same_pictures_as_the_folder(sd_folder, sd_single_file, tmp_path):
    # The single file goes through diffusers' LDM conversion and transformers' CLIP loading: equal
    # pictures mean the text encoder, UNet and VAE all came back with the same weights.
    # fp32 for both: `auto` measures bf16 against fp32 on a CPU with native bf16 and may choose
    # either, which changes the pictures, not the weights this test is about.
    fp32 = ["--seed", "4", "--precision", "fp32"]
    folder = txt2img(sd_folder, tmp_path / "folder.png", *fp32)
    single = txt2img(sd_single_file.checkpoint, tmp_path / "single.png", *fp32,
                     "--config", str(sd_single_file.config))  # fmt: skip
    assert np.array_equal(folder, single)
    meta = read_png_metadata(tmp_path / "single.png")
    assert meta["model_config"] == str(sd_single_file.config.resolve())
    assert main(["sd", "replay", str(tmp_path / "single.png"), "--no-progress"]) == 0


def test_published_text_encoder_layout_loads_every_weight(sd, sd_folder):
    # The fixture stores the text encoder as SD 1.x folders do (transformers 4 names); the pinned
    # transformers must map every tensor onto its flat CLIPTextModel.
    from safetensors.torch import load_file

    on_disk = load_file(sd_folder / "text_encoder" / "model.safetensors")
    assert all(k.startswith("text_model.") for k in on_disk)
    loaded = sd.pipe.text_encoder.state_dict()
    for name, tensor in loaded.items():
        assert torch.equal(tensor, on_disk["text_model." + name.removeprefix("text_model.")])


def test_published_tokenizer_layout_tokenizes_like_the_original(sd):
    ids = sd.pipe.tokenizer("A cat", padding="max_length", max_length=77).input_ids
    tok = tiny_sd.tokenizer()
    assert ids == tok("a cat", padding="max_length", max_length=77).input_ids
    assert ids[2] == tok.convert_tokens_to_ids("cat</w>")  # the merges were read


def test_pickled_checkpoint_loads_only_when_allowed(sd_single_file, tmp_path, capsys):
    from safetensors.torch import load_file

    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": load_file(sd_single_file.checkpoint)}, ckpt)
    args = ["sd", "txt2img", "a cat", "--model", str(ckpt), "--config",
            str(sd_single_file.config), "--out", str(tmp_path / "p.png"), *FAST]  # fmt: skip
    assert main(args) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
    assert main([*args, "--allow-pickle"]) == 0


def test_no_network_connection_is_attempted(sd_folder, sd_single_file, tmp_path, monkeypatch):
    attempts = block_network(monkeypatch)
    txt2img(sd_folder, tmp_path / "offline.png")
    txt2img(sd_single_file.checkpoint, tmp_path / "offline-single.png", "--config",
            str(sd_single_file.config))  # fmt: skip
    assert attempts == []
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"  # the library turns offline mode on itself


def test_inpainting(sd_folder, sd_inpaint_folder, photo, tmp_path):
    mask = photo.with_name("mask.png")
    for model in (sd_folder, sd_inpaint_folder):  # a plain and a 9-channel inpainting UNet
        out = tmp_path / f"{model.name}.png"
        assert main(["sd", "inpaint", "a cat", "--model", str(model), "--image", str(photo),
                     "--mask", str(mask), "--out", str(out), *FAST]) == 0  # fmt: skip
        assert read_image(out).shape == (20, 24, 3)
        assert read_png_metadata(out)["mask"] == str(mask)
    assert main(["sd", "txt2img", "x", "--model", str(sd_inpaint_folder), *FAST]) == 2


def test_the_models_safety_checker_runs_unless_turned_off(sd_checked_folder, tmp_path, capsys):
    out = tmp_path / "checked.png"
    txt2img(sd_checked_folder, out)
    assert "blacked out by the model's safety checker" in capsys.readouterr().out
    assert not read_image(out).any()
    txt2img(sd_checked_folder, out, "--no-safety-checker")
    assert "blacked out" not in capsys.readouterr().out and read_image(out).any()
    lean = shutil.copytree(sd_checked_folder, tmp_path / "lean")
    shutil.rmtree(lean / "safety_checker")  # deleted to save space: runs without it
    txt2img(lean, out)
    assert "blacked out" not in capsys.readouterr().out


def test_ctrl_c_stops_at_a_step_boundary(sd, sd_folder, tmp_path, monkeypatch, capsys):
    with pytest.raises(Interrupted) as stopped:
        sd.generate(Request("a cat", steps=4), should_stop=lambda: True)
    assert (stopped.value.step, stopped.value.total) == (1, 4)

    import genlab.runtime

    class Pressed(genlab.runtime.StopFlag):  # Ctrl-C already pressed
        def __enter__(self):
            self.requested = True
            return self

    monkeypatch.setattr(genlab.runtime, "StopFlag", Pressed)
    out = tmp_path / "never.png"
    assert main(["sd", "txt2img", "x", "--model", str(sd_folder), "--out", str(out), *FAST]) == 130
    assert "stopped at step 1/3 of picture 1/1; wrote 0 of 1" in capsys.readouterr().err
    assert not out.exists()


def test_sizes_and_memory_are_checked(sd, sd_folder, photo, monkeypatch, capsys):
    with pytest.raises(GenlabError, match="multiples of 2"):
        sd.txt2img("x", width=15)
    with pytest.raises(GenlabError, match="leaves no denoising step"):
        sd.img2img("x", photo, strength=0.2, steps=3)
    for module in ("genlab.sd.pipeline", "genlab.sd.loading"):
        monkeypatch.setattr(f"{module}.available_memory", lambda device: 10_000)
    with pytest.raises(GenlabError, match="working memory"):
        sd.txt2img("x", steps=1)
    assert main(["sd", "txt2img", "x", "--model", str(sd_folder), *FAST]) == 2
    assert "loading needs about" in capsys.readouterr().err


def test_doctor_reports_components_memory_and_speed(sd_folder, capsys):
    assert main(["sd", "doctor", "--model", str(sd_folder), "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "UNet2DConditionModel" in out and "F32" in out
    assert "available: fits" in out and "s per step at 16x16 in fp32" in out


def test_cpu_precision_auto_is_measured_when_bf16_is_native(sd_folder, monkeypatch):
    import json

    from genlab.data.fashion_mnist import cache_dir

    monkeypatch.setattr("genlab.runtime.bf16_native", lambda: True)
    sd = genlab.sd.load(sd_folder, device="cpu", precision="auto")
    timing = json.loads((cache_dir() / "sd-precision.json").read_text())
    (entry,) = timing.values()
    assert sd.precision == ("bf16" if entry["bf16"] < entry["fp32"] else "fp32")
    assert sd.pipe.unet.dtype == {"bf16": torch.bfloat16, "fp32": torch.float32}[sd.precision]
    monkeypatch.setattr("genlab.runtime.bf16_native", lambda: False)
    assert genlab.sd.load(sd_folder, device="cpu").precision == "fp32"


def test_help_does_not_import_torch_or_diffusers():
    probe = (
        "import sys, genlab.cli; "
        "sys.exit(any(m in sys.modules for m in ('torch', 'diffusers', 'transformers')))"
    )
    assert subprocess.run([sys.executable, "-c", probe]).returncode == 0
