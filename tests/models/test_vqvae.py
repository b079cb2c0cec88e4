"""VQ-VAE: nearest-code quantisation, the straight-through gradient, the codebook's EMA update
(appendix A.1) and dead-code restarts, perplexity, overfitting, exact save/load/resume of the
codebook; end to end from the CLI: no samples without a prior, scoring reconstructions, the
codebook picture, and the PixelCNN prior over the codes (train, resume, sample, refusals)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from PIL import Image

import genlab
from genlab.cli import main
from genlab.data import Batch
from genlab.io import load_weights, save_weights
from genlab.models.pixelcnn import PixelCNN
from genlab.models.vqvae import VQVAE, Codebook, VQVAEConfig, perplexity

TINY = VQVAEConfig(widths=(4, 8), code_dim=4, codebook_size=8)
BASE = ["--batch-size", "16", "--no-progress", "--sample-every", "1000"]
TINY_ARGS = ["--widths", "4,8", "--code-dim", "4", "--codebook-size", "8"]
PRIOR_ARGS = ["--width", "8", "--layers", "2", "--head-width", "8"]


def make(config: VQVAEConfig = TINY, seed: int = 0) -> VQVAE:
    torch.manual_seed(seed)
    return VQVAE(config)


def refused(argv, capsys) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------ the codebook


def test_quantisation_picks_the_nearest_code():
    torch.manual_seed(0)
    book = Codebook(K=32, D=5, decay=0.99, eps=1e-5, restart_after=10)
    z = torch.randn(1000, 5) * 1.5
    brute = ((z[:, None, :] - book.embedding[None]) ** 2).sum(-1).argmin(1)  # (N,)
    assert torch.equal(book.nearest(z), brute)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # distances stay in float32
        assert torch.equal(book.nearest(z.bfloat16()), book.nearest(z.bfloat16().float()))
    model = make()
    x = torch.rand(3, 1, 28, 28)
    k = model.codes(x)
    assert k.shape == (3, 7, 7) and k.dtype == torch.long
    z_e = model.z_e(x).movedim(1, -1).reshape(-1, 4)
    brute = ((z_e[:, None] - model.codebook.embedding[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(k.reshape(-1), brute)
    torch.testing.assert_close(model.encode(x), model.codebook.embedding[k].movedim(-1, 1))


def test_the_straight_through_gradient_reaches_the_encoder():
    model = make(dataclasses.replace(TINY, beta=0.0)).eval()  # the reconstruction term alone
    x = torch.rand(4, 1, 28, 28)
    z_e = model.z_e(x)
    z_e.retain_grad()
    e = model.lookup(model.nearest(z_e))
    z_q = z_e + (e - z_e).detach()
    z_q.retain_grad()
    recon = torch.nn.functional.binary_cross_entropy_with_logits(model.decoder(z_q), x)
    recon.backward()
    torch.testing.assert_close(z_e.grad, z_q.grad)  # copied unchanged from decoder to encoder
    assert z_e.grad.abs().sum() > 0
    model.zero_grad()
    loss, _ = model.loss(Batch(x, torch.zeros(4, dtype=torch.long)))
    loss.backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0
    assert all(not b.requires_grad for b in model.codebook.buffers())  # learned by EMA only


def test_the_ema_update_is_the_papers():
    K, D, gamma, eps = 3, 2, 0.9, 1e-5
    book = Codebook(K, D, gamma, eps, restart_after=5)
    e0 = book.embedding.clone()
    z = torch.tensor([[1.0, 0.0], [3.0, 2.0], [-1.0, 4.0], [0.5, 0.5], [2.0, -2.0]])
    k = torch.tensor([0, 0, 1, 2, 2])
    counts = book.update(z, k)
    n_i = torch.tensor([2.0, 1.0, 2.0])
    sums = torch.stack([z[0] + z[1], z[2], z[3] + z[4]])
    N = gamma * torch.ones(K) + (1 - gamma) * n_i  # N_i starts at 1
    m = gamma * e0 + (1 - gamma) * sums  # m_i starts at e_i
    n = N.sum()
    e = m / ((N + eps) / (n + K * eps) * n)[:, None]
    torch.testing.assert_close(counts, n_i)
    torch.testing.assert_close(book.cluster_size, N)
    torch.testing.assert_close(book.embed_sum, m)
    torch.testing.assert_close(book.embedding, e)
    assert book.restarts.item() == 0 and book.unused.tolist() == [0, 0, 0]


def test_dead_codes_are_restarted_at_encoder_outputs():
    torch.manual_seed(0)
    book = Codebook(K=4, D=3, decay=0.99, eps=1e-5, restart_after=3)
    z = torch.randn(20, 3)
    k = torch.zeros(20, dtype=torch.long)  # only code 0 is used
    book.update(z, k)  # unused starts at restart_after: the first step restarts 1, 2, 3
    assert book.restarts.item() == 3 and book.unused.tolist() == [0, 0, 0, 0]
    for i in (1, 2, 3):
        assert (book.embedding[i] == z).all(1).any()  # a row of the batch
        torch.testing.assert_close(book.embed_sum[i], book.embedding[i])
        assert book.cluster_size[i] == 1.0
    before = book.embedding[1:].clone()
    book.update(z, k)
    book.update(z, k)  # unused for 2 steps: kept (only the smoothing moves them, by ~eps)
    assert book.restarts.item() == 3
    torch.testing.assert_close(book.embedding[1:], before, rtol=1e-3, atol=1e-4)
    book.update(z, k)  # the third: restarted again
    assert book.restarts.item() == 6 and book.unused.tolist() == [0, 0, 0, 0]


def test_perplexity_is_K_for_a_uniform_assignment_and_1_for_one_code():
    assert math.isclose(perplexity(torch.full((16,), 7)).item(), 16.0, rel_tol=1e-6)
    assert math.isclose(perplexity(torch.tensor([0, 9, 0, 0])).item(), 1.0, rel_tol=1e-6)
    model = make().train()
    _, logs = model.loss(Batch(torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long)))
    assert 1.0 <= logs["perplexity"] <= 8.0 and 0 < logs["used"] <= 1.0
    assert {"recon", "commitment", "perplexity", "used", "restarts"} <= set(logs)


def test_the_loss_falls_when_overfitting_a_batch():
    model = make(dataclasses.replace(TINY, widths=(8, 16))).train()
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(16, 1, 28, 28)  # random rectangles: learnable, the BCE's floor is 0
    for i, (top, left, h, w) in enumerate(torch.randint(3, 14, (16, 4), generator=g).tolist()):
        x[i, :, top : top + h, left : left + w] = 1.0
    batch = Batch(x, torch.zeros(16, dtype=torch.long))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_the_codebook_saves_and_loads_exactly(tmp_path):
    model = make().train()
    for seed in range(3):  # move every buffer: EMA counts, sums, usage, restarts
        x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
        model.loss(Batch(x, torch.zeros(8, dtype=torch.long)))
    assert model.codebook.restarts.item() > 0
    save_weights(tmp_path / "w.safetensors", model.state_dict())
    again = make(seed=1)
    again.load_state_dict(load_weights(tmp_path / "w.safetensors"))
    for name, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.eval().reconstruct(x), again.eval().reconstruct(x))


# ------------------------------------------------------------------------------ end to end


def train(fmnist_dir, out, family="vqvae", *extra, steps=4) -> int:
    args = ["train", family, "--data-dir", str(fmnist_dir), "--max-steps", str(steps), *BASE]
    return main([*args, *extra, "--out", str(out)])


@pytest.fixture(scope="module")
def vq(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("vq") / "run"
    assert train(fmnist_dir, out, "vqvae", *TINY_ARGS, "--sample-every", "2") == 0
    return out


def test_a_run_loads_reconstructs_and_resumes_exactly(vq, fmnist_dir, tmp_path):
    model = genlab.load(vq)
    assert isinstance(model, VQVAE) and not hasattr(model, "sample")
    fresh = VQVAE(model.config)
    fresh.load_state_dict(load_weights(vq / "ema.safetensors"))
    x = torch.rand(5, 1, 28, 28)
    out = model.reconstruct(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, fresh.eval().reconstruct(x))
    assert Image.open(vq / "samples" / "step_0000002.png").size[0] > 8 * 28  # reconstructions
    straight, split = tmp_path / "straight", tmp_path / "split"
    options = {"data_dir": str(fmnist_dir), "batch_size": 16, "max_steps": 6, "widths": (4, 8),
               "code_dim": 4, "codebook_size": 8, "restart_after": 2}  # fmt: skip
    genlab.create("vqvae", straight, **options)
    genlab.create("vqvae", split, **options)
    genlab.train(straight, progress=False)
    assert genlab.train(split, stop_at=3, progress=False).step == 3
    assert genlab.train(split, progress=False).step == 6
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_weights(straight / name), load_weights(split / name)
        assert a.keys() == b.keys() and "codebook.unused" in a
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)


def test_a_vqvae_draws_no_samples_but_is_scored_on_reconstructions(vq, tmp_path, capsys):
    err = refused(["sample", str(vq), "--out", str(tmp_path / "s.png")], capsys)
    assert f"genlab train pixelcnn --prior {vq}" in err
    assert main(["eval", str(vq), "--n", "16", "--no-references", "--no-progress"]) == 0
    assert "reconstructions" in capsys.readouterr().out
    record = json.loads((vq / "eval" / "eval-n16-seed0.json").read_text())
    assert record["source"]["scored"] == "reconstructions" and record["n"] == 16
    assert main(["reconstruct", str(vq), "--n", "8", "--out", str(tmp_path / "r.png")]) == 0
    assert Image.open(tmp_path / "r.png").size[1] > 2 * 28  # originals above reconstructions
    assert main(["codebook", str(vq), "--n", "50", "--out", str(tmp_path / "u.png")]) == 0
    assert "codes used, perplexity" in capsys.readouterr().out
    assert Image.open(tmp_path / "u.png").size[0] > 100


@pytest.fixture(scope="module")
def prior(vq, fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prior") / "run"
    assert train(fmnist_dir, out, "pixelcnn", "--prior", str(vq), *PRIOR_ARGS) == 0
    return out


def test_the_prior_trains_on_codes_and_samples_images(prior, vq, tmp_path):
    model = genlab.load(prior)
    assert isinstance(model, PixelCNN) and model.config.levels == 8 and model.grid == (7, 7)
    first = genlab.load(vq)  # the frozen first stage is the VQ-VAE run's
    for key, value in first.state_dict().items():
        assert torch.equal(model.vqvae.state_dict()[key], value), key
    assert "bits_per_code" in (prior / "metrics.csv").read_text().splitlines()[0]
    assert main(["sample", str(prior), "--n", "3", "--out", str(tmp_path / "s.npz")]) == 0
    samples = genlab.sample(prior, 3, seed=1, model=model)
    assert samples.images.shape == (3, 1, 28, 28)
    assert samples.images.min() >= 0 and samples.images.max() <= 1
    fast = model.sample(2, generator=torch.Generator().manual_seed(2))
    naive = model.sample_naive(2, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(fast, naive)  # the incremental sampler reads the embeddings right
    x = torch.rand(2, 1, 28, 28)
    codes = model.codes(x)
    assert torch.equal(codes[:, 0], first.codes(x))
    assert model.log_prob(codes).shape == (2,)


def test_the_prior_resumes_exactly_and_takes_classes(vq, fmnist_dir, tmp_path):
    options = {"data_dir": str(fmnist_dir), "batch_size": 16, "max_steps": 4, "prior": str(vq),
               "width": 8, "layers": 2, "head_width": 8, "sample_every": 1000}  # fmt: skip
    straight, split = tmp_path / "straight", tmp_path / "split"
    genlab.create("pixelcnn", straight, **options)
    genlab.create("pixelcnn", split, **options)
    genlab.train(straight, progress=False)
    assert genlab.train(split, stop_at=2, progress=False).step == 2
    assert genlab.train(split, progress=False).step == 4
    a, b = load_weights(straight / "model.safetensors"), load_weights(split / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)
    conditional = tmp_path / "conditional"
    assert train(fmnist_dir, conditional, "pixelcnn", "--prior", str(vq), *PRIOR_ARGS,
                 "--conditional", steps=2) == 0  # fmt: skip
    samples = genlab.sample(conditional, 2, class_name="Bag")
    assert samples.images.shape == (2, 1, 28, 28) and samples.labels.tolist() == [8, 8]


def test_priors_refuse_what_they_cannot_do(prior, vq, fmnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pixels = tmp_path / "pixels"
    assert train(fmnist_dir, pixels, "pixelcnn", *PRIOR_ARGS, steps=1) == 0
    args = ["train", "pixelcnn", "--data-dir", str(fmnist_dir), *BASE, "--max-steps", "1"]
    err = refused([*args, "--prior", str(pixels), "--out", "R"], capsys)
    assert "a pixelcnn run; give a run of vqvae" in err
    err = refused([*args, "--prior", str(vq), "--pixels-per-step", "4", "--out", "R"], capsys)
    assert "one code at a time" in err
    assert "not of the pixels" in refused(["nll", str(prior)], capsys)
    assert "writes codes, not pixels" in refused(["complete", str(prior)], capsys)
    assert "writes codes, not pixels" in refused(["pixel-order", str(prior)], capsys)
    assert "codebook" not in refused(["codebook", str(prior)], capsys).split(":")[0]
    assert not (tmp_path / "R").exists()
