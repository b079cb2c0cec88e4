"""The training engine: exact resume, budgets, non-finite losses, Ctrl-C, precision, EMA."""

import dataclasses
import os
import signal
from dataclasses import dataclass

import pytest
import torch
from helpers import metric_rows
from torch import nn

import genlab
from genlab.data import DataSpec, ImageData
from genlab.errors import GenlabError
from genlab.models.vae import VAEConfig
from genlab.runs import load_weights
from genlab.training import TrainConfig, create_run, train
from genlab.training.checkpoint import load_checkpoint
from genlab.training.config import epoch_order, lr_at
from genlab.training.engine import resolve_precision

TINY_VAE = VAEConfig(latent_dim=4, widths=(8, 16))
TINY_TRAIN = TrainConfig(
    batch_size=32,
    lr=3e-3,
    warmup_steps=3,
    max_steps=12,
    log_every=2,
    sample_every=1000,
    checkpoint_every=5,
    ema_decay=0.9,
    seed=3,
)


def random_data(n: int = 160, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    return ImageData(images, labels, tuple(f"c{i}" for i in range(10)))


def make_run(path, family="vae", model=TINY_VAE, config=TINY_TRAIN):
    return create_run(path, family, model, config, DataSpec("fashion-mnist", "unused"))


@pytest.mark.kernels
def test_resume_equals_uninterrupted_run(tmp_path):
    data = random_data()
    straight = make_run(tmp_path / "straight")
    r = train(straight, data=data, progress=False)
    assert (r.step, r.stopped_by) == (12, "max_steps")

    split = make_run(tmp_path / "split")
    first = train(split, data=data, progress=False, stop_at=7)
    assert (first.step, first.stopped_by) == (7, "stop_at")
    assert load_checkpoint(split).trainer["step"] == 7
    second = train(split, data=data, progress=False)
    assert second.step == 12

    for name in ("model.safetensors", "ema.safetensors", "state/optimizer.safetensors"):
        a, b = load_weights(straight / name), load_weights(split / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)
    # The logged losses match row for row too (the interrupted run rewrote nothing twice).
    assert metric_rows(straight) == metric_rows(split)


def test_resume_differs_with_another_seed(tmp_path):
    # Guard against the resume test passing vacuously: another seed gives other weights.
    data = random_data()
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", config=dataclasses.replace(TINY_TRAIN, seed=4))
    train(a, data=data, progress=False)
    train(b, data=data, progress=False)
    wa, wb = load_weights(a / "model.safetensors"), load_weights(b / "model.safetensors")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_load_reproduces_the_trained_model(tmp_path):
    data = random_data()
    run = make_run(tmp_path / "run")
    train(run, data=data, progress=False)
    model = genlab.load(run, ema=False)
    again = genlab.load(run, ema=False)
    x = data.batch(torch.arange(8)).x
    torch.testing.assert_close(model.encode(x), again.encode(x))
    assert not model.training
    assert (run / "samples").is_dir() and any((run / "samples").iterdir())


def test_loss_falls_on_real_structure(tmp_path):
    # Two fixed images repeated: the VAE must learn them (loss clearly falls).
    img = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    img[0, :, 4:24, 10:18] = 255
    img[1, :, 10:18, 4:24] = 255
    data = ImageData(img.repeat(64, 1, 1, 1), torch.arange(2).repeat(64), ("v", "h"))
    cfg = dataclasses.replace(TINY_TRAIN, max_steps=60, log_every=10, checkpoint_every=1000)
    run = make_run(tmp_path / "run", config=cfg)
    train(run, data=data, progress=False)
    losses = [float(r["loss"]) for r in metric_rows(run)]
    assert losses[-1] < 0.5 * losses[0]


def test_the_step_passes_its_progress_to_the_loss(tmp_path):
    # The VAE's KL warm-up over the whole budget: every logged step's loss is
    # -(recon - (step / max_steps) * kl), so the loss sees the engine's progress.
    model = dataclasses.replace(TINY_VAE, kl_warmup=1.0)
    cfg = dataclasses.replace(
        TINY_TRAIN, max_steps=6, log_every=1, checkpoint_every=1000, precision="fp32"
    )
    run = make_run(tmp_path / "run", model=model, config=cfg)
    train(run, data=random_data(), progress=False)
    rows = metric_rows(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        weight = (int(r["step"]) - 1) / 6  # row "step" counts steps done; the step was step - 1
        expected = -(float(r["recon"]) - weight * float(r["kl"]))
        assert float(r["loss"]) == pytest.approx(expected, rel=1e-4), r


def test_epoch_order_is_a_pure_permutation():
    a, b = epoch_order(100, 0, 3), epoch_order(100, 0, 3)
    assert torch.equal(a, b) and torch.equal(a.sort().values, torch.arange(100))
    assert not torch.equal(a, epoch_order(100, 0, 4))


def test_lr_warmup_then_cosine_decay():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    warm = [lr_at(0.0, cfg, s) for s in range(10)]
    assert warm == sorted(warm) and warm[-1] == pytest.approx(1.0)
    decay = [lr_at(p / 20, cfg, 10 + p) for p in range(21)]
    assert decay == sorted(decay, reverse=True)
    assert decay[0] == pytest.approx(1.0) and decay[-1] == pytest.approx(0.1)
    const = dataclasses.replace(cfg, lr_schedule="constant")
    assert lr_at(0.9, const, 500) == 1.0


# A toy family whose behaviour the tests control.
@dataclass(frozen=True)
class ToyConfig:
    channels: int = 1
    image_size: int = 28
    nan_at: int = -1
    interrupt_at: int = -1


class Toy(nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.lin = nn.Linear(28 * 28, 1)
        self.calls = 0
        self.dtypes: list[torch.dtype] = []

    def loss(self, batch):
        self.calls += 1
        out = self.lin(batch.x.flatten(1))
        self.dtypes.append(out.dtype)
        loss = out.float().pow(2).mean()
        if self.calls == self.config.nan_at:
            loss = loss * float("nan")
        if self.calls == self.config.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return loss, {}

    def sample(self, n, *, generator=None, y=None):
        return torch.rand(n, 1, 28, 28, generator=generator)


@pytest.fixture
def toy_family(monkeypatch):
    from genlab.families import FAMILIES
    from genlab.family import Configured, Family
    from genlab.training.registry import STEPS
    from genlab.training.steps import OneOptimizer

    toy = Family("toy", "a toy", ToyConfig, Toy, configure=lambda o, d: Configured(ToyConfig()))
    monkeypatch.setitem(FAMILIES, "toy", toy)
    monkeypatch.setitem(STEPS, "toy", OneOptimizer)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, toy_family):
    cfg = dataclasses.replace(TINY_TRAIN, checkpoint_every=4, max_steps=20)
    run = make_run(tmp_path / "run", "toy", ToyConfig(nan_at=10), cfg)
    with pytest.raises(GenlabError, match=r"loss became nan at step 10.*step 8"):
        train(run, data=random_data(), progress=False)
    assert load_checkpoint(run).trainer["step"] == 8
    weights = load_weights(run / "model.safetensors")  # finite: load_weights refuses NaN
    assert weights.keys() == {"lin.weight", "lin.bias"}


def test_a_deferred_nan_check_stops_at_the_next_log_and_saves_nothing_after(
    tmp_path, toy_family, monkeypatch
):
    """On a GPU the loss flags stay on the device and are read once per log window or save
    (no host wait a step): the same guarantee, the steps named as a range."""
    from genlab.training import step

    monkeypatch.setattr(step, "defers_checks", lambda device: True)
    cfg = dataclasses.replace(TINY_TRAIN, checkpoint_every=4, log_every=3, max_steps=20)
    run = make_run(tmp_path / "run", "toy", ToyConfig(nan_at=10), cfg)
    with pytest.raises(
        GenlabError, match=r"loss became non-finite between steps 10 and 12.*step 8"
    ):
        train(run, data=random_data(), progress=False)
    assert load_checkpoint(run).trainer["step"] == 8  # the save due at step 12 was refused
    assert load_weights(run / "model.safetensors").keys() == {"lin.weight", "lin.bias"}
    assert [int(r["step"]) for r in metric_rows(run)] == [3, 6, 9]


def test_ctrl_c_stops_at_a_step_boundary_with_a_checkpoint(tmp_path, toy_family):
    run = make_run(
        tmp_path / "run",
        "toy",
        ToyConfig(interrupt_at=6),
        dataclasses.replace(TINY_TRAIN, max_steps=50),
    )
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup or `cmd &`
    result = train(run, data=random_data(), progress=False)
    assert (result.stopped_by, result.step) == ("interrupt", 6)
    assert load_checkpoint(run).trainer["step"] == 6
    assert signal.getsignal(signal.SIGINT) is before  # the loop puts the handler back


def test_bf16_autocast_engages_when_asked(tmp_path, toy_family, monkeypatch):
    captured = {}
    original = Toy.loss

    def spy(self, batch):
        out = original(self, batch)
        captured["dtypes"] = self.dtypes
        return out

    monkeypatch.setattr(Toy, "loss", spy)
    for precision, expected in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        cfg = dataclasses.replace(TINY_TRAIN, max_steps=2, precision=precision)
        run = make_run(tmp_path / precision, "toy", ToyConfig(), cfg)
        train(run, data=random_data(), progress=False, device="cpu")
        assert set(captured["dtypes"]) == {expected}


def test_auto_precision_follows_the_hardware(monkeypatch):
    from genlab.training import engine as loop

    monkeypatch.setattr(loop, "bf16_native", lambda: False)
    assert resolve_precision("auto", "cpu") == "no"
    monkeypatch.setattr(loop, "bf16_native", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    with pytest.raises(GenlabError):
        resolve_precision("fp8", "cpu")


def test_max_minutes_budget_stops(tmp_path, toy_family):
    cfg = dataclasses.replace(TINY_TRAIN, max_steps=None, max_minutes=0.02)
    run = make_run(tmp_path / "run", "toy", ToyConfig(), cfg)
    result = train(run, data=random_data(), progress=False)
    assert result.stopped_by == "max_minutes" and result.step > 0
    assert result.elapsed_s >= 1.2
    # The last, partial logging window is written too.
    assert int(metric_rows(run)[-1]["step"]) == result.step


def test_existing_run_is_not_overwritten(tmp_path):
    make_run(tmp_path / "run")
    with pytest.raises(GenlabError, match="already exists"):
        make_run(tmp_path / "run")


def test_too_little_data_is_a_clear_error(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(GenlabError, match="fewer than one batch"):
        train(run, data=random_data(n=10), progress=False)


def test_ema_handles_integer_buffers():
    from torch.optim.swa_utils import AveragedModel

    from genlab.training.step import ema_with_warmup

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(0.999), use_buffers=True)
    for _ in range(3):
        model(torch.randn(4, 2))
        ema.update_parameters(model)
    assert int(ema.module[1].num_batches_tracked) == 3
