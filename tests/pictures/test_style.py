"""StyleGAN's pictures (pictures/style.py), from the commands of a trained run and from Python:
style mixing's coarse and fine layers, and truncation at psi 0."""

from __future__ import annotations

import torch


def test_cli_pictures_of_a_trained_run(tmp_path, fmnist_dir, capsys):
    from genlab.cli import main
    from genlab.images import read_png_metadata

    run = tmp_path / "run"
    args = ["train", "stylegan", "--data-dir", str(fmnist_dir), "--out", str(run), "--max-steps",
            "3", "--latent-dim", "8", "--g-widths", "4,8", "--d-widths", "4,8", "--no-progress",
            "--sample-every", "1000"]  # fmt: skip
    assert main(args) == 0
    for command, extra in [
        ("style-mix", ["--rows", "2", "--columns", "3"]),
        ("truncation", ["--n", "2", "--psi", "0,0.5,1"]),
        ("noise-variation", ["--n", "2", "--draws", "4"]),
        ("path-length", ["--n", "8"]),
        ("sample", ["--n", "4"]),
    ]:
        out = tmp_path / f"{command}.png"
        assert main([command, str(run), "--out", str(out), *extra]) == 0, command
        assert read_png_metadata(out)["run"] == str(run)
    assert "perceptual path length over 8 pairs" in capsys.readouterr().out

    from genlab.pictures.style import style_mix, truncation

    mix = style_mix(run, rows=2, columns=3, coarse=6)  # all 6 layers coarse: the row source
    tiles = mix.tiles.view(3, 4, 1, 28, 28)
    torch.testing.assert_close(tiles[1, 1:], tiles[1, :1].expand(3, -1, -1, -1))
    mix = style_mix(run, rows=2, columns=3, coarse=0)  # none coarse: the column source
    tiles = mix.tiles.view(3, 4, 1, 28, 28)
    torch.testing.assert_close(tiles[2, 1:], tiles[0, 1:])
    sweep = truncation(run, n=3, psis=(0.0, 1.0)).tiles.view(3, 2, 1, 28, 28)
    torch.testing.assert_close(sweep[:, 0], sweep[:1, 0].expand(3, -1, -1, -1))  # psi = 0
    assert main(["truncation", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
