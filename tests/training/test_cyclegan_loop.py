"""The CycleGAN loop: domains as DataSpecs, a complete run, the cycle loss falling on two tiny
shape folders, exact resume with image pools, the NaN guard, Ctrl-C, and the CLI
(train, translate, sample, plot, bad input)."""

from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import pytest
import torch
from helpers import metric_rows
from PIL import Image

import genlab
from genlab.cli import main
from genlab.data import DataSpec, load_data
from genlab.data.domains import Domains, domain_label, load_domains
from genlab.errors import GenlabError
from genlab.images import read_png_metadata
from genlab.models.cyclegan import CYCLEGAN_TRAIN, CycleGAN, CycleGANConfig
from genlab.runs import Run, config_from_dict, load_weights
from genlab.training import TrainConfig, create_run, train
from genlab.training.checkpoint import load_checkpoint
from genlab.training.cyclegan import linear_decay

TINY = CycleGANConfig(widths=(4, 8), n_res_blocks=1, d_widths=(4, 8), pool_size=4)
TINY_TRAIN = TrainConfig(
    **{**CYCLEGAN_TRAIN, "batch_size": 4},
    max_steps=7, log_every=2, sample_every=1000, checkpoint_every=3, seed=3,
)  # fmt: skip
TINY_CLI = ["--max-steps", "3", "--batch-size", "4", "--no-progress", "--sample-every", "2"]
SNEAKER, BOOT = 7, 9  # Fashion-MNIST class ids


def write_shapes(folder, shape: str, n: int, seed: int):
    """n 28x28 PNGs of one shape class: filled squares or rings, random sizes and places."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    y, x = np.mgrid[:28, :28]
    for i in range(n):
        r, cy, cx = rng.integers(5, 9), rng.integers(9, 19), rng.integers(9, 19)
        if shape == "square":
            img = (np.abs(y - cy) <= r) & (np.abs(x - cx) <= r)
        else:
            img = np.abs(np.hypot(y - cy, x - cx) - r) < 1.5
        Image.fromarray((img * 230 + 10).astype(np.uint8)).save(folder / f"{shape}_{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return write_shapes(root / "squares", "square", 24, 0), write_shapes(
        root / "rings", "ring", 24, 1
    )


@pytest.fixture(scope="module")
def specs(shapes):
    return tuple(DataSpec("folder", str(f), size=28) for f in shapes)


def fm_specs(fmnist_dir):
    return (
        DataSpec("fashion-mnist", str(fmnist_dir), classes=("Sneaker",)),
        DataSpec("fashion-mnist", str(fmnist_dir), classes=("ankle-boot",)),
    )


def create_cyclegan_run(path, spec_a, spec_b, model: CycleGANConfig, config: TrainConfig):
    """A CycleGAN run of exactly these configs (`genlab.create` makes them from options)."""
    c, h, _ = load_domains(spec_a, spec_b).a.shape
    model = dataclasses.replace(model, channels=c, image_size=h)
    extra = {
        "data_b": dataclasses.asdict(spec_b),
        "domains": [domain_label(spec_a), domain_label(spec_b)],
    }
    return create_run(path, "cyclegan", model, config, spec_a, extra=extra)


# -- domains ------------------------------------------------------------------------------------


def test_a_domain_is_a_data_spec_with_classes(fmnist_dir):
    a, b = fm_specs(fmnist_dir)
    sneakers, boots = load_data(a, "train"), load_data(b, "test")
    assert len(sneakers) == 60 and set(sneakers.labels.tolist()) == {SNEAKER}
    assert len(boots) == 20 and set(boots.labels.tolist()) == {BOOT}  # both splits filter
    limited = load_data(dataclasses.replace(a, limit=5), "train")  # limit applies after classes
    assert len(limited) == 5 and set(limited.labels.tolist()) == {SNEAKER}
    # Run configs written before the field existed still load; JSON lists become tuples.
    old = config_from_dict(DataSpec, {"name": "fashion-mnist", "path": None, "limit": 3})
    assert old.classes is None
    assert config_from_dict(DataSpec, {"classes": ["Sneaker"]}).classes == ("Sneaker",)
    with pytest.raises(GenlabError, match="unknown class 'Sandals'.*'Sandal'"):
        load_data(dataclasses.replace(a, classes=("Sandals",)), "train")


def test_bad_domains_are_refused(fmnist_dir, shapes, specs, tmp_path):
    a, _ = fm_specs(fmnist_dir)
    with pytest.raises(GenlabError, match="same images"):
        load_domains(a, dataclasses.replace(a, classes=("sneaker",)))
    with pytest.raises(GenlabError, match=r"\(1, 28, 28\).*\(3, 28, 28\)"):
        load_domains(specs[0], dataclasses.replace(specs[1], channels=3))
    with pytest.raises(GenlabError, match="no images found"):
        (tmp_path / "empty").mkdir()
        load_domains(specs[0], DataSpec("folder", str(tmp_path / "empty"), size=28))
    with pytest.raises(GenlabError, match="data has no classes"):
        load_domains(specs[0], dataclasses.replace(specs[1], classes=("x",)))


def test_linear_decay_is_the_papers_schedule():
    assert [linear_decay(p, 0.5) for p in (0.0, 0.5, 0.75, 1.0)] == [1.0, 1.0, 0.5, 0.0]
    assert linear_decay(0.9, 1.0) == 1.0  # start 1: constant


# -- the loop -----------------------------------------------------------------------------------


def test_a_run_trains_and_writes_a_complete_run_directory(tmp_path, specs):
    config = dataclasses.replace(TINY_TRAIN, max_steps=4, sample_every=2)
    run = create_cyclegan_run(tmp_path / "run", *specs, TINY, config)
    cfg = Run.open(run).config
    assert cfg["family"] == "cyclegan" and cfg["domains"] == ["squares", "rings"]
    assert cfg["data_b"]["path"] == specs[1].path
    result = train(run, progress=False)  # the engine runs the family's step
    assert (result.step, result.stopped_by) == (4, "max_steps")
    assert {"config.json", "model.safetensors", "state", "metrics.csv"} <= {
        p.name for p in run.iterdir()
    }
    grids = sorted((run / "samples").iterdir())
    assert [p.name for p in grids] == ["step_0000002.png", "step_0000004.png"]
    with Image.open(grids[-1]) as im:  # 8 images of each domain: 6 rows of 8 tiles of 28 px
        assert im.size == (8 * 30 + 2, 6 * 30 + 2)
    assert read_png_metadata(grids[-1])["rows"].startswith("a, G_ab(a)")
    rows = metric_rows(run)
    assert [r["step"] for r in rows] == ["2", "4"]
    wanted = "epoch lr loss_g gan_ab gan_ba cycle identity grad_norm_g loss_d d_a d_b grad_norm_d"
    assert list(rows[0]) == ["step", *wanted.split()]
    assert set(load_checkpoint(run).optimizers) == {"d", "g"}
    model = genlab.load(run)
    assert isinstance(model, CycleGAN)
    y = model.translate(torch.rand(2, 1, 28, 28), "ba")
    assert y.shape == (2, 1, 28, 28) and y.min() >= 0 and y.max() <= 1


def test_the_cycle_loss_falls_on_two_tiny_shape_folders(tmp_path, specs):
    config = dataclasses.replace(TINY_TRAIN, max_steps=40, log_every=5, checkpoint_every=1000)
    model = dataclasses.replace(TINY, widths=(8, 16), lr=2e-3)
    run = create_cyclegan_run(tmp_path / "run", *specs, model, config)
    train(run, progress=False)
    cycle = [float(r["cycle"]) for r in metric_rows(run)]
    assert len(cycle) == 8
    assert cycle[-1] < 0.5 * cycle[0], cycle  # seeds 0-3: 0.20-0.35 of the first row


@pytest.mark.kernels
@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_equals_uninterrupted_run(tmp_path, fmnist_dir, ema_decay):
    a, b = fm_specs(fmnist_dir)
    data = Domains(load_data(a, "train"), load_data(b, "train"))
    config = dataclasses.replace(TINY_TRAIN, ema_decay=ema_decay)
    straight = create_cyclegan_run(tmp_path / "straight", a, b, TINY, config)
    assert train(straight, data=data, progress=False).step == 7

    split = create_cyclegan_run(tmp_path / "split", a, b, TINY, config)
    first = train(split, data=data, progress=False, stop_at=4)
    assert (first.step, first.stopped_by) == (4, "stop_at")
    assert train(split, data=data, progress=False).step == 7

    names = ["model.safetensors", "state/optimizer.safetensors"]
    assert (split / "ema.safetensors").is_file() == (ema_decay is not None)
    for name in names + (["ema.safetensors"] if ema_decay else []):
        x, y = load_weights(straight / name), load_weights(split / name)
        assert x.keys() == y.keys()
        for key in x:
            torch.testing.assert_close(x[key], y[key], rtol=0, atol=0, msg=key)
    state = load_checkpoint(split)
    assert {"pool_a.images", "pool_a.count", "pool_b.images", "pool_b.count"} == set(state.extra)
    assert int(state.extra["pool_a.count"]) == TINY.pool_size  # full: swaps happened
    assert "exp_avg" in state.optimizers["g"]["state"][0]
    assert metric_rows(straight) == metric_rows(split)
    assert [r["step"] for r in metric_rows(split)] == ["2", "4", "6", "7"]
    # Not vacuous: all four networks moved away from their initial weights.
    torch.manual_seed(TINY_TRAIN.seed)
    init = CycleGAN(dataclasses.replace(TINY, channels=1, image_size=28)).state_dict()
    trained = load_weights(split / "model.safetensors")
    for net in ("G_ab.", "G_ba.", "D_a.", "D_b."):
        assert any(not torch.equal(init[k], trained[k]) for k in init if k.startswith(net)), net


def test_the_rate_decays_linearly_over_the_second_half(tmp_path, specs):
    config = dataclasses.replace(TINY_TRAIN, max_steps=8, log_every=1)
    run = create_cyclegan_run(tmp_path / "run", *specs, TINY, config)
    train(run, progress=False)
    lrs = [float(r["lr"]) for r in metric_rows(run)]
    expected = [2e-4 * linear_decay(s / 8, 0.5) for s in range(8)]
    assert lrs == pytest.approx(expected) and lrs[-1] < lrs[0]


def _failing(monkeypatch, method: str, at: int, effect: str) -> None:
    """Make CycleGAN.<method> return a NaN loss, or send Ctrl-C, on its `at`-th call."""
    original = getattr(CycleGAN, method)
    calls = {"n": 0}

    def wrapped(self, *args, **kwargs):
        calls["n"] += 1
        result = original(self, *args, **kwargs)
        if calls["n"] == at and effect == "nan":
            loss = result[0] * float("nan")
            result = result._replace(loss=loss) if method == "g_loss" else (loss, result[1])
        if calls["n"] == at and effect == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(CycleGAN, method, wrapped)


@pytest.mark.parametrize("method, what", [("g_loss", "generator"), ("d_loss", "discriminator")])
def test_nan_loss_stops_before_the_update_and_keeps_the_last_good_checkpoint(
    tmp_path, specs, monkeypatch, method, what
):
    config = dataclasses.replace(TINY_TRAIN, max_steps=20, checkpoint_every=2)
    run = create_cyclegan_run(tmp_path / "run", *specs, TINY, config)
    _failing(monkeypatch, method, 5, "nan")
    with pytest.raises(GenlabError, match=rf"the {what} loss became nan at step 5.*step 4"):
        train(run, progress=False)
    assert load_checkpoint(run).trainer["step"] == 4
    load_weights(run / "model.safetensors")  # finite (load_weights refuses NaN)


def test_ctrl_c_stops_at_a_step_boundary_with_a_checkpoint(tmp_path, specs, monkeypatch):
    config = dataclasses.replace(TINY_TRAIN, max_steps=50)
    run = create_cyclegan_run(tmp_path / "run", *specs, TINY, config)
    _failing(monkeypatch, "d_loss", 3, "sigint")
    result = train(run, progress=False)
    assert (result.stopped_by, result.step) == ("interrupt", 3)
    assert load_checkpoint(run).trainer["step"] == 3


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fm_run(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cyclegan"
    args = ["train", "cyclegan", "--data-dir", str(fmnist_dir), "--class-a", "Sneaker"]
    assert main([*args, "--class-b", "Ankle boot", "--out", str(out), *TINY_CLI]) == 0
    return out


def test_cli_trains_on_two_fashion_mnist_classes(fm_run, capsys):
    config = Run.open(fm_run).config
    assert config["domains"] == ["Sneaker", "Ankle boot"]
    assert config["model"]["lr"] == 2e-4 and config["train"]["batch_size"] == 4
    assert config["train"]["ema_decay"] is None  # the paper's setting unless --ema is given
    assert sorted(p.name for p in (fm_run / "samples").iterdir()) == [
        "step_0000002.png",
        "step_0000003.png",
    ]
    assert main(["train", "--resume", str(fm_run), "--max-steps", "4", "--no-progress"]) == 0
    assert "step 4 (max_steps)" in capsys.readouterr().out


def test_cli_translate_writes_every_image_and_a_grid(fm_run, shapes, tmp_path, capsys):
    out = tmp_path / "boots"
    args = ["translate", str(fm_run), "--images", str(shapes[0]), "--out", str(out)]
    assert main([*args, "--direction", "ab"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in shapes[0].iterdir()) and len(written) == 24
    meta = read_png_metadata(out / written[0])
    assert meta["direction"] == "Sneaker -> Ankle boot" and meta["source"] == written[0]
    assert f"translated 24 images (Sneaker -> Ankle boot) into {out}" in capsys.readouterr().out
    with Image.open(tmp_path / "boots_grid.png") as im:  # 24 images: 3 rows of 8, each doubled
        assert im.size == (8 * 30 + 2, 6 * 30 + 2)
    grid = tmp_path / "g.png"
    assert main([*args, "--direction", "ba", "--grid", str(grid)]) == 0
    assert grid.is_file()


def test_cli_trains_on_two_folders_and_plots(shapes, tmp_path):
    out = tmp_path / "run"
    folders = ["--data-a", str(shapes[0]), "--data-b", str(shapes[1]), "--size", "28"]
    assert main(["train", "cyclegan", *folders, "--out", str(out), *TINY_CLI]) == 0
    assert Run.open(out).config["domains"] == ["squares", "rings"]
    assert main(["plot", str(out), "--out", str(tmp_path / "loss.png")]) == 0
    assert (tmp_path / "loss.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--class-a", "Sneaker", "--class-b", "Sneakers"], "unknown class 'Sneakers'"),
        (["--class-a", "Sneaker", "--class-b", "sneaker"], "same images"),
        (["--class-a", "Sneaker"], "needs two domains"),
        (["--data-a", "EMPTY", "--data-b", "EMPTY"], "no images found"),
        (["--class-a", "Sneaker", "--class-b", "Bag", "--latent-dim", "4"], "--latent-dim is not"),
        (["--class-a", "Sneaker", "--class-b", "Bag", "--loss", "hinge"], "one of lsgan, ns"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(fmnist_dir, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    out = ["--out", str(tmp_path / "run"), "--data-dir", str(fmnist_dir), *TINY_CLI]
    assert main(["train", "cyclegan", *args, *out]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_cyclegan_options_belong_to_cyclegan(fmnist_dir, tmp_path, capsys):
    out = ["--out", str(tmp_path / "run"), "--data-dir", str(fmnist_dir), *TINY_CLI]
    assert main(["train", "vae", "--class-a", "Sneaker", *out]) == 2
    assert "it is one of cyclegan" in capsys.readouterr().err


def test_cli_sample_points_to_translate_and_translate_refuses_bad_input(fm_run, tmp_path, capsys):
    assert main(["sample", str(fm_run), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert f"genlab translate {fm_run}" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    for extra, message in (
        (["--images", str(tmp_path / "empty")], "no readable images"),
        (["--images", str(tmp_path), "--direction", "ac"], "--direction ac"),
    ):
        args = ["translate", str(fm_run), "--out", str(tmp_path / "o"), *extra]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
