"""The GAN loop: complete runs, exact resume, the NaN guard, Ctrl-C, the collapse monitor, the
named-optimiser checkpoints, the pictures and the GAN commands of the CLI."""

import dataclasses
import os
import shutil
import signal

import pytest
import torch
from helpers import metric_rows
from PIL import Image

import genlab
from genlab.cli import main
from genlab.data import DataSpec, ImageData, load_data
from genlab.errors import GenlabError
from genlab.models.gan import FAMILY, GAN, GAN_TRAIN, GANConfig, gan_config
from genlab.runs import load_weights
from genlab.training import TrainConfig, create_run, train
from genlab.training.checkpoint import load_checkpoint, save_checkpoint
from genlab.training.gan import ModeCollapseWarning

TINY_GAN = GANConfig(latent_dim=8, g_widths=(8, 16), d_widths=(8, 16))
TINY_TRAIN = TrainConfig(
    batch_size=16,
    max_steps=7,
    log_every=2,
    sample_every=1000,
    checkpoint_every=3,
    ema_decay=0.9,
    seed=3,
    **GAN_TRAIN,
)
TINY_CLI = ["--max-steps", "4", "--batch-size", "16", "--no-progress", "--sample-every", "2"]


@pytest.fixture(scope="module")
def fm_train(fmnist_dir):
    return load_data(DataSpec("fashion-mnist", str(fmnist_dir)), "train")


def make_run(path, fmnist_dir, model=TINY_GAN, config=TINY_TRAIN):
    spec = DataSpec("fashion-mnist", str(fmnist_dir))
    return create_run(path, "gan", model, config, spec)


def test_a_run_trains_and_writes_a_complete_run_directory(tmp_path, fmnist_dir, fm_train):
    config = dataclasses.replace(TINY_TRAIN, max_steps=4, sample_every=2)
    run = make_run(tmp_path / "run", fmnist_dir, config=config)
    result = train(run, data=fm_train, progress=False)  # the engine runs the GAN step
    assert (result.step, result.stopped_by) == (4, "max_steps")
    assert {"config.json", "model.safetensors", "ema.safetensors", "state", "metrics.csv"} <= {
        p.name for p in run.iterdir()
    }
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000002.png",
        "step_0000004.png",
    ]
    rows = metric_rows(run)
    assert [r["step"] for r in rows] == ["2", "4"]
    wanted = "loss_d loss_g d_real d_fake d_fake_g grad_norm_d grad_norm_g lr_d lr_g modes_covered"
    assert set(wanted.split()) <= set(rows[0])
    assert all(0 <= int(r["modes_covered"]) <= 10 for r in rows)  # the monitor ran at both rows
    # ema.safetensors is a complete GAN: the EMA generator with the current discriminator.
    model, ema = load_weights(run / "model.safetensors"), load_weights(run / "ema.safetensors")
    assert model.keys() == ema.keys()
    assert any(not torch.equal(model[k], ema[k]) for k in model if k.startswith("generator."))
    assert all(torch.equal(model[k], ema[k]) for k in model if k.startswith("discriminator."))
    assert set(load_checkpoint(run).optimizers) == {"d", "g"}
    x = genlab.load(run).sample(4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 28, 28) and x.min() >= 0 and x.max() <= 1


@pytest.mark.kernels
@pytest.mark.parametrize("loss, n_critic", [("ns", 1), ("wgan-gp", 2)])
def test_resume_equals_uninterrupted_run(tmp_path, fmnist_dir, fm_train, loss, n_critic):
    model = dataclasses.replace(TINY_GAN, loss=loss, n_critic=n_critic)
    straight = make_run(tmp_path / "straight", fmnist_dir, model)
    assert train(straight, data=fm_train, progress=False).step == 7

    split = make_run(tmp_path / "split", fmnist_dir, model)
    first = train(split, data=fm_train, progress=False, stop_at=4)
    assert (first.step, first.stopped_by) == (4, "stop_at")
    assert train(split, data=fm_train, progress=False).step == 7

    for name in ("model.safetensors", "ema.safetensors", "state/optimizer.safetensors"):
        a, b = load_weights(straight / name), load_weights(split / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)
    keys = load_weights(split / "state/optimizer.safetensors").keys()
    assert any(k.startswith("d.state.") for k in keys) and any(
        k.startswith("g.state.") for k in keys
    )
    assert metric_rows(straight) == metric_rows(split)
    assert [r["step"] for r in metric_rows(split)] == ["2", "4", "6", "7"]
    # Not vacuous: both players moved away from their initial weights.
    torch.manual_seed(TINY_TRAIN.seed)
    init = GAN(model).state_dict()
    trained = load_weights(split / "model.safetensors")
    for part in ("generator.", "discriminator."):
        assert any(not torch.equal(init[k], trained[k]) for k in init if k.startswith(part))


def _failing(monkeypatch, method: str, at: int, effect: str) -> None:
    """Make GAN.<method> return a NaN loss, or send Ctrl-C, on its `at`-th call."""
    original = getattr(GAN, method)
    calls = {"n": 0}

    def wrapped(self, *args, **kwargs):
        calls["n"] += 1
        loss, logs = original(self, *args, **kwargs)
        if calls["n"] == at and effect == "nan":
            loss = loss * float("nan")
        if calls["n"] == at and effect == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        return loss, logs

    monkeypatch.setattr(GAN, method, wrapped)


@pytest.mark.parametrize("method, player", [("d_loss", "discriminator"), ("g_loss", "generator")])
def test_nan_loss_stops_before_the_update_and_keeps_the_last_good_checkpoint(
    tmp_path, fmnist_dir, fm_train, monkeypatch, method, player
):
    config = dataclasses.replace(TINY_TRAIN, max_steps=20, checkpoint_every=2)
    run = make_run(tmp_path / "run", fmnist_dir, config=config)
    _failing(monkeypatch, method, 5, "nan")
    with pytest.raises(GenlabError, match=rf"the {player} loss became nan at step 5.*step 4"):
        train(run, data=fm_train, progress=False)
    assert load_checkpoint(run).trainer["step"] == 4
    load_weights(run / "model.safetensors")  # finite (load_weights refuses NaN)


def test_ctrl_c_stops_at_a_step_boundary_with_a_checkpoint(
    tmp_path, fmnist_dir, fm_train, monkeypatch
):
    run = make_run(
        tmp_path / "run", fmnist_dir, config=dataclasses.replace(TINY_TRAIN, max_steps=50)
    )
    _failing(monkeypatch, "g_loss", 3, "sigint")
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup or `cmd &`
    result = train(run, data=fm_train, progress=False)
    assert (result.stopped_by, result.step) == ("interrupt", 3)
    assert load_checkpoint(run).trainer["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # the loop puts the handler back


def test_vanishing_classes_warn_and_are_recorded(tmp_path, fmnist_dir, fm_train, monkeypatch):
    from genlab.evaluation.metrics import ModeCoverage
    from genlab.training import gan as gan_loop

    checks = iter([ModeCoverage(10, 10, [], None), ModeCoverage(8, 10, [5, 8], None)])
    monkeypatch.setattr(gan_loop.CollapseMonitor, "__call__", lambda self, model: next(checks))
    config = dataclasses.replace(TINY_TRAIN, max_steps=4, sample_every=2)
    run = make_run(tmp_path / "run", fmnist_dir, config=config)
    with pytest.warns(ModeCollapseWarning, match=r"step 4: the samples no longer show Sandal, Bag"):
        result = train(run, data=fm_train, progress=False)
    rows = metric_rows(run)
    assert [(r["modes_covered"], r["missing_classes"]) for r in rows] == [
        ("10", ""),
        ("8", "Sandal;Bag"),
    ]
    assert result.last_metrics["modes_covered"] == 8


def test_no_monitor_for_data_the_classifier_does_not_know(tmp_path, fmnist_dir, fm_train):
    other = ImageData(fm_train.images, fm_train.labels, tuple(f"c{i}" for i in range(10)))
    run = make_run(
        tmp_path / "run", fmnist_dir, config=dataclasses.replace(TINY_TRAIN, max_steps=2)
    )
    train(run, data=other, progress=False)
    assert "modes_covered" not in metric_rows(run)[0]


def test_named_optimizers_round_trip(tmp_path):
    nets = [torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)]
    opts = {
        name: torch.optim.Adam(n.parameters(), lr=lr)
        for name, n, lr in zip("dg", nets, (1e-3, 2e-3), strict=True)
    }
    for n, o in zip(nets, opts.values(), strict=True):
        n(torch.randn(4, n.in_features)).sum().backward()
        o.step()
    save_checkpoint(tmp_path, nets[0], None, opts, {"step": 1, "elapsed_s": 0.0})
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.optimizer is None and set(ckpt.optimizers) == {"d", "g"}
    for name, o in opts.items():
        expected = o.state_dict()
        got = ckpt.optimizers[name]
        assert got["param_groups"][0]["lr"] == expected["param_groups"][0]["lr"]
        for i, slots in expected["state"].items():
            for slot, value in slots.items():
                torch.testing.assert_close(
                    torch.as_tensor(got["state"][i][slot]), torch.as_tensor(value)
                )


def test_gan_config_applies_loss_defaults_below_given_values():
    ns = gan_config({})
    assert (ns.loss, ns.n_critic, ns.lr_d, ns.betas) == ("ns", 1, 2e-4, (0.5, 0.999))
    wgan = gan_config({"loss": "wgan-gp", "lr_d": 3e-4, "n_critic": None})
    assert (wgan.n_critic, wgan.lr_d, wgan.lr_g, wgan.betas) == (5, 3e-4, 1e-4, (0.0, 0.9))
    with pytest.raises(GenlabError, match="--loss bogus: must be one of minimax, ns"):
        FAMILY.option("loss").check("bogus")
    with pytest.raises(GenlabError, match="--n-critic 0: must be an integer >= 1"):
        FAMILY.option("n_critic").check(0)


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_gan(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gan"
    assert main(["train", "gan", "--data-dir", str(fmnist_dir), "--out", str(out), *TINY_CLI]) == 0
    return out


@pytest.fixture(scope="module")
def cli_cgan(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cgan"
    args = ["--loss", "hinge", "--spectral-norm", "--n-critic", "2", "--lr-d", "4e-4"]
    assert (
        main(["train", "cgan", "--data-dir", str(fmnist_dir), "--out", str(out), *TINY_CLI, *args])
        == 0
    )
    return out


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_cli_gan_runs_resume_and_keep_their_options(cli_gan, cli_cgan, tmp_path, capsys):
    config = genlab.runs.Run.open(cli_cgan).config
    assert config["family"] == "cgan" and config["model"]["num_classes"] == 10
    assert (config["model"]["loss"], config["model"]["n_critic"], config["model"]["lr_d"]) == (
        "hinge",
        2,
        4e-4,
    )
    assert config["model"]["spectral_norm"] and config["train"]["lr_schedule"] == "constant"
    copy = tmp_path / "copy"
    shutil.copytree(cli_gan, copy)
    capsys.readouterr()
    assert main(["train", "--resume", str(copy), "--max-steps", "6", "--no-progress"]) == 0
    assert "step 6 (max_steps)" in capsys.readouterr().out


def test_cli_sample_class_for_cgan_only(cli_gan, cli_cgan, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", str(cli_cgan), "--class", "sneaker", "--n", "4", "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["sample", str(cli_gan), "--class", "Sneaker", "--out", str(out)]) == 2
    assert "needs a conditional model" in one_line_error(capsys)


def test_cli_plot_and_gradient_picture(cli_gan, cli_cgan, tmp_path, capsys):
    assert main(["plot", str(cli_gan), "--out", str(tmp_path / "curves.png")]) == 0
    assert Image.open(tmp_path / "curves.png").size == (1500, 700)  # the GAN figure
    assert main(["gan-gradients", str(cli_gan), "--out", str(tmp_path / "grad.png")]) == 0
    assert (tmp_path / "grad.png").is_file()
    capsys.readouterr()
    assert main(["gan-gradients", str(cli_cgan), "--out", str(tmp_path / "g2.png")]) == 2
    assert "minimax and ns" in one_line_error(capsys)


@pytest.mark.parametrize(
    "args",
    [["interpolate", "--pairs", "2", "--steps", "3"], ["walk", "--dims", "2", "--steps", "3"]],
)
def test_cli_latent_paths_work_on_decoder_only_models(cli_gan, cli_cgan, tmp_path, args):
    for run in (cli_gan, cli_cgan):
        out = tmp_path / f"{run.name}.png"
        assert main([args[0], str(run), *args[1:], "--out", str(out)]) == 0
        assert out.is_file()


def test_cli_arithmetic_on_gans(cli_gan, cli_cgan, tmp_path, capsys, monkeypatch):
    import genlab.evaluation as evaluation
    from genlab.evaluation.features import Embedding

    class Brightness:  # labels samples T-shirt (0) or Trouser (1) by their mean brightness
        def embed(self, x):
            m = x.float().mean((1, 2, 3))
            logits = torch.full((len(x), 10), -1e9)
            logits[:, 0], logits[:, 1] = m - m.median(), m.median() - m
            return Embedding(torch.zeros(len(x), 1), logits)

    monkeypatch.setattr(evaluation, "load_feature_network", lambda *a, **k: Brightness())
    out = tmp_path / "a.png"
    args = ["--from", "t-shirt/top", "--to", "trouser", "--n", "2", "--out", str(out)]
    assert main(["arithmetic", str(cli_gan), *args]) == 0 and out.is_file()
    capsys.readouterr()
    assert main(["arithmetic", str(cli_cgan), *args]) == 2
    assert "takes the class as an input" in one_line_error(capsys)
    assert main(["reconstruct", str(cli_gan), "--out", str(out)]) == 2
    assert "has no encode" in one_line_error(capsys)


def test_cli_eval_on_a_gan_run(cli_cgan, capsys):
    assert main(["eval", str(cli_cgan), "--n", "20", "--no-references", "--no-progress"]) == 0
    assert "cond. acc" in capsys.readouterr().out


def test_cli_bad_gan_input_is_one_line(fmnist_dir, tmp_path, capsys):
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i in range(20):
        Image.new("L", (28, 28), color=i * 10).save(folder / f"{i}.png")
    base = ["--out", str(tmp_path / "x"), *TINY_CLI]
    assert main(["train", "cgan", "--data", str(folder), "--size", "28", *base]) == 2
    assert "cgan needs labelled data" in one_line_error(capsys)
    assert main(["train", "gan", "--data-dir", str(fmnist_dir), "--loss", "bogus", *base]) == 2
    assert "--loss bogus: must be one of" in one_line_error(capsys)
    assert main(["train", "vae", "--data-dir", str(fmnist_dir), "--loss", "ns", *base]) == 2
    assert "it is one of gan, cgan, cyclegan" in one_line_error(capsys)
    assert not (tmp_path / "x").exists()


def test_cli_toy_gan_writes_a_gif(tmp_path, capsys):
    out = tmp_path / "toy.gif"
    args = ["toy-gan", "--data", "ring", "--loss", "ns", "--steps", "20", "--frames", "2"]
    assert main([*args, "--out", str(out)]) == 0
    assert Image.open(out).n_frames == 3  # steps 0, 10 and 20
    assert "/8 modes" in capsys.readouterr().out


def test_cgan_seeks_modes_by_default_and_gan_does_not():
    from types import SimpleNamespace

    from genlab.models.gan import configure_cgan, configure_gan

    data = SimpleNamespace(shape=(1, 28, 28), class_names=("a", "b"), labels=torch.tensor([0, 1]))
    assert configure_cgan({"mode_seeking": None}, data).config.mode_seeking == 1.0
    assert configure_cgan({"mode_seeking": 0.0}, data).config.mode_seeking == 0.0
    assert configure_gan({}, data).config.mode_seeking == 0.0
