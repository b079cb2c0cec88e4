"""The demo command (cli/demo.py): every picture and the index page, and the shipped runs with
one model trained live."""

import re

from PIL import Image

from genlab.cli import main


def test_demo_writes_every_picture_and_index(fmnist_dir, tmp_path, capsys, monkeypatch):
    import genlab.demo as demo

    pages = []  # index.html as it was after each picture: the page grows while the demo runs
    write = demo.write_index

    def spy(out_dir, sections, seconds, done):
        path = write(out_dir, sections, seconds, done)
        pages.append(path.read_text())
        return path

    monkeypatch.setattr(demo, "write_index", spy)
    out = tmp_path / "demo"
    args = [
        "demo",
        "--retrain",
        "--out",
        str(out),
        "--minutes",
        "0.02",
        "--data-dir",
        str(fmnist_dir),
        "--eval-n",
        "50",
        "--gan-minutes",
        "0.02",
        "--stylegan-minutes",
        "0.02",
        "--diffusion-minutes",
        "0.02",
        "--pixelcnn-minutes",
        "0.02",
        "--glow-minutes",
        "0.02",
        "--vqvae-minutes",
        "0.02",
        "--rl-steps",
        "300",
        "--no-progress",
    ]
    assert main(args) == 0
    html = (out / "index.html").read_text()
    assert "<h3>Evaluation</h3>" in html and "floor: training images" in html
    assert "<table class='eval'>" in html and "image-rendering:pixelated" in html
    assert "FD (lower is better)" in (out / "evaluation.txt").read_text()
    names = [
        "samples",
        "reconstructions",
        "interpolation",
        "morph",
        "arithmetic",
        "latent_map",
        "walk",
        "loss",
        "gan_samples",
        "gan_interpolation",
        "gan_curves",
        "gan_gradients",
        "stylegan_samples",
        "stylegan_mix",
        "stylegan_truncation",
        "stylegan_noise",
        "stylegan_zw",
        "ldm_forward",
        "ldm_denoise",
        "ldm_guidance",
        "ldm_samples",
        "txt2img_boots",
        "txt2img_sweater",
        "fm_samples",
        "fm_nfe",
        "pixelcnn_samples",
        "pixelcnn_complete",
        "pixelcnn_loss",
        "glow_samples",
        "glow_samples_t1",
        "glow_interpolation",
        "vqvae_reconstructions",
        "vqvae_codebook",
        "vqvae_samples",
        "dqn_curves",
        "dqn_q_values",
        "qtable_q_values",
    ]
    for name in names:
        assert (out / f"{name}.png").is_file() and f"{name}.png" in html
    assert (out / "ldm_denoise.gif").is_file() and (out / "pixelcnn_order.gif").is_file()
    assert (out / "dqn_play.gif").is_file() and "return mean" in (out / "dqn_eval.txt").read_text()
    # the table of contents and the summary: every section, its runs and the measured FD
    for key in ("vae", "gan", "stylegan", "diffusion", "flow", "pixelcnn", "glow", "vqvae", "rl"):
        assert f"href='#{key}'" in html and f"<h2 id='{key}'>" in html
    assert html.count("<tr><td><a href=") == 9  # one row a section's first run
    # vae, gan, stylegan, 3 diffusion runs, flow matching, pixelcnn, glow, vqvae and its prior,
    # dqn, qtable
    assert html.count("<td class='l'>") == 13
    # written as it went: while training, the page reloads itself and shows what is done
    assert len(pages) >= len(names) and "http-equiv='refresh'" in pages[0]
    assert "samples.png" in pages[2] and "gan_samples.png" not in pages[2]
    assert "http-equiv='refresh'" not in html
    first_width = re.search(r"<img src='samples.png' alt='Samples' width='(\d+)'", html)
    assert int(first_width.group(1)) == 3 * Image.open(out / "samples.png").size[0]
    assert "Every run here was trained on this machine" in html and "(shipped)" not in html
    # A second run reuses the trained demo run (the VAE section alone: the others were drawn).
    skip = ["--gan-minutes", "0", "--stylegan-minutes", "0", "--diffusion-minutes", "0",
            "--pixelcnn-minutes", "0", "--glow-minutes", "0", "--vqvae-minutes", "0",
            "--rl-steps", "0"]  # fmt: skip
    capsys.readouterr()
    assert main([*args, *skip]) == 0
    said = capsys.readouterr().out
    assert "reusing the trained demo run" in said and "training a" not in said


def test_demo_explores_the_shipped_runs_and_trains_one_live(tmp_path, capsys, fmnist_dir):
    from helpers import require_real_fashion_mnist

    from genlab.pretrained import shipped_names

    require_real_fashion_mnist()  # the shipped runs' pictures encode real test images
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--pixelcnn-minutes", "0", "--rl-steps", "0",
            "--diffusion-minutes", "0.05", "--glow-minutes", "0.05", "--vqvae-minutes", "0.05",
            # a budget only where a run is not shipped
            "--live-minutes", "0.05", "--live-eval-n", "100", "--eval-n", "50",
            "--data-dir", str(fmnist_dir),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    said = capsys.readouterr().out
    html = (out / "index.html").read_text()
    used = {"vae": "run", "dcgan": "gan-run", "stylegan": "stylegan-run", "ldm": "ldm-run"}
    for name, folder in used.items():
        if name in shipped_names():
            assert f"using the shipped run {name} " in said
            assert (out / folder / "provenance.json").is_file()
            assert f"The shipped run <b>{name}</b>" in html or name == "stylegan"
    assert "Recorded evaluation" in html and "(shipped)" in html
    # the live section trains a DCGAN now and evaluates it in full
    assert "training a gan on Fashion-MNIST for 0.05 minutes" in said
    assert (out / "live_samples.png").is_file() and (out / "live_curves.png").is_file()
    assert "<h2 id='live'>" in html and "floor: training images" in html
    for picture in ("samples", "gan_samples", "stylegan_mix", "ldm_denoise", "live_gradients"):
        assert f"{picture}.png" in html and (out / f"{picture}.png").is_file()
    # again: the copy and the live run are reused (the sections drawn already skipped)
    skip = ["--gan-minutes", "0", "--stylegan-minutes", "0", "--diffusion-minutes", "0"]
    assert main([*args, *skip]) == 0
    said = capsys.readouterr().out
    assert "reusing the trained demo run" in said and "training a" not in said
    assert "using the shipped run vae " in said or "vae" not in shipped_names()
