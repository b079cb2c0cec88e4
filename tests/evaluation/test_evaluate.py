"""`genlab eval` and `genlab compare`: reference images, image files, the evaluator, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from genlab.cli import main
from genlab.data.fashion_mnist import load_fashion_mnist
from genlab.errors import GenlabError
from genlab.evaluation import load_feature_network
from genlab.evaluation.evaluate import (
    REFERENCES,
    EvalConfig,
    Evaluator,
    add_noise,
    gaussian_blur,
    generate,
)
from genlab.evaluation.image_files import load_images, split_grid
from genlab.evaluation.metrics import METRIC_KEYS
from genlab.images import make_grid, save_png

TINY = ["--max-steps", "4", "--batch-size", "32", "--no-progress", "--sample-every", "100"]


@pytest.fixture(scope="module")
def data(fmnist_dir):
    return load_fashion_mnist("train", str(fmnist_dir)), load_fashion_mnist("test", str(fmnist_dir))


@pytest.fixture(scope="module")
def net():
    return load_feature_network()


@pytest.fixture(scope="module")
def runs(fmnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = []
    for name, extra in (("vae", []), ("cvae", ["--conditional"])):
        args = ["train", "vae", "--data-dir", str(fmnist_dir), "--out", str(root / name)]
        assert main([*args, *TINY, *extra]) == 0
        out.append(root / name)
    return out


# --- reference images -----------------------------------------------------------------------


def test_blur_matches_scipy_gaussian_filter():
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    ours = gaussian_blur(x, 1.0).numpy().astype(int)
    ref = np.stack([gaussian_filter(im[0].numpy().astype(float), 1.0, mode="mirror") for im in x])
    assert np.abs(ours[:, 0] - ref).max() <= 1  # rounding to uint8 only


def test_blur_keeps_flat_images_and_noise_is_seeded_with_its_sigma():
    flat = torch.full((2, 1, 28, 28), 128, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat, 1.5), flat)
    a = add_noise(flat, 0.1, torch.Generator().manual_seed(3))
    b = add_noise(flat, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a.float() - 128).std().item() == pytest.approx(25.5, rel=0.05)


# --- image files ------------------------------------------------------------------------------


def test_grid_round_trip_drops_the_blank_cells():
    x = torch.randint(1, 255, (10, 1, 28, 28), dtype=torch.uint8)
    grid = make_grid(x.float() / 255.0, nrow=4)  # 3 rows of 4: two blank cells
    tiles = split_grid(grid, 28, 2)
    assert len(tiles) == 10
    assert np.array_equal(np.stack(tiles), x[:, 0].numpy())


def test_images_from_a_folder_are_converted_to_the_network_shape(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (56, 56, 3), dtype=np.uint8)
    for i in range(3):
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    x = load_images(tmp_path, (1, 28, 28))
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.uint8
    assert load_images(tmp_path, (1, 28, 28), limit=2).shape[0] == 2


def test_a_grid_without_metadata_needs_its_tile_size(tmp_path):
    grid = make_grid(torch.rand(4, 1, 28, 28), nrow=2)
    Image.fromarray(grid).save(tmp_path / "other.png")
    with pytest.raises(GenlabError, match="--tile"):
        load_images(tmp_path / "other.png", (1, 28, 28))
    assert load_images(tmp_path / "other.png", (1, 28, 28), tile=28, padding=2).shape[0] == 4
    save_png(tmp_path / "ours.png", grid, {"grid_tile": "28", "grid_padding": "2"})
    assert load_images(tmp_path / "ours.png", (1, 28, 28)).shape[0] == 4


def test_unreadable_and_missing_images_give_one_line_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(GenlabError, match="bad.png: not a readable image"):
        load_images(tmp_path, (1, 28, 28))
    with pytest.raises(GenlabError, match="no such file"):
        load_images(tmp_path / "missing", (1, 28, 28))


# --- the evaluator ----------------------------------------------------------------------------


def test_real_data_scores_like_the_floor_and_better_than_the_ceilings(data, net, tmp_path):
    train, test = data
    ev = Evaluator(train, test, net, config=EvalConfig(n=200, kid_subsets=10), cache=tmp_path)
    same = ev.score(test.images[ev.real_index], memorisation=False)
    assert same["fd"] == pytest.approx(0.0, abs=1e-3)
    refs = ev.references()
    assert set(refs) == set(REFERENCES)
    assert refs["floor"]["fd"] < refs["blurred"]["fd"]
    assert refs["floor"]["fd"] < refs["noised"]["fd"]
    assert all(set(r) == set(METRIC_KEYS) for r in refs.values())


def test_references_and_memorisation_distances_are_cached(data, net, tmp_path, monkeypatch):
    train, test = data
    config = EvalConfig(n=100, kid_subsets=5)
    first = Evaluator(train, test, net, config=config, cache=tmp_path)
    refs = first.references()
    d = first.test_nn_dist()
    assert len(list(tmp_path.iterdir())) == 2
    again = Evaluator(train, test, net, config=config, cache=tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr(again, "score", fail)
    monkeypatch.setattr("genlab.evaluation.metrics.nearest_neighbour_distances", fail)
    assert again.references() == refs
    assert torch.equal(again.test_nn_dist(), d)


def test_copied_training_images_are_flagged_and_fresh_ones_are_not(data, net):
    train, test = data
    ev = Evaluator(train, test, net, config=EvalConfig(n=100, kid_subsets=5))
    copies = ev.score(train.images[:100])
    assert copies["memorised_fraction"] == 1.0 and copies["nn_ratio"] < 0.01
    fresh = ev.score(test.images[:100])
    assert fresh["memorised_fraction"] <= 0.05
    assert fresh["nn_ratio"] == pytest.approx(1.0, abs=0.25)


def test_n_larger_than_the_training_set_is_refused(data, net):
    train, test = data
    with pytest.raises(GenlabError, match="larger than the training set"):
        Evaluator(train, test, net, config=EvalConfig(n=len(train) + 1))


def test_generate_is_seeded_and_asks_a_conditional_model_for_every_class(runs):
    from genlab import load

    model = load(runs[1])
    x, requested = generate(model, 25, seed=1, batch_size=10)
    assert x.shape == (25, 1, 28, 28) and x.dtype == torch.uint8
    assert requested.tolist() == [i % 10 for i in range(25)]
    assert torch.equal(generate(model, 25, seed=1, batch_size=7)[0], x)
    assert generate(load(runs[0]), 4)[1] is None


# --- CLI --------------------------------------------------------------------------------------


def test_eval_prints_every_metric_with_references_and_writes_the_record(runs, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["eval", str(runs[1]), "--n", "100", "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    for label in ("FD", "KID", "precision", "recall", "coverage", "IS", "modes", "memorised"):
        assert label in text
    assert "floor: training images" in text and "ceiling: blurred" in text
    record = json.loads(out.read_text())
    assert record["schema"] == "genlab.eval/1" and record["n"] == 100
    assert set(record["metrics"]) == set(METRIC_KEYS)
    assert set(record["references"]) == set(REFERENCES)
    assert record["metrics"]["conditional_accuracy"] is not None
    assert record["source"]["step"] == 4 and record["source"]["family"] == "vae"
    assert (runs[1] / "eval" / "eval-n100-seed0.json").is_file()
    assert (runs[1] / "eval" / "samples-seed0.png").is_file()


def test_eval_scores_a_genlab_sample_grid_and_a_folder(runs, tmp_path, fmnist_dir, capsys):
    grid = tmp_path / "grid.png"
    assert main(["sample", str(runs[0]), "--n", "30", "--out", str(grid)]) == 0
    args = ["--data-dir", str(fmnist_dir), "--no-progress", "--no-references"]
    out = tmp_path / "g.json"
    assert main(["eval", "--images", str(grid), "--json", str(out), *args]) == 0
    record = json.loads(out.read_text())
    assert record["n"] == 30 and record["references"] is None
    folder = tmp_path / "pngs"
    folder.mkdir()
    test = load_fashion_mnist("test", str(fmnist_dir))
    for i in range(12):
        Image.fromarray(test.images[i, 0].numpy()).save(folder / f"{i:02d}.png")
    assert main(["eval", "--images", str(folder), "--json", str(out), *args]) == 0
    assert json.loads(out.read_text())["source"]["count"] == 12


def test_eval_input_errors_exit_2_with_one_line(runs, tmp_path, capsys):
    assert main(["eval"]) == 2
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert main(["eval", str(runs[0]), "--n", "100000", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def test_compare_ranks_runs_and_writes_html_with_their_samples(runs, tmp_path, capsys):
    page = tmp_path / "c.html"
    args = ["compare", *map(str, runs), "--n", "100", "--html", str(page), "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "ranked by FD" in text and "floor: training images" in text
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 2
    assert all(str(r) in html for r in runs)
    records = [json.loads((r / "eval" / "eval-n100-seed0.json").read_text()) for r in runs]
    fds = sorted(r["metrics"]["fd"] for r in records)
    table = text[text.index("ranked by FD") :]
    first, second = (table.index(str(r)) for r in runs)
    assert (first < second) == (records[0]["metrics"]["fd"] == fds[0])
    assert main(args) == 0  # the second time the records are current: nothing is recomputed
    assert capsys.readouterr().out.count("using ") == 2


def test_inception_weights_swap_the_embedding_and_keep_the_class_metrics(fmnist_dir, tmp_path):
    from safetensors.torch import save_file

    from genlab.evaluation.inception import InceptionV3FID

    weights = tmp_path / "inception.safetensors"
    save_file(InceptionV3FID().state_dict(), str(weights))  # random weights: shapes only
    folder = tmp_path / "pngs"
    folder.mkdir()
    test = load_fashion_mnist("test", str(fmnist_dir))
    for i in range(10):
        Image.fromarray(test.images[i, 0].numpy()).save(folder / f"{i}.png")
    out = tmp_path / "i.json"
    args = ["eval", "--images", str(folder), "--data-dir", str(fmnist_dir), "--no-progress"]
    args += ["--no-references", "--inception-weights", str(weights), "--json", str(out)]
    assert main(args) == 0
    record = json.loads(out.read_text())
    assert record["networks"]["features"]["name"].startswith("inception-v3")
    assert len(record["metrics"]["class_histogram"]) == 10  # the Fashion-MNIST classifier's


def test_runs_on_the_same_data_share_one_evaluator(runs, monkeypatch):
    from genlab.evaluation import evaluate as E

    evaluators: dict = {}
    E.evaluate_run(runs[0], EvalConfig(n=20, kid_subsets=5), evaluators=evaluators)
    assert len(evaluators) == 1

    def fail(*args, **kwargs):
        raise AssertionError("data loaded again for a second run on the same data")

    monkeypatch.setattr(E, "_data_and_networks", fail)
    record = E.evaluate_run(runs[1], EvalConfig(n=20, kid_subsets=5), evaluators=evaluators)
    assert record["source"]["run"] == str(runs[1]) and len(evaluators) == 1
