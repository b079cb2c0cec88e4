"""Run directories: config round trip, safe weight loading with clear errors."""

import json
from dataclasses import dataclass

import pytest
import torch

from genlab.errors import GenlabError
from genlab.runs import Run, config_from_dict, load_weights, save_weights


@dataclass(frozen=True)
class Cfg:
    widths: tuple[int, ...] = (1, 2)
    name: str = "x"


def test_config_from_dict_restores_tuples_and_rejects_unknown_keys():
    assert config_from_dict(Cfg, {"widths": [3, 4]}) == Cfg(widths=(3, 4))
    with pytest.raises(GenlabError, match="unknown Cfg keys"):
        config_from_dict(Cfg, {"depth": 3})


def test_weights_round_trip(tmp_path):
    state = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    save_weights(tmp_path / "w.safetensors", state)
    back = load_weights(tmp_path / "w.safetensors")
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_nan_weights_are_refused(tmp_path):
    save_weights(tmp_path / "w.safetensors", {"a": torch.tensor([1.0, float("nan")])})
    with pytest.raises(GenlabError, match=r"w.safetensors: tensor 'a' contains NaN or Inf"):
        load_weights(tmp_path / "w.safetensors")


def test_corrupt_and_missing_weights(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(GenlabError, match="bad.safetensors: not a readable safetensors file"):
        load_weights(tmp_path / "bad.safetensors")
    with pytest.raises(GenlabError, match="missing"):
        load_weights(tmp_path / "none.safetensors")


def test_opening_a_run_gives_one_line_errors(tmp_path):
    with pytest.raises(GenlabError, match="no such run directory"):
        Run.open(tmp_path / "nope")
    with pytest.raises(GenlabError, match="config.json: missing"):
        Run.open(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(GenlabError, match="not valid JSON"):
        Run.open(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"family": "vae"}))
    with pytest.raises(GenlabError, match="no 'model' entry"):
        Run.open(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"family": "nope", "model": {}}))
    with pytest.raises(GenlabError, match="unknown model family 'nope'"):
        Run.open(tmp_path)


def test_load_model_rejects_unknown_family_and_mismatched_weights(tmp_path):
    import genlab

    (tmp_path / "config.json").write_text(json.dumps({"family": "nope", "model": {}}))
    with pytest.raises(GenlabError, match="unknown model family 'nope'"):
        genlab.load(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({"family": "vae", "model": {"latent_dim": 4, "widths": [8, 16]}})
    )
    save_weights(tmp_path / "model.safetensors", {"x": torch.zeros(1)})
    with pytest.raises(GenlabError, match="weights do not match config.json"):
        genlab.load(tmp_path)


def test_a_run_is_opened_once_and_answers_for_its_directory(fmnist_dir, tmp_path):
    import os

    import genlab

    path = genlab.create("ae", tmp_path / "ae", data_dir=fmnist_dir, latent_dim=2, widths=(4, 8),
                         max_steps=2, batch_size=16)  # fmt: skip
    genlab.train(path, progress=False)
    run = Run.open(path)
    assert (run.path, run.name, str(run), os.fspath(run)) == (path, "ae", str(path), str(path))
    assert Run.of(run) is run and run.family.name == "ae" and run.trained_step == 2
    assert run.train_config.max_steps == 2 and run.model_config.latent_dim == 2
    assert run.checkpoint == path / "state" and run.class_names[0] == "T-shirt/top"
    assert len(run.data("test")) == 200 and run.specs()["data"].name == "fashion-mnist"
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(run.model().encode(x), genlab.load(path).encode(x))
