"""The PixelCNN family end to end: training from the CLI, exact resume and Ctrl-C, `genlab nll`
(exact) against the model's own log-probabilities, `sample --temperature`, `complete`,
`pixel-order`, `ar-blur`, and the one-line refusals of the issue's bad inputs. Also the
diffusion bound that sits next to it in the likelihood table."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.data import binarized
from genlab.io import load_weights
from genlab.models.pixelcnn import PixelCNN
from genlab.runs import load_model
from genlab.sampling import test_data as run_test_data

BASE = ["--max-steps", "3", "--batch-size", "16", "--no-progress", "--sample-every", "1000"]
TINY = ["--width", "4", "--layers", "2", "--head-width", "8"]


def train(fmnist_dir, out, *extra) -> int:
    return main(["train", "pixelcnn", "--data-dir", str(fmnist_dir), *BASE, *TINY, *extra,
                 "--out", str(out)])  # fmt: skip


@pytest.fixture(scope="module")
def run(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pc") / "run"
    assert train(fmnist_dir, out, "--conditional") == 0
    return out


def refused(argv, capsys) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_nll_is_exact_and_agrees_with_the_model(run, capsys):
    assert main(["nll", str(run), "--n", "20"]) == 0
    out = capsys.readouterr().out
    assert "exact NLL" in out and "(exact)" in out and "bits/dim" in out
    nats = float(out.split("exact NLL: ")[1].split()[0])
    model = load_model(run)
    data = run_test_data(run)
    with torch.inference_mode():
        levels = data.images[:20].long()
        direct = -model.log_prob(levels, data.labels[:20]).mean().item()
    assert math.isclose(nats, direct, abs_tol=0.01)
    bpd = float(out.split("nats/image, ")[1].split()[0])
    assert math.isclose(bpd, nats / (784 * math.log(2)), rel_tol=1e-3)


def test_binarized_runs_score_the_fixed_binarization(fmnist_dir, tmp_path, capsys):
    out = tmp_path / "bin"
    assert train(fmnist_dir, out, "--binarize") == 0
    assert main(["nll", str(out), "--n", "10"]) == 0
    nats = float(capsys.readouterr().out.split("exact NLL: ")[1].split()[0])
    model = load_model(out)
    images = binarized(run_test_data(out).images[:10])
    with torch.inference_mode():
        direct = -model.log_prob((images // 255).long()).mean().item()
    assert math.isclose(nats, direct, abs_tol=0.01)
    assert nats < 784 * math.log(2) * 1.5  # about a bit per pixel at most, not eight
    vae = tmp_path / "vae"
    args = ["train", "vae", "--data-dir", str(fmnist_dir), *BASE, "--latent-dim", "4"]
    assert main([*args, "--widths", "4,8", "--binarize", "--out", str(vae)]) == 0
    assert main(["nll", str(vae), "--n", "10", "--k", "4"]) == 0
    text = capsys.readouterr().out
    assert "-ELBO" in text and "IWAE NLL (k=4)" in text and "upper bound" in text


def test_sample_complete_order_and_blur(run, fmnist_dir, tmp_path, capsys):
    grid = tmp_path / "s.png"
    assert main(["sample", str(run), "--n", "4", "--temperature", "0.8", "--out", str(grid)]) == 0
    assert Image.open(grid).size[0] > 28
    picture = tmp_path / "c.png"
    assert main(["complete", str(run), "--n", "2", "--samples", "2", "--out", str(picture)]) == 0
    assert Image.open(picture).size[0] > 4 * 28
    gif = tmp_path / "o.gif"
    assert main(["pixel-order", str(run), "--n", "2", "--frames", "4", "--out", str(gif)]) == 0
    assert Image.open(gif).n_frames >= 4
    other = tmp_path / "k4"
    assert train(fmnist_dir, other, "--pixels-per-step", "4") == 0
    blur = tmp_path / "blur.png"
    assert main(["ar-blur", str(other), str(run), "--n", "3", "--out", str(blur)]) == 0
    out = capsys.readouterr().out
    assert "| 1 |" in out and "| 4 |" in out and Image.open(blur).size[1] > 4 * 28


def test_bad_input_is_one_line(run, fmnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = refused(["train", "pixelcnn", "--pixels-per-step", "5", "--out", "R"], capsys)
    assert "--pixels-per-step 5 does not divide" in err
    assert refused(["sample", str(run), "--temperature", "0"], capsys)
    assert refused(["sample", str(run), "--temperature", "-1"], capsys)
    rgb = tmp_path / "rgb"
    for i in range(40):
        (rgb / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 5, 0, 0)).save(rgb / f"c{i % 2}" / f"{i}.png")
    err = refused(["train", "pixelcnn", "--data", str(rgb), "--channels", "3", "--size", "8",
                   "--binarize", "--out", "R"], capsys)  # fmt: skip
    assert "--binarize needs grayscale" in err
    vae = tmp_path / "vae"
    args = ["train", "vae", "--data-dir", str(fmnist_dir), *BASE, "--latent-dim", "4"]
    assert main([*args, "--widths", "4,8", "--out", str(vae)]) == 0
    assert "not a PixelCNN run" in refused(["complete", str(vae)], capsys)
    assert "not a PixelCNN run" in refused(["pixel-order", str(vae)], capsys)
    assert "pixelcnn and glow runs" in refused(["sample", str(vae), "--temperature", "0.5"], capsys)
    assert not os.path.exists(tmp_path / "R")


@pytest.mark.kernels
def test_resume_and_ctrl_c_are_exact(fmnist_dir, tmp_path, monkeypatch):
    import genlab

    options = {"data_dir": str(fmnist_dir), "batch_size": 16, "max_steps": 6, "binarize": True,
               "width": 4, "layers": 2, "head_width": 8, "sample_every": 1000}  # fmt: skip
    straight, split = tmp_path / "straight", tmp_path / "split"
    genlab.create("pixelcnn", straight, **options)
    genlab.create("pixelcnn", split, **options)
    genlab.train(straight, progress=False)
    calls = {"n": 0}
    loss = PixelCNN.loss

    def interrupting(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return loss(self, batch)

    monkeypatch.setattr(PixelCNN, "loss", interrupting)
    first = genlab.train(split, progress=False)
    assert (first.stopped_by, first.step) == ("interrupt", 4)
    monkeypatch.setattr(PixelCNN, "loss", loss)
    assert genlab.train(split, progress=False).step == 6
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_weights(straight / name), load_weights(split / name)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)


def test_the_diffusion_bound_is_tight_for_a_perfect_denoiser_of_one_image():
    """For data that is one image x0, the ideal noise predictor eps = (x_t - sqrt(a) x0) /
    sqrt(1 - a) makes every KL term 0, and the decoder's mean x0 exact: what is left is the
    mass of N(x0, beta_1) inside x0's bin (Ho et al.'s decoder variance). A model that
    predicts no noise pays for it."""
    from genlab.diffusion import discretized_gaussian_log_prob, make_schedule, prior_kl, vlb_terms

    s = make_schedule("cosine", 100)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(1, 255, (1, 1, 4, 4), generator=g).double() / 255) * 2 - 1
    x0 = x0.expand(6, -1, -1, -1)

    def ideal(x_t, t):
        a = s.alpha_bar_at(t).view(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    t = torch.tensor([0, 1, 2, 50, 98, 99])
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    terms = vlb_terms(s, ideal, x0, t, eps)
    assert terms[1:].abs().max() < 1e-9
    sigma = math.sqrt(s.betas[0].item())
    inside = math.erf(1 / 255 / sigma / math.sqrt(2))  # P(|N(0, sigma^2)| < half a bin)
    assert math.isclose(terms[0].item(), -16 * math.log(inside), rel_tol=1e-6)
    assert prior_kl(s, x0).max() < 0.01
    lazy = vlb_terms(s, lambda x_t, t: torch.zeros_like(x_t), x0, t, eps)
    assert (lazy[1:] > 0.1).all() and lazy[0] > terms[0]
    # the discretized Gaussian: the 256 bins sum to one, also for a mean off the grid
    centres = torch.arange(256).double() / 255 * 2 - 1
    for mean, std in ((0.3, 0.01), (-1.2, 0.5), (0.999, 1e-4)):
        p = discretized_gaussian_log_prob(centres, torch.full((256,), mean), std).exp().sum()
        assert math.isclose(p.item(), 1.0, rel_tol=1e-9)


def test_ddpm_nll_reports_a_bound(fmnist_dir, tmp_path, capsys):
    out = tmp_path / "ddpm"
    args = ["train", "ddpm", "--data-dir", str(fmnist_dir), *BASE, "--width", "8", "--steps", "2"]
    assert main([*args, "--out", str(out)]) == 0
    assert main(["nll", str(out), "--n", "4", "--draws", "2"]) == 0
    text = capsys.readouterr().out
    assert "variational bound" in text and "upper bound" in text
    bpd = float(text.split("nats/image, ")[1].split()[0])
    assert 0 < bpd < 100
