"""The diffusion family: pixel DDPM, latent diffusion, text-to-image; its CLI and pictures."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch
from helpers import train_args
from PIL import Image

import genlab
from genlab.cli import main
from genlab.data import Batch, DataSpec, load_data
from genlab.family import FROZEN
from genlab.models.ddpm import Diffusion, DiffusionConfig
from genlab.runs import load_weights
from genlab.training import train

TINY = DiffusionConfig(width=8, num_classes=10, steps=4)
# 4 DDIM steps for each run's last sample grid, not 50
TRAIN = ["--batch-size", "16", "--no-progress", "--sample-every", "1000", "--steps", "4",
         "--width", "8"]  # fmt: skip


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# ----------------------------------------------------------------------------- the model


def test_loss_is_the_denoising_mse_and_trains_every_unet_parameter():
    torch.manual_seed(0)
    model = Diffusion(TINY)
    batch = Batch(torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    loss, logs = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss) and logs == {}
    # the output layer starts at zero, so the first loss is E[eps^2] = 1 (the eps target)
    assert abs(loss.item() - 1.0) < 0.2
    loss.backward()
    assert all(p.grad is not None for p in model.unet.out.parameters())


def test_guidance_weights_one_and_zero_are_the_conditional_and_unconditional_models():
    torch.manual_seed(0)
    model = Diffusion(TINY).eval()
    for p in model.unet.out.parameters():  # make the output depend on the class
        torch.nn.init.normal_(p, std=0.1)
    x, t, y = torch.randn(4, 1, 28, 28), torch.tensor([10, 200, 500, 900]), torch.arange(4)
    null = torch.full_like(y, 10)
    with torch.no_grad():
        cond, uncond = model.unet(x, t, y), model.unet(x, t, null)
        torch.testing.assert_close(model.model_fn(y, 1.0)(x, t), cond)
        torch.testing.assert_close(model.model_fn(y, 0.0)(x, t), uncond)
        torch.testing.assert_close(model.model_fn(None)(x, t), uncond)
        torch.testing.assert_close(model.model_fn(y, 3.0)(x, t), uncond + 3.0 * (cond - uncond))
    assert not torch.allclose(cond, uncond)


def test_clipping_keeps_the_implied_x0_in_range_and_changes_nothing_inside_it():
    model = Diffusion(TINY)
    s = model.schedule
    x0 = torch.rand(3, 1, 28, 28) * 1.6 - 0.8  # inside [-1, 1]
    eps = torch.randn_like(x0)
    t = torch.tensor([50, 400, 800])
    x_t = s.q_sample(x0, t, eps)
    exact = model.clipped(lambda x, t: eps)  # the true noise implies x0 itself
    torch.testing.assert_close(exact(x_t, t), eps, atol=1e-4, rtol=1e-4)
    wild = model.clipped(lambda x, t: 5.0 * torch.ones_like(x))
    implied, _ = s.to_x0_eps(x_t, t, wild(x_t, t), "eps")
    assert implied.min() >= -1.0 - 1e-4 and implied.max() <= 1.0 + 1e-4
    wide = Diffusion(dataclasses.replace(TINY, x0_bound=3.0)).clipped(lambda x, t: 5.0 * x)
    implied, _ = s.to_x0_eps(x_t, t, wide(x_t, t), "eps")
    assert 1.5 < implied.abs().max() <= 3.0 + 1e-4  # clipped at the latent bound, not at 1


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp_2m"])
def test_samples_are_images_and_seeded(sampler):
    model = Diffusion(dataclasses.replace(TINY, T=20)).eval()
    with torch.inference_mode():
        a = model.sample(3, generator=torch.Generator().manual_seed(1), sampler=sampler)
        b = model.sample(3, generator=torch.Generator().manual_seed(1), sampler=sampler)
    assert a.shape == (3, 1, 28, 28) and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)


def test_config_errors_are_one_line():
    with pytest.raises(genlab.GenlabError, match="prediction"):
        Diffusion(DiffusionConfig(prediction="noise"))
    with pytest.raises(genlab.GenlabError, match="text"):
        Diffusion(DiffusionConfig(text_dim=384))


# ----------------------------------------------------------------------------- training


@pytest.mark.kernels
def test_pixel_ddpm_resumes_exactly(fmnist_dir, tmp_path):
    spec = DataSpec("fashion-mnist", str(fmnist_dir), limit=128)
    data = load_data(spec, "train")
    # 6 steps, 3 log rows; the split run stops at 3, mid-window

    def make(name):
        return genlab.create(
            "ddpm", tmp_path / name, data_dir=fmnist_dir, limit=128, batch_size=16, max_steps=6,
            log_every=2, sample_every=1000, seed=3, conditional=True, width=8, steps=2,
        )  # fmt: skip

    straight, split = make("straight"), make("split")
    train(straight, data=data, progress=False)
    train(split, data=data, progress=False, stop_at=3)
    train(split, data=data, progress=False)
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_weights(straight / name), load_weights(split / name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    rows = [(d / "metrics.csv").read_text().splitlines() for d in (straight, split)]
    cells = [[r.split(",")[:4] for r in run] for run in rows]  # step, epoch, lr, loss
    assert cells[0] == cells[1] and len(cells[0]) == 4  # header + 3 rows


def test_pixel_ddpm_learns_on_the_synthetic_data(fmnist_dir, tmp_path):
    out = tmp_path / "ddpm"
    args = ["train", "ddpm", "--data-dir", str(fmnist_dir), "--out", str(out), *TRAIN]
    assert main([*args, "--max-steps", "60", "--lr", "5e-3"]) == 0
    with open(out / "metrics.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert losses[-1] < 0.7 * losses[0], losses  # from ~1 (the zero output) well down


# ----------------------------------------------------------------------------- latent


@pytest.fixture(scope="module")
def vae_run(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    args = ["train", "vae", "--data-dir", str(fmnist_dir), "--out", str(out)]
    assert main([*args, "--latent-channels", "2", "--max-steps", "5", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def ldm_run(fmnist_dir, vae_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ldm"
    args = ["train", "ldm", "--vae", str(vae_run), "--conditional", "--max-steps", "4"]
    assert main([*args, "--data-dir", str(fmnist_dir), "--out", str(out), *TRAIN]) == 0
    return out


def test_latent_model_keeps_the_vae_frozen_and_self_contained(ldm_run, vae_run, fmnist_dir):
    config = json.loads((ldm_run / "config.json").read_text())
    assert config["family"] == "ldm" and config["model"]["vae"]["latent_channels"] == 2
    scale = config["model"]["latent_scale"]
    assert config["model"]["clip_x0"] and config["model"]["x0_bound"] >= 2  # max |z|, rounded up
    vae = genlab.load(vae_run)
    model = genlab.load(ldm_run)
    assert model.latent_shape == (2, 7, 7)
    for k, v in vae.state_dict().items():  # trained 4 steps, the VAE is untouched
        torch.testing.assert_close(model.vae.state_dict()[k], v, rtol=0, atol=0)
    assert set(load_weights(ldm_run / FROZEN)) == set(model.frozen_state())
    x = load_data(DataSpec("fashion-mnist", str(fmnist_dir)), "train").images[:512] / 255.0
    with torch.no_grad():
        z = model.to_diffusion_space(x)
    assert z.shape == (512, 2, 7, 7)
    assert 0.7 < float(z.std()) < 1.5, (float(z.std()), scale)  # rescaled to about unit scale
    with torch.inference_mode():
        images = model.sample(4, generator=torch.Generator().manual_seed(0), steps=3)
    assert images.shape == (4, 1, 28, 28)


def test_latent_model_errors(fmnist_dir, tmp_path, capsys, vae_run):
    base = ["--data-dir", str(fmnist_dir), "--max-steps", "1", *TRAIN]
    assert main(["train", "ldm", "--out", str(tmp_path / "a"), *base]) == 2
    assert "--vae" in one_line_error(capsys)
    vector_vae = tmp_path / "vvae"
    assert main(train_args("vae", ["train", "vae", "--out", str(vector_vae), *base])) == 0
    capsys.readouterr()
    assert (
        main(["train", "ldm", "--vae", str(vector_vae), "--out", str(tmp_path / "b"), *base]) == 2
    )
    assert "spatial latent" in one_line_error(capsys)
    assert main(["train", "vae", "--vae", str(vae_run), "--out", str(tmp_path / "c"), *base]) == 2
    assert "it is one of ldm, txt2img" in one_line_error(capsys)


# ----------------------------------------------------------------------------- CLI pictures


def test_pictures_and_sampling_options(ldm_run, tmp_path, capsys):
    run = str(ldm_run)
    forward = ["forward", run, "--out", str(tmp_path / "f.png"), "--n", "3", "--columns", "5"]
    assert main(forward) == 0
    with Image.open(tmp_path / "f.png") as im:  # 3 rows, 5 columns of 28 px tiles + borders
        assert im.size == (5 * 30 + 2, 3 * 30 + 2)
        first = im.tobytes()
    torch.manual_seed(123)  # the latent's q(z | x) noise comes from the seed, not the global RNG
    assert main(forward) == 0
    with Image.open(tmp_path / "f.png") as im:
        assert im.tobytes() == first
    args = ["--out", str(tmp_path / "d.gif"), "--strip", str(tmp_path / "d.png")]
    assert main(["denoise", run, *args, "--n", "4", "--steps", "4", "--frames", "3"]) == 0
    with Image.open(tmp_path / "d.gif") as im:
        assert im.n_frames == 3  # x_T and 2 snapshots (the last, x_0, held longer)
    args = ["--out", str(tmp_path / "g.png"), "--scales", "0,1,4", "--columns", "4"]
    assert main(["guidance", run, *args, "--steps", "3"]) == 0
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (4 * 30 + 2, 3 * 30 + 2)
    for sampler in ("ddim", "dpm"):  # ddpm runs all T steps: tested in the library below
        out = tmp_path / f"{sampler}.png"
        cmd = ["sample", run, "--out", str(out), "--n", "2", "--sampler", sampler, "--steps", "3"]
        assert main([*cmd, "--class", "Bag", "--guidance", "2"]) == 0
    capsys.readouterr()
    assert main(["sample", run, "--sampler", "euler", "--out", str(tmp_path / "x.png")]) == 2
    assert "--sampler" in one_line_error(capsys)


def test_sampling_options_are_refused_where_they_do_not_apply(vae_run, tmp_path, capsys):
    assert main(["sample", str(vae_run), "--steps", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "diffusion" in one_line_error(capsys)
    assert main(["forward", str(vae_run), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a diffusion run" in one_line_error(capsys)
    assert main(["txt2img", str(vae_run), "a bag", "--out", str(tmp_path / "x.png")]) == 2
    assert "not a text-to-image run" in one_line_error(capsys)


def test_eval_records_name_the_sampling_options(ldm_run, capsys):
    args = ["eval", str(ldm_run), "--n", "20", "--no-references", "--no-progress"]
    assert main([*args, "--steps", "2", "--guidance", "2"]) == 0
    record = ldm_run / "eval" / "eval-n20-seed0-steps_2-w_2.0.json"
    data = json.loads(record.read_text())
    assert data["source"]["sampling"] == {"steps": "2", "w": "2.0"}
    assert "conditional_accuracy" in json.dumps(data)


# ----------------------------------------------------------------------------- classifier guidance


def test_classifier_guidance_from_the_cli(fmnist_dir, tmp_path, capsys):
    base = ["--data-dir", str(fmnist_dir), "--batch-size", "16", "--no-progress"]
    clf, ddpm = tmp_path / "clf", tmp_path / "ddpm"
    assert main(["train", "noisy-classifier", "--out", str(clf), "--max-steps", "3", *base]) == 0
    assert genlab.load(clf).config.num_classes == 10
    assert (
        main(["train", "ddpm", "--out", str(ddpm), "--max-steps", "2", "--width", "8", *base]) == 0
    )
    out = tmp_path / "guided.png"
    cmd = ["sample", str(ddpm), "--classifier", str(clf), "--classifier-scale", "3"]
    assert main([*cmd, "--n", "4", "--steps", "3", "--out", str(out), "--class", "Bag"]) == 0
    args = ["--out", str(tmp_path / "g.png"), "--scales", "0,2", "--columns", "3", "--steps", "2"]
    assert main(["guidance", str(ddpm), "--classifier", str(clf), *args]) == 0
    ev = ["eval", str(ddpm), "--n", "20", "--no-references", "--no-progress", "--steps", "2"]
    assert main([*ev, "--classifier", str(clf), "--classifier-scale", "2"]) == 0
    (record,) = (ddpm / "eval").glob("eval-n20-seed0-steps_2-classifier_clf-s_2.0.json")
    assert json.loads(record.read_text())["metrics"]["conditional_accuracy"] is not None
    capsys.readouterr()
    assert main(["guidance", str(ddpm), "--out", str(tmp_path / "h.png")]) == 2
    assert "--classifier" in one_line_error(capsys)
    assert main(["sample", str(ddpm), "--classifier", str(ddpm), "--out", str(out)]) == 2
    assert "noisy-classifier" in one_line_error(capsys)


# ----------------------------------------------------------------------------- text to image


def test_txt2img_trains_on_captions_and_draws_any_prompt(fmnist_dir, vae_run, tmp_path, capsys):
    from genlab.text import captions

    out = tmp_path / "t2i"
    args = ["train", "txt2img", "--vae", str(vae_run), "--data-dir", str(fmnist_dir)]
    assert main([*args, "--out", str(out), "--max-steps", "2", *TRAIN]) == 0
    config = json.loads((out / "config.json").read_text())
    names = config["class_names"]
    assert config["captions"][names.index("Bag")][0] in captions(names)[names.index("Bag")]
    model = genlab.load(out)
    K, M = model.config.num_classes, model.config.captions
    assert model.caption_states.shape[:2] == (K * M + 1, model.config.caption_length)
    assert model.caption_mask[-1].sum() == 2  # the empty caption: [CLS] [SEP]
    png = tmp_path / "boots.png"
    assert main(["txt2img", str(out), "boots for the ankle", "--n", "2", "--steps", "2",
                 "--out", str(png)]) == 0  # fmt: skip
    with Image.open(png) as im:
        assert im.text["prompt"] == "boots for the ankle"
    capsys.readouterr()
    assert main(["txt2img", str(out), "  ", "--out", str(png)]) == 2
    assert "empty" in one_line_error(capsys)
    assert main(["train", "txt2img", "--data-dir", str(fmnist_dir), "--out", str(tmp_path / "x"),
                 "--max-steps", "1", *TRAIN]) == 2  # fmt: skip
    assert "--vae" in one_line_error(capsys)


@pytest.mark.kernels
def test_a_shipped_txt2img_run_leaves_out_its_caption_states_and_loads_them_back(
    fmnist_dir, vae_run, tmp_path
):
    from safetensors import safe_open

    from genlab.pretrained import ship

    run = tmp_path / "t2i"
    args = ["train", "txt2img", "--vae", str(vae_run), "--data-dir", str(fmnist_dir)]
    assert main([*args, "--out", str(run), "--max-steps", "2", *TRAIN]) == 0
    record = {"n": 10, "seed": 0, "source": {}, "class_names": [], "metrics": {"fd": 1.0},
              "references": {}}  # fmt: skip
    root = tmp_path / "shipped"
    folder = ship(run, "t2i", summary="tiny", commands=["genlab train txt2img ..."],
                  evaluation=record, check=record, machine="test", root=root)  # fmt: skip
    weights = folder / "ema.safetensors"
    with safe_open(str(weights), "pt") as f:
        keys = set(f.keys())
    assert "caption_states" not in keys and "unet.out.weight" in keys
    assert weights.stat().st_size < (run / "ema.safetensors").stat().st_size
    original, shipped = genlab.load(run), genlab.load(folder)
    assert torch.equal(original.caption_states, shipped.caption_states)
    assert torch.equal(original.caption_mask, shipped.caption_mask)
    a = genlab.sample(run, 2, prompt="a bag", steps=2).images
    assert torch.equal(a, genlab.sample(folder, 2, prompt="a bag", steps=2).images)
    # only those buffers may be missing: any other missing weight is still an error
    from safetensors.torch import save_file

    from genlab.errors import GenlabError
    from genlab.io import load_weights

    state = load_weights(weights)
    save_file({k: v for k, v in state.items() if k != "unet.out.weight"}, str(weights))
    with pytest.raises(GenlabError, match="weights do not match config.json"):
        genlab.load(folder)
    # and the captions must be the run's: other captions leave the buffers missing
    save_file(state, str(weights))
    config = json.loads((folder / "config.json").read_text())
    config["captions"] = config["captions"][:-1]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenlabError, match="caption_states"):
        genlab.load(folder)
