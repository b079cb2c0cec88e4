import csv
import math

import pytest
import torch
from PIL import Image

from genlab.errors import GenlabError
from genlab.images import read_png_metadata
from genlab.plots import plot_metrics, save_embeddings_csv


def _write_metrics(path, n=60):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss", "recon", "kl", "lr", "images_per_s"])
        for i in range(n):
            noise = 0.3 * math.sin(7.0 * i)  # noisy: exercises the moving average
            kl = "" if i % 2 else 0.1 * i  # logged every other step only
            w.writerow([10 * i, 5.0 / (1 + i) + noise, 4.0 / (1 + i), kl, 1e-3, 4500])


def test_plot_metrics_writes_png_with_metadata(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    _write_metrics(csv_path)
    out = plot_metrics(csv_path, tmp_path / "plots" / "metrics.png", metadata={"run": "r1"})
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
    assert read_png_metadata(out)["run"] == "r1"


def test_plot_metrics_errors_are_user_errors(tmp_path):
    with pytest.raises(GenlabError, match="no metrics file"):
        plot_metrics(tmp_path / "missing.csv", tmp_path / "m.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("step,loss\n")
    with pytest.raises(GenlabError, match="no rows"):
        plot_metrics(empty, tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()


def test_embeddings_csv_round_trips(tmp_path):
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2, 1, -1, 2])
    names = ("T-shirt/top", "Trouser", "Ankle boot")
    path = save_embeddings_csv(tmp_path / "z.csv", z, labels, names)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "label", "class_name", "z0", "z1", "z2"]
    assert [int(r["index"]) for r in rows] == list(range(5))
    assert [int(r["label"]) for r in rows] == labels.tolist()
    assert [r["class_name"] for r in rows] == [
        "T-shirt/top",
        "Ankle boot",
        "Trouser",
        "",
        "Ankle boot",
    ]
    back = torch.tensor([[float(r[f"z{j}"]) for j in range(3)] for r in rows])
    assert torch.equal(back, z)
