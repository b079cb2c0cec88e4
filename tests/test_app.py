"""The web app without a browser: its catalog of runs, what each tab computes, and what its
server serves (tests/test_app_browser.py clicks through the page itself)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab.app.catalog import AGENT, DIFFUSION, GUIDE, IMAGES, LATENT, STEPWISE, Catalog
from genlab.app.views import Views
from genlab.errors import GenlabError


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fmnist_dir) -> Path:
    """A runs folder: tiny vae (conditional), ddpm, pixelcnn and dqn runs, a folder of runs,
    a run with no weights yet, a broken run and a foreign folder."""
    root = tmp_path_factory.mktemp("runs")
    data = {"data_dir": str(fmnist_dir), "batch_size": 32}
    made = [
        genlab.create("vae", root / "vae", latent_dim=4, widths=(4, 8), conditional=True,
                      max_steps=20, **data),
        genlab.create("ddpm", root / "ddpm", width=8, conditional=True, max_steps=2, **data),
        genlab.create("flow-matching", root / "fm", width=8, mults=(1, 2), steps=3,
                      conditional=True, max_steps=2, **data),
        genlab.create("pixelcnn", root / "pixelcnn", width=4, layers=2, head_width=8,
                      max_steps=2, **data),
        genlab.create("dqn", root / "dqn", width=8, learning_starts=1, eval_every=0,
                      max_steps=50),
        genlab.create("ae", root / "sweep" / "a", latent_dim=3, widths=(4, 8), max_steps=2,
                      **data),
        genlab.create("noisy-classifier", root / "clf", width=8, mults=(1, 2), max_steps=2,
                      **data),
    ]  # fmt: skip
    for run in made:
        genlab.train(run, progress=False)
    genlab.create("gan", root / "pending", max_steps=2, **data)  # no checkpoint yet
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{")
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("not a run")
    return root


@pytest.fixture(scope="module")
def views(runs, tmp_path_factory) -> Views:
    return Views(Catalog(runs), tmp_path_factory.mktemp("app-out"), latent_images=200)


def test_catalog_lists_shipped_runs_and_folders_each_broken_one_with_its_error(runs):
    cat = Catalog(runs)
    names = list(cat.entries)
    assert {"vae", "ddpm", "pixelcnn", "dqn", "sweep/a", "broken", "foreign", "pending"} <= set(
        names
    )
    assert any(n.startswith("shipped/") for n in names)
    assert "not valid JSON" in cat.get("broken").error
    assert "not a genlab run directory" in cat.get("foreign").error
    assert "no weights yet" in cat.get("pending").error
    with pytest.raises(GenlabError, match="not valid JSON"):
        cat.get("broken").check()
    assert "dqn" not in cat.names(IMAGES) and "vae" in cat.names(IMAGES)
    assert "broken" not in cat.names(IMAGES, broken=False) and "broken" in cat.names(IMAGES)
    assert "vae" in cat.names(LATENT) and "sweep/a" in cat.names(LATENT)
    assert "ddpm" not in cat.names(LATENT) and "pixelcnn" not in cat.names(LATENT)
    assert cat.names(DIFFUSION, broken=False) == [
        n for n in cat.names(DIFFUSION, broken=False) if n == "ddpm" or n.startswith("shipped/")
    ]
    assert "ddpm" in cat.names(DIFFUSION) and "pixelcnn" in cat.names(STEPWISE)
    assert "dqn" in cat.names(AGENT, broken=False) and cat.get("vae").prior
    assert not cat.get("sweep/a").prior  # an autoencoder: no prior to draw z from
    for hostile in ("../etc", "/etc/passwd", str(runs / "vae"), "vae/../../x", ""):
        with pytest.raises(GenlabError, match="no run named|choose a run"):
            cat.get(hostile)
    (runs / "later").mkdir()
    try:
        assert "later" in cat.refresh().entries
    finally:
        (runs / "later").rmdir()


def test_sample_is_seeded_and_writes_a_png_with_its_metadata_in_the_app_folder(views):
    a, caption = views.sample("vae", 3, 8)
    b, _ = views.sample("vae", 3, 8)
    c, _ = views.sample("vae", 4, 8)
    assert a.parent.parent == views.out and "seed 3" in caption
    pixels = [np.asarray(Image.open(p)) for p in (a, b, c)]
    assert np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])
    with Image.open(a) as image:
        assert image.text["seed"] == "3" and image.text["run"] == "vae"
    boots, caption = views.sample("vae", 3, 8, class_name="Ankle boot")
    assert "class_name Ankle boot" in caption
    assert not np.array_equal(np.asarray(Image.open(boots)), pixels[0])
    shown = views.controls("ddpm")
    assert shown.diffusion and shown.guidance and not shown.temperature
    assert views.controls("pixelcnn").temperature
    path, caption = views.sample("ddpm", 0, 2, sampler="ddim", steps=3, guidance=2.0)
    assert path.is_file() and "guidance 2.0" in caption


def test_each_run_offers_its_own_samplers_its_default_first(views):
    assert views.controls("ddpm").samplers == ("ddim", "ddpm", "dpm")
    flow = views.controls("fm")
    assert flow.samplers == ("midpoint", "euler", "heun") and flow.steps == 3 and flow.guidance
    assert not views.controls("vae").samplers and not views.controls("vae").diffusion
    path, caption = views.sample("fm", 0, 2, sampler="heun", steps=2, guidance=2.0)
    assert path.is_file() and "heun" in caption
    with pytest.raises(GenlabError, match="this run takes euler, midpoint, heun"):
        views.sample("fm", 0, 2, sampler="ddim", steps=2)


def test_latent_directions_are_principal_axes_and_sliders_decode_along_them(views):
    space = views.space("vae")
    k = len(space.sd)
    assert torch.allclose(space.axes @ space.axes.T, torch.eye(k), atol=1e-4)
    centred = space.z - space.mean
    var = (centred @ space.axes.T).var(0)  # the variance along each axis, largest first
    assert torch.allclose(var.sqrt(), space.sd, rtol=1e-3)
    assert (space.sd[:-1] >= space.sd[1:] - 1e-6).all()
    z, label, _ = views.latent_start("vae", "test image", 5, 0)
    assert torch.allclose(torch.tensor(z), space.z[5]) and label == int(space.labels[5])
    still = views.move("vae", z, label, [0.0] * 6)
    moved = views.move("vae", z, label, [2.0, 0, 0, 0, 0, 0])
    expected = torch.tensor(z) + 2 * space.sd[0] * space.axes[0]
    assert np.array_equal(moved, views.decode("vae", expected.tolist(), label))
    assert np.array_equal(still, views.decode("vae", z, label))
    assert not np.array_equal(still, moved)
    # a click on the latent map decodes the point under it: pixel -> coordinates is linear
    image = views.latent_map("vae")
    h, w = image.shape[:2]
    x0, x1, y0, y1 = space.extent
    c = space.coords[7]
    px, py = (c[0] - x0) / (x1 - x0) * (w - 1), (y1 - c[1]) / (y1 - y0) * (h - 1)
    (c1, c2), decoded = views.map_point("vae", float(px), float(py), (w, h))
    assert math.isclose(c1, float(c[0]), abs_tol=1e-4) and math.isclose(
        c2, float(c[1]), abs_tol=1e-4
    )
    assert decoded.shape == still.shape
    with pytest.raises(GenlabError, match="latent explorer needs an ae or vae"):
        views.space("ddpm")


def test_forward_and_recorded_reverse_process(views):
    image, text = views.forward("ddpm", 0, 0)
    left, right = np.split(image.astype(float), 2, axis=1)
    assert np.abs(left - right).mean() < 8  # t = 0: x_t is x_0 up to the first step's noise
    _, text = views.forward("ddpm", 0, 999)
    assert "t = 999" in text
    frames, ts = views.reverse("ddpm", 0, 3, "Bag", 2.0, 5)
    assert len(frames) == 6 and ts[0] == 1000 and ts[-1] == -1
    assert all(f.shape == frames[0].shape for f in frames)
    with pytest.raises(GenlabError, match="not a diffusion run"):
        views.forward("vae", 0, 10)
    # classifier guidance by a noisy-classifier run of the catalog: another process
    guided, _ = views.reverse("ddpm", 0, 3, "Bag", None, 5, classifier="clf",
                              classifier_scale=20.0)  # fmt: skip
    plain, _ = views.reverse("ddpm", 0, 3, "Bag", None, 5)
    assert len(guided) == 6 and not np.array_equal(guided[-1], plain[-1])
    assert "clf" in views.catalog.names(GUIDE, broken=False)
    with pytest.raises(GenlabError, match="not a noisy-classifier run"):
        views.reverse("ddpm", 0, 3, "Bag", None, 5, classifier="vae")


def test_compare_reads_eval_records_and_sorts_by_a_metric(views, runs):
    record = {"n": 500, "metrics": {"fd": 1.0, "recall": 0.9, "precision": 0.5}}
    (runs / "vae" / "eval").mkdir(exist_ok=True)
    (runs / "vae" / "eval" / "eval-n500-seed0.json").write_text(json.dumps(record))
    rows, gallery = views.compare(["ddpm", "vae", "shipped/dcgan"], "fd")
    assert [r[0] for r in rows] == ["vae", "shipped/dcgan", "ddpm"]  # no record: last
    assert rows[0][3] == 1.0 and rows[1][2] == 10_000
    assert [name for _, name in gallery] == [r[0] for r in rows]
    rows, _ = views.compare(["shipped/dcgan", "vae"], "recall")
    assert rows[0][0] == "vae"  # recall: higher first
    # a `--features inception` record adds its FID beside genlab's FD, not in place of it
    standard = {"n": 500, "metrics": {"fd": 30.0, "fid_inception": 30.0}}
    (runs / "vae" / "eval" / "eval-n500-seed0-inception.json").write_text(json.dumps(standard))
    rows, _ = views.compare(["ddpm", "vae"], "fid_inception")
    assert rows[0][0] == "vae" and rows[0][3] == 1.0 and rows[0][4] == 30.0
    with pytest.raises(GenlabError, match="choose one or more"):
        views.compare([], "fd")


def test_pixel_by_pixel_streams_frames_until_the_image_is_written(views):
    frames = list(views.pixel_by_pixel("pixelcnn", 0, 2, 1.0, every=196))
    assert [t for _, t in frames] == [f"{k} of 784 pixels written" for k in (196, 392, 588, 784)]
    grey = [(f == 128).mean() for f, _ in frames]  # unwritten pixels are grey
    assert grey[0] > grey[-1]


def test_play_writes_a_gif_of_one_greedy_episode(views):
    path, text = views.play("dqn", 1)
    assert path.parent.parent == views.out and path.suffix == ".gif"
    with Image.open(path) as gif:
        assert gif.n_frames > 1
    assert "on CartPole-v1: return" in text
    with pytest.raises(GenlabError, match="not an agent"):
        views.play("vae")


def test_model_cache_reloads_a_run_whose_weights_changed(views, runs):
    first = views.model("sweep/a")
    assert views.model("sweep/a") is first
    weights = runs / "sweep" / "a" / "model.safetensors"
    weights.touch()
    import os

    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert views.model("sweep/a") is not first


def test_handlers_turn_any_failure_into_one_line():
    gr = pytest.importorskip("gradio")
    from genlab.app.ui import safe

    @safe
    def fails():
        raise ValueError("bad\nsecond line")

    @safe
    def streams():
        yield 1
        raise GenlabError("x.json: broken")

    with pytest.raises(gr.Error) as e:
        fails()
    assert e.value.message == "ValueError: bad"
    with pytest.raises(gr.Error) as e:
        list(streams())
    assert e.value.message == "x.json: broken"


def test_server_listens_locally_and_serves_only_its_own_files(runs, tmp_path):
    import httpx

    from genlab.app import serve

    page, views, url = serve(runs, port=0, out=tmp_path / "out", block=False)
    try:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
            assert http.get("/").status_code == 200
            path, _ = views.sample("sweep/a", 0, 4)
            assert http.get(f"/gradio_api/file={path}").status_code == 200
            secret = runs / "vae" / "config.json"
            for hostile in (
                "/etc/passwd",
                str(secret),
                f"{views.out}/../../etc/passwd",
                "../../../../etc/passwd",
                f"{views.out}/%2e%2e/%2e%2e/etc/passwd",
            ):
                response = http.get(f"/gradio_api/file={hostile}")
                assert response.status_code in (403, 404), hostile
                assert b"root:" not in response.content and b'"family"' not in response.content
    finally:
        page.close()


def test_cli_warns_off_localhost_and_a_busy_port_is_one_line(runs, tmp_path, monkeypatch, capsys):
    import socket

    import genlab.app
    from genlab.app import serve
    from genlab.cli import main

    calls = []
    monkeypatch.setattr(genlab.app, "serve", lambda *a, **k: calls.append((a, k)))
    assert main(["app", "--runs", str(runs), "--host", "0.0.0.0", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "warning: --host 0.0.0.0 serves the app to every machine" in out
    assert calls[0][0][:3] == (runs, "0.0.0.0", 0)
    assert main(["app", "--runs", str(runs)]) == 0
    assert "warning" not in capsys.readouterr().out
    assert main(["app", "--port", "70000"]) == 2
    monkeypatch.undo()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(GenlabError, match=f"--port {port}: cannot listen"):
            serve(runs, port=port, out=tmp_path / "out", block=False)


def test_a_prior_over_codes_samples_but_is_not_drawn_pixel_by_pixel():
    from genlab.app.catalog import capabilities

    assert {IMAGES, STEPWISE} <= capabilities("pixelcnn", {"vqvae": None})
    prior = capabilities("pixelcnn", {"vqvae": {"codebook_size": 8}})
    assert IMAGES in prior and STEPWISE not in prior
    assert not capabilities("vqvae", {}) & {IMAGES, LATENT}  # a grid of codes, no samples
    assert {IMAGES, LATENT} <= capabilities("glow", {})  # a flat latent, decode(encode(x)) = x
