"""The flow-matching family: its loss, guidance, sampling, the latent variant and its CLI."""

from __future__ import annotations

import json

import pytest
import torch

import genlab
from genlab.cli import main
from genlab.data import Batch
from genlab.errors import GenlabError
from genlab.flow import interpolate
from genlab.models.flow_matching import TIME_SCALE, FlowMatching, FlowMatchingConfig

TINY = FlowMatchingConfig(width=8, mults=(1, 2), num_classes=10, steps=3)
TRAIN = ["--batch-size", "16", "--no-progress", "--sample-every", "1000", "--steps", "2",
         "--width", "8", "--mults", "1,2"]  # fmt: skip


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_the_loss_regresses_the_velocity_of_the_straight_path():
    """The loss equals the MSE between the UNet at (x_t, 1000 t) and eps - x0, with x_t, t and
    eps drawn from the global RNG in the order the model draws them."""
    torch.manual_seed(0)
    model = FlowMatching(FlowMatchingConfig(width=8, mults=(1, 2), label_dropout=0.0))
    for p in model.unet.out.parameters():  # a non-zero output, so the check is not 0 == 0
        torch.nn.init.normal_(p, std=0.1)
    x = torch.rand(4, 1, 28, 28)
    state = torch.get_rng_state()
    loss, logs = model.loss(Batch(x, torch.full((4,), -1)))
    torch.set_rng_state(state)
    t = torch.sigmoid(torch.randn(4))  # logit-normal (0, 1)
    eps = torch.randn(4, 1, 28, 28)
    x0 = 2 * x - 1
    v = model.unet(interpolate(x0, eps, t), TIME_SCALE * t, None)
    torch.testing.assert_close(loss, (v - (eps - x0)).square().mean())
    assert logs == {}
    # zero output layer: the first loss is E[(eps - x0)^2] = 1 + E[x0^2]
    fresh = FlowMatching(FlowMatchingConfig(width=8, mults=(1, 2)))
    first, _ = fresh.loss(Batch(x, torch.full((4,), -1)))
    assert abs(first.item() - (1 + x0.square().mean().item())) < 0.3


def test_the_loss_falls_when_fitting_one_batch():
    torch.manual_seed(0)
    model = FlowMatching(TINY)
    batch = Batch(torch.rand(8, 1, 28, 28), torch.arange(8))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        torch.manual_seed(1)  # the same t and eps each step: a fixed regression problem
        loss, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_guidance_weights_one_and_zero_are_the_conditional_and_unconditional_velocities():
    torch.manual_seed(0)
    model = FlowMatching(TINY).eval()
    for p in model.unet.out.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, t, y = torch.randn(4, 1, 28, 28), torch.tensor([0.1, 0.3, 0.6, 0.9]), torch.arange(4)
    with torch.no_grad():
        cond = model.unet(x, TIME_SCALE * t, y)
        uncond = model.unet(x, TIME_SCALE * t, torch.full_like(y, 10))
        torch.testing.assert_close(model.velocity(y, 1.0)(x, t), cond)
        torch.testing.assert_close(model.velocity(y, 0.0)(x, t), uncond)
        torch.testing.assert_close(model.velocity(None)(x, t), uncond)
        w = 2.5
        torch.testing.assert_close(model.velocity(y, w)(x, t), uncond + w * (cond - uncond))


def test_samples_are_seeded_images_and_the_solvers_differ():
    torch.manual_seed(0)
    model = FlowMatching(TINY).eval()
    for p in model.unet.out.parameters():
        torch.nn.init.normal_(p, std=0.1)

    def draw(**options):
        with torch.inference_mode():
            return model.sample(6, generator=torch.Generator().manual_seed(5), **options)

    a, b = draw(), draw()
    assert a.shape == (6, 1, 28, 28) and torch.equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not torch.equal(draw(sampler="heun", steps=2), draw(sampler="euler", steps=2))
    with pytest.raises(GenlabError, match="steps"):
        draw(steps=1001)


def test_config_errors_are_one_line():
    with pytest.raises(GenlabError, match="time_sampling"):
        FlowMatching(FlowMatchingConfig(time_sampling="beta"))
    with pytest.raises(GenlabError, match="sampler"):
        FlowMatching(FlowMatchingConfig(sampler="ddim"))


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def fm_run(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fm") / "run"
    args = ["train", "flow-matching", "--data-dir", str(fmnist_dir), "--max-steps", "3",
            "--conditional", *TRAIN, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def test_sample_takes_the_flow_solvers_and_refuses_diffusions(fm_run, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", str(fm_run), "--sampler", "heun", "--steps", "2", "--n", "4",
                 "--guidance", "2", "--class", "Bag", "--out", str(out)]) == 0  # fmt: skip
    assert out.is_file()
    assert main(["sample", str(fm_run), "--sampler", "ddim", "--out", str(out)]) == 2
    assert "this run takes euler, midpoint, heun" in one_line_error(capsys)
    assert main(["sample", str(fm_run), "--eta", "0.5", "--out", str(out)]) == 2
    assert "diffusion runs" in one_line_error(capsys)


def test_a_diffusion_run_refuses_the_flow_solvers(fmnist_dir, tmp_path, capsys):
    run = tmp_path / "ddpm"
    assert main(["train", "ddpm", "--data-dir", str(fmnist_dir), "--max-steps", "1",
                 *TRAIN[:-2], "--out", str(run)]) == 0  # fmt: skip
    assert main(["sample", str(run), "--sampler", "euler", "--out", str(tmp_path / "x.png")]) == 2
    assert "this run takes ddpm, ddim, dpm" in one_line_error(capsys)


def test_eval_records_the_solver(fm_run, tmp_path):
    record = tmp_path / "e.json"
    assert main(["eval", str(fm_run), "--n", "20", "--sampler", "midpoint", "--steps", "1",
                 "--no-progress", "--json", str(record)]) == 0  # fmt: skip
    data = json.loads(record.read_text())
    assert "midpoint" in json.dumps(data)


def test_latent_flow_matching_on_a_vae_run(fmnist_dir, tmp_path):
    vae = tmp_path / "vae"
    assert main(["train", "vae", "--latent-channels", "2", "--widths", "4,8", "--data-dir",
                 str(fmnist_dir), "--max-steps", "2", "--batch-size", "16", "--no-progress",
                 "--out", str(vae)]) == 0  # fmt: skip
    run = tmp_path / "lfm"
    assert main(["train", "flow-matching", "--vae", str(vae), "--data-dir", str(fmnist_dir),
                 "--max-steps", "2", "--batch-size", "16", "--no-progress", "--steps", "2",
                 "--out", str(run)]) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["vae"] is not None and config["model"]["width"] == 32
    assert config["model"]["mults"] == [1, 2] and config["model"]["attention_levels"] == []
    first_stage, model = genlab.load(vae).state_dict(), genlab.load(run)
    assert set(first_stage) == {k[len("vae.") :] for k in model.frozen_state()}
    for name, value in model.vae.state_dict().items():
        assert torch.equal(value, first_stage[name]), name
    images = genlab.sample(run, 3, seed=0).images
    assert images.shape == (3, 1, 28, 28)


def test_nfe_sweep_scores_flow_and_diffusion_runs_on_one_plot(fm_run, fmnist_dir, tmp_path):
    ddpm = tmp_path / "ddpm"
    assert main(["train", "ddpm", "--data-dir", str(fmnist_dir), "--max-steps", "1",
                 *TRAIN[:-2], "--out", str(ddpm)]) == 0  # fmt: skip
    out, points = tmp_path / "nfe.png", tmp_path / "nfe.json"
    assert main(["nfe-sweep", str(fm_run), str(ddpm), "--n", "20", "--nfe", "1,2", "--out",
                 str(out), "--json", str(points), "--no-progress"]) == 0  # fmt: skip
    got = json.loads(points.read_text())["points"]
    assert [(p["family"], p["sampler"], p["nfe"]) for p in got] == [
        ("flow-matching", "euler", 1), ("flow-matching", "euler", 2),
        ("ddpm", "ddim", 1), ("ddpm", "ddim", 2),
    ]  # fmt: skip
    assert all(p["fd"] > 0 for p in got) and out.stat().st_size > 1000
    # each point is the run's ordinary evaluation record with that sampler and step count
    record = json.loads((fm_run / "eval" / "eval-n20-seed0-sampler_euler-steps_2.json").read_text())
    assert record["metrics"]["fd"] == got[1]["fd"]
    # a two-evaluation solver has no point at NFE 1
    assert main(["nfe-sweep", str(fm_run), "--sampler", "heun", "--n", "20", "--nfe", "1,2",
                 "--out", str(out), "--json", str(points), "--no-progress"]) == 0  # fmt: skip
    assert [p["nfe"] for p in json.loads(points.read_text())["points"]] == [2]


def test_nfe_sweep_refuses_runs_without_sampler_steps(fmnist_dir, tmp_path, capsys):
    vae = tmp_path / "vae"
    assert main(["train", "vae", "--widths", "4,8", "--data-dir", str(fmnist_dir),
                 "--max-steps", "1", "--batch-size", "16", "--no-progress",
                 "--out", str(vae)]) == 0  # fmt: skip
    assert main(["nfe-sweep", str(vae), "--n", "20", "--out", str(tmp_path / "x.png")]) == 2
    assert "no sampler steps" in one_line_error(capsys)
