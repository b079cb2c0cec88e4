"""The registry: every family's `genlab train FAMILY` lists its own options and the shared ones
only, trains in bf16 and fp32, loads, samples, and its run's config.json trains the same run
again (`genlab train --config`); JSON and TOML option files; the Python API takes the same
names and ranges."""

from __future__ import annotations

import json
import re

import pytest
from helpers import TINY_OPTIONS as TINY
from helpers import board_scalars, csv_scalars, train_args

import genlab
from genlab.cli import main
from genlab.errors import GenlabError
from genlab.families import FAMILIES
from genlab.training import options_of

WIDTHS = ["--widths", "4,8"]
BASE = ["--max-steps", "2", "--batch-size", "16", "--no-progress", "--sample-every", "1000"]


def test_every_family_has_tiny_options_here():
    assert set(TINY) == set(FAMILIES)


@pytest.fixture(scope="module")
def spatial_vae(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae4"
    args = ["train", "vae", "--latent-channels", "2", "--data-dir", str(fmnist_dir), *BASE]
    assert main([*args, *WIDTHS, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_help_lists_the_familys_options_and_no_others(family, capsys):
    assert main(["train", family, "--help"]) == 0
    options = capsys.readouterr().out.split("Options:")[1]
    heads = [line.split("  ")[1] for line in options.splitlines() if re.match(r"\s{2}-", line)]
    shown = {flag for head in heads for flag in re.findall(r"--[a-zA-Z][\w-]*", head)}
    expected = {"--help", "--progress", "--no-progress", "--device"}
    for option in options_of(FAMILIES[family]).values():
        if option.kind == "bool":
            expected |= {option.flag, "--no-" + option.flag[2:]}
        else:
            expected |= set(option.spellings)
    assert shown == expected
    others = {f for name, fam in FAMILIES.items() if name != family
              for o in fam.options for f in o.spellings} - expected  # fmt: skip
    assert not shown & others


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_trains_in_bf16_and_fp32_and_its_config_trains_it_again(
    family, fmnist_dir, spatial_vae, tmp_path
):
    tiny = [str(spatial_vae) if a == "VAE" else a for a in TINY[family]]
    first = tmp_path / "first"
    args = ["--data-dir", str(fmnist_dir), *BASE, *tiny, "--precision", "bf16"]
    assert main(["train", family, *train_args(family, args), "--out", str(first)]) == 0
    events = board_scalars(first)  # TensorBoard's reader: the same numbers as metrics.csv
    assert events == csv_scalars(first) and "elapsed_s" in events
    again = tmp_path / "again"
    config = first / "config.json"
    fp32 = train_args(family, ["--precision", "fp32", "--no-tensorboard"])
    assert main(["train", "--config", str(config), "--out", str(again), *fp32,
                 "--no-progress"]) == 0  # fmt: skip
    a, b = (json.loads((run / "config.json").read_text()) for run in (first, again))
    assert a["family"] == b["family"] == family
    assert a["model"] == b["model"] and a["data"] == b["data"]
    assert {**a["train"], "precision": "fp32", "tensorboard": False} == b["train"]
    assert not (again / "tensorboard").exists()
    model = genlab.load(again)
    assert isinstance(model, FAMILIES[family].model)
    if hasattr(model, "sample"):
        samples = genlab.sample(again, 2, seed=0, model=model)
        assert samples.images.shape[0] == 2 and 0 <= samples.images.min() <= 1


def test_option_files_in_json_and_toml_and_the_command_line_wins(fmnist_dir, tmp_path):
    toml = tmp_path / "vae.toml"
    toml.write_text(
        f'family = "vae"\ndata_dir = "{fmnist_dir}"\nmax-steps = 2\nbatch_size = 16\n'
        "latent_dim = 3\nwidths = [4, 8]\nbeta = 0.5\n"
    )
    assert main(["train", "--config", str(toml), "--beta", "0.25", "--out", str(tmp_path / "a"),
                 "--no-progress"]) == 0  # fmt: skip
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (config["model"]["latent_dim"], config["model"]["beta"]) == (3, 0.25)
    assert config["train"]["max_steps"] == 2 and config["model"]["widths"] == [4, 8]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"family": "vae", "loss": "hinge"}))
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "b")]) == 2
    bad.write_text(json.dumps({"family": "vae", "beta": -1}))
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "b")]) == 2
    bad.write_text("{not json")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "b").exists()


def test_the_python_api_checks_like_the_command_line(fmnist_dir, tmp_path):
    with pytest.raises(GenlabError, match="--beta -1: must be a finite number >= 0"):
        genlab.create("vae", tmp_path / "x", beta=-1)
    with pytest.raises(GenlabError, match="'loss' is not an option of genlab train vae"):
        genlab.create("vae", tmp_path / "x", loss="hinge")
    with pytest.raises(GenlabError, match="unknown model family 'vea'"):
        genlab.create("vea", tmp_path / "x")
    with pytest.raises(GenlabError, match="give --out"):
        genlab.create("vae")
    assert not (tmp_path / "x").exists()
    run = genlab.create("vae", tmp_path / "x", data_dir=fmnist_dir, max_steps=1, widths=(4, 8))
    assert genlab.train(run, progress=False).step == 1


def test_a_run_of_an_older_genlab_without_recorded_options_trains_again(fmnist_dir, tmp_path):
    first = tmp_path / "first"
    args = ["train", "vae", "--data-dir", str(fmnist_dir), *BASE, *TINY["vae"], "--beta", "0.3"]
    assert main([*args, "--out", str(first)]) == 0
    config = json.loads((first / "config.json").read_text())
    del config["options"]  # as runs written before the registry
    (first / "config.json").write_text(json.dumps(config))
    again = tmp_path / "again"
    assert main(["train", "--config", str(first / "config.json"), "--out", str(again)]) == 0
    b = json.loads((again / "config.json").read_text())
    assert b["model"] == config["model"] and b["train"] == config["train"]
