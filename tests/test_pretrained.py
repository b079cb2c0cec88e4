"""Shipped runs: each one loads, samples, and re-evaluates to its recorded check figure on this
machine; their size; `get`, `list`, `info`; and `ship` round-trips a run this test trains."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import require_real_fashion_mnist

import genlab
from genlab.errors import GenlabError
from genlab.evaluation.evaluate import EvalConfig, evaluate_run
from genlab.pretrained import PROVENANCE, SCHEMA, SHIPPED, find, get, ship, shipped
from genlab.runs import Run, load_model
from genlab.sampling import sampling_options

SHIPPED_RUNS = shipped()
AGENTS = ("dqn", "qtable")
TOLERANCE = (0.05, 2.0)
"""A fresh check FD must lie within 5% + 2 of the recorded one: the same seed draws the same
samples, so only the arithmetic of another CPU (bf16 or fp32, other kernels) moves it. That is
well inside what drawing other samples moves it by (the `spread` over 8 other seeds that
scripts/pretrained_checks.py records with each check: FD's standard deviation is 6 to 32 at these
n), and held in both passes of make test (bf16 AVX-512 and fp32 AVX2). The same bound for an
agent's mean return over the same seeded greedy episodes."""


@pytest.fixture(scope="module")
def evaluators() -> dict:
    """Evaluators shared by the checks: the data and the real features are loaded once."""
    return {}


def test_the_shipped_runs_are_small_and_complete():
    total = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert total <= 35 * 2**20, f"shipped runs take {total / 2**20:.1f} MB, more than 35"
    for entry in SHIPPED_RUNS:
        p = entry.provenance
        assert p["schema"] == SCHEMA and p["name"] == entry.name
        assert p["commands"] and all(c.startswith("genlab train ") for c in p["commands"])
        assert p["steps"] > 0 and p["train_seconds"] > 0 and p["machine"]
        if entry.family in AGENTS:  # greedy episodes: 100 for the record, fewer for the check
            assert p["eval"]["n"] == 100 and p["check"]["n"] < p["eval"]["n"]
        else:
            assert p["eval"]["n"] == 10_000 and p["check"]["n"] < p["eval"]["n"]
        assert (entry.path / "config.json").is_file()
        assert json.loads((entry.path / "config.json").read_text())["family"] == entry.family


@pytest.mark.kernels  # float arithmetic: run again as an AVX2 CPU computes (Makefile)
@pytest.mark.parametrize("entry", SHIPPED_RUNS, ids=[s.name for s in SHIPPED_RUNS])
def test_a_shipped_run_samples_and_reproduces_its_check(entry, tmp_path, evaluators):
    run = get(entry.name, tmp_path / entry.name)
    check = entry.provenance["check"]
    if entry.family in AGENTS:  # the same seeded greedy episodes: the same mean return
        from genlab.evaluation.agent import evaluate_agent

        rel, absolute = TOLERANCE
        record, _ = evaluate_agent(run, check["n"])
        want = check["metrics"]["mean"]
        assert abs(record["mean"] - want) <= rel * abs(want) + absolute, (record["mean"], want)
        return
    require_real_fashion_mnist()
    model = load_model(run)  # once: a txt2img run recomputes its caption states on loading
    if hasattr(model, "sample"):  # a VQ-VAE draws none: its check scores reconstructions
        s = genlab.sample(run, 4, seed=0, model=model)
        assert s.images.shape[0] == 4 and s.images.min() >= 0 and s.images.max() <= 1
    sampling = check.get("sampling", {})
    config = EvalConfig(n=check["n"], seed=check["seed"], references=False, memorisation=False)
    options = sampling_options(model, **recorded_options(sampling))
    record = evaluate_run(run, config, evaluators=evaluators, model=model, described=sampling,
                          sample_options=options)  # fmt: skip
    fd, want = record["metrics"]["fd"], check["metrics"]["fd"]
    rel, absolute = TOLERANCE
    assert abs(fd - want) <= rel * want + absolute, (fd, want)
    assert record["metrics"]["modes_covered"] >= check["metrics"]["modes_covered"] - 1


def recorded_options(sampling: dict) -> dict:
    """`sampling_options` keywords from a record's sampling entry (strings)."""
    names = {"sampler": ("sampler", str), "steps": ("steps", int), "eta": ("eta", float),
             "w": ("guidance", float)}  # fmt: skip
    return {names[k][0]: names[k][1](v) for k, v in sampling.items() if k in names}


def test_get_refuses_unknown_names_and_existing_folders(tmp_path):
    with pytest.raises(GenlabError, match="no shipped run named 'nope'"):
        get("nope", tmp_path / "x")
    if SHIPPED_RUNS:
        (tmp_path / "taken").mkdir()
        with pytest.raises(GenlabError, match="already exists"):
            get(SHIPPED_RUNS[0].name, tmp_path / "taken")
        with pytest.raises(GenlabError, match="does not exist"):
            get(SHIPPED_RUNS[0].name, tmp_path / "missing" / "run")


def fake_record(n: int, fd: float) -> dict:
    """A `genlab eval` record's shape with the fields a shipped run keeps."""
    metrics = {
        "fd": fd,
        "kid_mean": 1.0,
        "precision": 0.5,
        "recall": 0.4,
        "coverage": 0.3,
        "modes_covered": 2,
        "missing_classes": [],
        "conditional_accuracy": None,
    }
    return {
        "n": n,
        "seed": 0,
        "source": {"sampling": {"sampler": "ddim", "steps": "5"}},
        "class_names": ["a", "b"],
        "metrics": metrics,
        "references": {"floor": {"fd": 0.4}},
    }


def test_ship_then_get_round_trips_a_trained_run(tmp_path, fmnist_dir):
    run = genlab.create("vae", tmp_path / "vae", data_dir=str(fmnist_dir), latent_dim=4,
                        widths=(4, 8), max_steps=3, batch_size=16, seed=5)  # fmt: skip
    genlab.train(run, progress=False)
    root = tmp_path / "shipped"
    folder = ship(run, "tiny", summary="a tiny VAE", commands=["genlab train vae ..."],
                  evaluation=fake_record(10_000, 50.0), check=fake_record(100, 60.0),
                  machine="test", root=root)  # fmt: skip
    assert sorted(f.name for f in folder.iterdir()) == ["config.json", "ema.safetensors",
                                                        "metrics.csv", PROVENANCE]  # fmt: skip
    entry = find("tiny", root)
    assert (entry.family, entry.summary, entry.metrics["fd"]) == ("vae", "a tiny VAE", 50.0)
    p = entry.provenance
    assert (p["steps"], p["seed"], p["check"]["sampling"]) == (3, 5, {"sampler": "ddim",
                                                                      "steps": "5"})  # fmt: skip
    assert recorded_options(p["check"]["sampling"]) == {"sampler": "ddim", "steps": 5}
    out = get("tiny", tmp_path / "copy", root)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(genlab.load(out).encode(x), genlab.load(run).encode(x))
    with pytest.raises(GenlabError, match="exists"):
        ship(run, "tiny", summary="", commands=[], evaluation={}, check={}, machine="", root=root)


def test_cli_lists_and_describes_the_shipped_runs(capsys):
    from genlab.cli import main

    assert main(["pretrained", "list"]) == 0
    listed = capsys.readouterr().out
    for entry in SHIPPED_RUNS:
        assert entry.name in listed
    if SHIPPED_RUNS:
        assert main(["pretrained", "info", SHIPPED_RUNS[0].name]) == 0
        assert json.loads(capsys.readouterr().out)["name"] == SHIPPED_RUNS[0].name
    assert main(["pretrained", "get", "nope", "--out", "x"]) == 2
    assert "no shipped run named 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("entry", SHIPPED_RUNS, ids=lambda e: e.name)
def test_a_shipped_run_samples_by_default_as_its_record_was_evaluated(entry):
    """`genlab sample RUN` (the model's defaults) draws what `genlab pretrained list` reports."""
    sampling = recorded_options(entry.provenance["eval"].get("sampling", {}))
    config = Run.open(entry.path).model_config
    assert {k: getattr(config, k) for k in sampling} == sampling
