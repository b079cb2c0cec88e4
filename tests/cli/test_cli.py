"""The CLI, in-process: every command on a tiny run, exit codes and one-line errors."""

import csv
import gzip
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from genlab.cli import main
from genlab.images import read_png_metadata

TINY = ["--max-steps", "6", "--batch-size", "32", "--no-progress", "--sample-every", "3"]


@pytest.fixture(scope="module")
def run(fmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    code = main(["train", "vae", "--data-dir", str(fmnist_dir), "--out", str(out), *TINY])
    assert code == 0
    return out


def test_help_is_light():
    # `genlab --help` must not import torch (it answers at once).
    probe = "import sys, genlab.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe]).returncode == 0
    assert main(["--help"]) == 0


def test_train_writes_a_complete_run(run):
    names = {p.name for p in run.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "ema.safetensors",
        "state",
        "metrics.csv",
        "samples",
    } <= names
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000003.png",
        "step_0000006.png",
    ]


def test_resume_continues_to_the_new_budget(run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert main(["train", "--resume", str(copy), "--max-steps", "9", "--no-progress"]) == 0
    assert "step 9 (max_steps)" in capsys.readouterr().out
    with open(copy / "metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)][-1] == 9


def test_sample_grid_has_28px_tiles_2px_borders_and_metadata(run, tmp_path):
    out = tmp_path / "s.png"
    assert main(["sample", str(run), "--n", "4", "--seed", "7", "--out", str(out)]) == 0
    assert Image.open(out).size == (2 * 28 + 3 * 2, 2 * 28 + 3 * 2)
    meta = read_png_metadata(out)
    assert meta["seed"] == "7" and meta["run"] == str(run) and meta["command"].startswith("genlab")
    again = tmp_path / "s2.png"
    main(["sample", str(run), "--n", "4", "--seed", "7", "--out", str(again)])
    other = tmp_path / "s3.png"
    main(["sample", str(run), "--n", "4", "--seed", "8", "--out", str(other)])
    pixels = [Image.open(p).tobytes() for p in (out, again, other)]
    assert pixels[0] == pixels[1] != pixels[2]


@pytest.mark.parametrize(
    "args",
    [
        ["reconstruct"],
        ["interpolate", "--pairs", "2", "--steps", "5"],
        ["morph", "--steps", "4"],
        ["morph", "--a", "0", "--b", "1"],
        ["arithmetic", "--from", "sneaker", "--to", "ankle boot", "--n", "2"],
        ["latent-map", "--n", "150"],
        ["walk", "--dims", "3"],
        ["plot"],
    ],
)
def test_picture_commands(run, tmp_path, args):
    out = tmp_path / "p.png"
    assert main([args[0], str(run), *args[1:], "--out", str(out)]) == 0
    assert Image.open(out).format == "PNG"
    assert "command" in read_png_metadata(out)


def test_embed_writes_labelled_csv(run, tmp_path):
    out = tmp_path / "e.csv"
    assert main(["embed", str(run), "--out", str(out)]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 200 and {"label", "class_name", "z0"} <= set(rows[0])


def test_nll_reports_nats_and_bits(run, capsys):
    assert main(["nll", str(run), "--k", "4", "--n", "50"]) == 0
    out = capsys.readouterr().out
    assert "nats" in out and "bits/dim" in out


def test_conditional_vae_samples_a_class(fmnist_dir, tmp_path):
    out = tmp_path / "cvae"
    assert (
        main(
            [
                "train",
                "vae",
                "--conditional",
                "--data-dir",
                str(fmnist_dir),
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    png = tmp_path / "boots.png"
    assert main(["sample", str(out), "--class", "Ankle boot", "--n", "4", "--out", str(png)]) == 0
    assert main(["morph", str(out), "--out", str(tmp_path / "m.png")]) == 0
    assert main(["sample", str(out), "--class", "Spaceship", "--out", str(png)]) == 2


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_corrupt_idx_gives_one_line_and_exit_2(fmnist_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(fmnist_dir, bad)
    raw = gzip.decompress((bad / "train-images-idx3-ubyte.gz").read_bytes())
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    code = main(["train", "vae", "--data-dir", str(bad), "--out", str(tmp_path / "r"), *TINY])
    assert code == 2
    line = one_error_line(capsys)
    assert "train-images-idx3-ubyte.gz" in line


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["sample", "/nonexistent/run"], "no such run directory"),
        (["train", "vae"], "Missing option '--out'"),
        (["train", "vae", "--resume", "x"], "--resume belongs before the family"),
        (["train", "--resume", "x", "vae", "--out", "y"], "--resume continues an existing run"),
        (["train", "--resume", "/nonexistent/run"], "no such run directory"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in one_error_line(capsys)


def test_existing_out_and_unknown_class(run, capsys, tmp_path):
    assert main(["train", "vae", "--out", str(run), *TINY]) == 2
    assert "already exists" in one_error_line(capsys)
    assert main(["arithmetic", str(run), "--from", "Boat", "--out", str(tmp_path / "a.png")]) == 2
    assert "Boat" in one_error_line(capsys)


def test_usage_errors_exit_2(capsys):
    assert main(["train", "gan-of-doom"]) == 2
    assert main(["sample"]) == 2


def test_sample_writes_a_folder_of_pngs_for_fid_tools(run, tmp_path, capsys):
    out = tmp_path / "fid"
    assert main(["sample", str(run), "--n", "5", "--seed", "3", "--out", f"{out}/"]) == 0
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    with Image.open(files[0]) as im:
        assert im.size == (28, 28) and im.mode == "L"
    assert read_png_metadata(files[2])["index"] == "2"
    grid = tmp_path / "g.png"  # the same images as the grid of the same seed
    assert main(["sample", str(run), "--n", "5", "--seed", "3", "--out", str(grid)]) == 0
    with Image.open(grid) as g, Image.open(files[1]) as one:
        assert g.crop((2 + 30, 2, 2 + 30 + 28, 30)).tobytes() == one.tobytes()
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "2", "--out", f"{out}/"]) == 2  # not empty
    assert "not empty" in one_error_line(capsys)


def test_sample_writes_an_npz_with_labels(fmnist_dir, tmp_path):
    import numpy as np

    cvae = tmp_path / "cvae"
    args = ["train", "vae", "--conditional", "--data-dir", str(fmnist_dir), "--out", str(cvae)]
    assert main([*args, *TINY]) == 0
    out = tmp_path / "s.npz"
    assert main(["sample", str(cvae), "--n", "6", "--class", "Bag", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (6, 28, 28, 1) and f["images"].dtype == np.uint8
        assert f["labels"].tolist() == [8] * 6 and f["class_names"][8] == "Bag"
    assert main(["sample", str(cvae), "--n", "4", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["labels"].tolist() == [0, 1, 2, 3]  # the classes in turn
    assert main(["sample", str(cvae), "--n", "4", "--out", str(tmp_path / "s.jpg")]) == 2
