"""The device policy (genlab.devices): names resolved in one place, a missing device one line
and exit 2 from every command that runs a model, `using` as the default of what runs inside,
and the devices a run trained on recorded. CUDA and MPS are patched away, so that these hold on
a GPU machine too."""

from __future__ import annotations

import click
import pytest
import torch

from genlab import devices
from genlab.cli import cli, main
from genlab.errors import GenlabError

WITHOUT_DEVICE = {"board", "data", "plot", "pretrained", "sd", "toy-gan"}
"""Commands that run no model (board serves TensorBoard; sd has its own --device; toy-gan trains
on one CPU thread)."""


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


def test_auto_is_the_cpu_without_a_gpu_and_cuda_is_one_line(cpu_only):
    assert devices.resolve("auto") == devices.resolve(None) == torch.device("cpu")
    assert devices.resolve("cpu") == torch.device("cpu")
    for name, says in (("cuda", "no CUDA GPU"), ("cuda:1", "no CUDA GPU"), ("mps", "no Apple"),
                       ("tpu", "not a device"), ("cuda:x", "not a device")):  # fmt: skip
        with pytest.raises(GenlabError, match=f"--device {name}: {says}"):
            devices.resolve(name)


def test_auto_takes_the_gpu_and_an_index_must_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert devices.resolve("auto") == torch.device("cuda", 0)
    assert devices.resolve("cuda") == torch.device("cuda", 0)
    assert devices.resolve("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(GenlabError, match="has 2 CUDA GPU"):
        devices.resolve("cuda:2")


def test_using_is_the_default_inside_and_restored_after(cpu_only):
    with devices.using("cpu") as device:
        assert device == torch.device("cpu") and devices.resolve() == device
        with devices.using(None):  # a command without --device keeps its caller's
            assert devices.resolve() == device
    with pytest.raises(GenlabError), devices.using("cuda"):
        pass  # refused on entry
    assert devices.resolve() == torch.device("cpu")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group) and name != "train":
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_that_runs_a_model_takes_device(cpu_only, tmp_path, capsys):
    checked = []
    for path, command in _commands(cli):
        if path[0] in WITHOUT_DEVICE:
            continue
        if path == ("train",):
            path, command = ("train", "vae"), command.get_command(None, "vae")
        assert "device" in {p.name for p in command.params}, path
        args = [*path, "--device", "cuda"]
        for p in command.params:  # required arguments and options: an existing folder
            if p.required:
                args += [str(tmp_path)] if isinstance(p, click.Argument) else [p.opts[0], "x"]
        if path == ("train", "vae"):
            args += ["--out", str(tmp_path / "run")]
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err == "error: --device cuda: no CUDA GPU here; use --device cpu (or auto)", args
        checked.append(path[0])
    assert not (tmp_path / "run").exists()  # refused before the run was made
    assert {"sample", "eval", "compare", "nll", "morph", "denoise", "play", "app", "demo",
            "train"} <= set(checked)  # fmt: skip
    assert main(["train", "--resume", str(tmp_path), "--device", "cuda"]) == 2


def test_a_run_records_where_it_trained(fmnist_dir, tmp_path, monkeypatch):
    import genlab
    from genlab.training.checkpoint import load_checkpoint

    run = genlab.create("vae", tmp_path / "run", latent_dim=4, widths=(4, 8), max_steps=4,
                        data_dir=fmnist_dir, sample_every=10**9, batch_size=8)  # fmt: skip
    genlab.train(run, stop_at=2, progress=False, device="cpu")
    genlab.train(run, stop_at=3, progress=False, device="cpu")  # the same device: one entry
    here = {"from_step": 0, "device": "cpu", "processes": 1}
    assert load_checkpoint(run).trainer["devices"] == [here]
    monkeypatch.setattr(devices, "describe", lambda device: "cuda:0 (elsewhere)")
    genlab.train(run, progress=False, device="cpu")  # as if resumed on another machine
    elsewhere = {"from_step": 3, "device": "cuda:0 (elsewhere)", "processes": 1}
    assert load_checkpoint(run).trainer["devices"] == [here, elsewhere]
