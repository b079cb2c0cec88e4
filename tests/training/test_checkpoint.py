"""Checkpoints: pickle-free, atomic, recoverable after a crash at any point of the swap."""

import json
import os

import pytest
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.training import checkpoint as ckpt_mod
from genlab.training.checkpoint import checkpoint_dir, load_checkpoint, save_checkpoint


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    return model, opt


def test_round_trip_restores_optimizer_and_rng(tmp_path):
    model, opt = setup()
    save_checkpoint(tmp_path, model, None, opt, {"step": 3, "elapsed_s": 1.5})
    expected_next = torch.rand(3)
    ck = load_checkpoint(tmp_path)
    assert ck.trainer["step"] == 3 and ck.ema is None

    model2, _ = setup()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)
    model2.load_state_dict(ck.model)
    opt2.load_state_dict(ck.optimizer)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    ckpt_mod.restore_rng(ck.rng)
    torch.testing.assert_close(torch.rand(3), expected_next)
    # One more identical step on both gives identical parameters.
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_files_are_safetensors_and_json_never_pickle(tmp_path):
    model, opt = setup()
    save_checkpoint(tmp_path, model, model, opt, {"step": 1, "elapsed_s": 0.0})
    state = tmp_path / "state"
    assert sorted(p.name for p in state.iterdir()) == [
        "ema.safetensors",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer.json",
    ]
    json.loads((state / "trainer.json").read_text())
    for name in ("model.safetensors", "ema.safetensors"):
        # The top-level inference weights are the same files as the checkpoint's.
        assert (tmp_path / name).read_bytes() == (state / name).read_bytes()


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = setup()
    save_checkpoint(tmp_path, model, None, opt, {"step": 1, "elapsed_s": 0.0})
    before = (tmp_path / "model.safetensors").read_bytes()
    real = ckpt_mod.save_weights

    def crash_on_optimizer(path, *args, **kwargs):
        if "optimizer" in str(path):
            raise OSError("disk full")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod, "save_weights", crash_on_optimizer)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with pytest.raises(GenlabError, match="step 2 could not be written.*step 1 is kept"):
        save_checkpoint(tmp_path, model, None, opt, {"step": 2, "elapsed_s": 0.0})
    assert load_checkpoint(tmp_path).trainer["step"] == 1
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert not (tmp_path / "state.tmp").exists()


def test_crash_between_the_two_renames_is_recovered(tmp_path):
    model, opt = setup()
    save_checkpoint(tmp_path, model, None, opt, {"step": 5, "elapsed_s": 0.0})
    os.replace(tmp_path / "state", tmp_path / "state.old")  # as if killed mid-swap
    assert checkpoint_dir(tmp_path) == tmp_path / "state.old"
    assert load_checkpoint(tmp_path).trainer["step"] == 5


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(GenlabError, match="no training state"):
        load_checkpoint(tmp_path)
