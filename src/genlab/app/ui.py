"""The web app's page: gradio Blocks over `Views`, one tab per way of exploring a model.

Handlers call `Views` and turn its one-line `GenlabError`s (and any other failure, as one line)
into gradio's error message, so the page never shows a traceback and keeps serving. Runs are
chosen from dropdowns whose choices are the catalog's names; gradio refuses other values.
"""

from __future__ import annotations

import functools
import inspect
import logging
import secrets
from typing import Any

import gradio as gr
import numpy as np

from genlab.app.catalog import AGENT, DIFFUSION, GUIDE, IMAGES, LATENT, STEPWISE, TEXT
from genlab.app.views import COMPARE_COLUMNS, EVERY_CLASS, NO_CLASSIFIER, Views, enlarge
from genlab.errors import GenlabError

log = logging.getLogger("genlab.app")
SAMPLERS = ["ddim", "ddpm", "dpm"]
LOSSES = ["ns", "minimax", "hinge", "wgan-gp"]
DIRECTIONS = 6
"""Sliders of the latent explorer: the first principal directions of the encoded test set."""
CSS = (
    ".genlab-pixel img { image-rendering: pixelated; width: 100% !important; height: 100% "
    "!important; object-fit: contain; } footer { display: none !important; }"
)


def _one_line(e: BaseException) -> str:
    if isinstance(e, GenlabError):
        return str(e).splitlines()[0] if str(e) else "error"
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def safe(fn):
    """Run a handler; any failure becomes one line in the page (gr.Error), logged in full."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:
                log.debug("handler failed", exc_info=True)
                raise gr.Error(_one_line(e), print_exception=False) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            log.debug("handler failed", exc_info=True)
            raise gr.Error(_one_line(e), print_exception=False) from None

    return wrapper


def _status(views: Views, name: str | None) -> str:
    """The line under a run dropdown: what the run is, or its error (never raised)."""
    if not name:
        return "No run of this kind: train one (`genlab train ...`) into the runs folder."
    try:
        return views.describe(name)
    except Exception as e:
        return f"**Error:** {_one_line(e)}"


def _first(names: list[str], views: Views, prefer: str | None = None) -> str | None:
    """`prefer` if listed, else the first run that opens without error (else the first)."""
    if prefer in names and views.catalog.get(prefer).error is None:
        return prefer
    for name in names:
        if views.catalog.get(name).error is None:
            return name
    return names[0] if names else None


def build(views: Views) -> gr.Blocks:
    """The page: header, a refresh button, and the tabs."""
    cat = views.catalog
    with gr.Blocks(title="genlab", analytics_enabled=False) as page:
        where = (
            f"runs under `{cat.runs_dir}` are listed next to them (press Refresh after training "
            "one)"
            if cat.runs_dir is not None
            else "start with `genlab app --runs DIR` to list your own runs next to them"
        )
        gr.Markdown(
            "# genlab\nTrain, sample, evaluate and explore generative models. The shipped runs "
            f"were trained by genlab's own commands; {where}."
        )
        refresh = gr.Button("Refresh runs", size="sm", elem_id="refresh")
        dropdowns: list[tuple[gr.Dropdown, Any]] = []

        # ---------------------------------------------------------------------- Sample
        with gr.Tab("Sample", elem_id="tab-sample"):
            names = cat.names(IMAGES)
            s_run = gr.Dropdown(
                names, value=_first(names, views), label="Run", elem_id="sample-run"
            )
            dropdowns.append((s_run, lambda: cat.names(IMAGES)))
            s_info = gr.Markdown(_status(views, s_run.value), elem_id="sample-info")
            with gr.Row():
                s_seed = gr.Number(0, precision=0, label="Seed", minimum=0, elem_id="sample-seed")
                s_new = gr.Button("New seed", elem_id="sample-new-seed")
                s_n = gr.Slider(1, 64, value=16, step=1, label="n", elem_id="sample-n")
            with gr.Row():
                s_class = gr.Dropdown(
                    [EVERY_CLASS], value=EVERY_CLASS, label="Class", visible=False
                )
                s_sampler = gr.Dropdown(SAMPLERS, value="ddim", label="Sampler", visible=False)
                s_steps = gr.Slider(5, 200, value=50, step=1, label="Steps", visible=False)
                s_guidance = gr.Slider(0, 8, value=3, step=0.5, label="Guidance w", visible=False)
                s_temp = gr.Slider(0.1, 2, value=1.0, step=0.05, label="Temperature", visible=False)
            s_go = gr.Button("Sample", variant="primary", elem_id="sample-go")
            s_img = gr.Image(
                label="Samples",
                height=440,
                type="filepath",
                format="png",
                interactive=False,
                elem_id="sample-image",
                elem_classes="genlab-pixel",
            )
            s_caption = gr.Markdown(elem_id="sample-caption")
            s_file = gr.File(label="PNG with its metadata (run, seed, options)")

            def sample_controls(name):
                info = _status(views, name)
                try:
                    c = views.controls(name)
                except Exception:
                    hidden = gr.update(visible=False)
                    return info, hidden, hidden, hidden, hidden, hidden
                classes = [EVERY_CLASS, *c.classes]
                return (
                    info if not c.note else f"{info}\n\n{c.note}",
                    gr.update(choices=classes, value=EVERY_CLASS, visible=bool(c.classes)),
                    gr.update(visible=c.diffusion),
                    gr.update(visible=c.diffusion),
                    gr.update(visible=c.guidance),
                    gr.update(visible=c.temperature),
                )

            controls = [s_info, s_class, s_sampler, s_steps, s_guidance, s_temp]
            s_run.change(sample_controls, s_run, controls)
            page.load(sample_controls, s_run, controls)

            @safe
            def do_sample(name, seed, n, cls, sampler, steps, guidance, temp):
                c = views.controls(name)
                path, caption = views.sample(
                    name,
                    int(seed or 0),
                    int(n),
                    cls,
                    sampler if c.diffusion else None,
                    steps if c.diffusion else None,
                    guidance if c.guidance else None,
                    temp if c.temperature else None,
                )
                return str(path), caption, str(path)

            inputs = [s_run, s_seed, s_n, s_class, s_sampler, s_steps, s_guidance, s_temp]
            s_go.click(do_sample, inputs, [s_img, s_caption, s_file])
            s_new.click(lambda: secrets.randbelow(2**31), None, s_seed).then(
                do_sample, inputs, [s_img, s_caption, s_file]
            )

        # ---------------------------------------------------------------------- Latent space
        with gr.Tab("Latent space", elem_id="tab-latent"):
            names = cat.names(LATENT)
            l_run = gr.Dropdown(
                names,
                value=_first(names, views, "shipped/vae"),
                label="Run (ae or vae)",
                elem_id="latent-run",
            )
            dropdowns.append((l_run, lambda: cat.names(LATENT)))
            l_info = gr.Markdown(_status(views, l_run.value))
            l_z = gr.State(None)
            l_label = gr.State(-1)
            with gr.Row():
                l_source = gr.Radio(
                    ["test image", "sampled z"], value="test image", label="Start from"
                )
                l_index = gr.Number(0, precision=0, label="Test image #", minimum=0)
                l_seed = gr.Number(0, precision=0, label="Seed of z", minimum=0)
                l_start = gr.Button("Start here", elem_id="latent-start")
            with gr.Row():
                with gr.Column(scale=1):
                    l_base = gr.Image(
                        label="Start", interactive=False, height=220, elem_classes="genlab-pixel"
                    )
                with gr.Column(scale=1):
                    l_moved = gr.Image(
                        label="Moved along the directions",
                        interactive=False,
                        height=220,
                        elem_id="latent-moved",
                        elem_classes="genlab-pixel",
                    )
                with gr.Column(scale=2):
                    sliders = [
                        gr.Slider(
                            -3,
                            3,
                            value=0,
                            step=0.25,
                            label=f"Direction {i + 1} (sd)",
                            elem_id=f"latent-dir{i + 1}",
                        )
                        for i in range(DIRECTIONS)
                    ]
                    l_reset = gr.Button("Reset directions", size="sm")
            gr.Markdown(
                "Directions are the principal components of 2,000 encoded test images, in units "
                "of their standard deviation. Morph and arithmetic use the chosen classes."
            )
            with gr.Row():
                l_from = gr.Dropdown([], label="From class")
                l_to = gr.Dropdown([], label="To class")
                l_morph = gr.Button("Morph")
                l_arith = gr.Button("Vector arithmetic")
            l_path = gr.Image(
                label="Path", interactive=False, height=200, elem_classes="genlab-pixel"
            )
            gr.Markdown(
                "**Latent map**: the test set on the first two directions. Click a point "
                "to decode it."
            )
            with gr.Row():
                l_map = gr.Image(
                    label="Latent map (click)", interactive=False, height=480, elem_id="latent-map"
                )
                l_clicked = gr.Image(
                    label="Decoded at the click",
                    interactive=False,
                    height=220,
                    elem_id="latent-clicked",
                    elem_classes="genlab-pixel",
                )
            l_where = gr.Markdown()

            @safe
            def latent_start(name, source, index, seed, *values):
                z, label, shown = views.latent_start(name, source, index or 0, seed or 0)
                return z, label, shown, views.move(name, z, label, values)

            @safe
            def latent_move(name, z, label, *values):
                if z is None:
                    z, label, _ = views.latent_start(name, "test image", 0, 0)
                return views.move(name, z, label, values)

            def latent_open(name):
                info = _status(views, name)
                blank = gr.update(choices=[], value=None)
                try:
                    e = views.entry(name)
                    classes = e.class_names
                    z, label, shown = views.latent_start(name, "test image", 0, 0)
                    moved = views.move(name, z, label, [0] * DIRECTIONS)
                    latent_map = views.latent_map(name)
                except Exception as e:
                    return (
                        f"**Error:** {_one_line(e)}" if "Error" not in info else info,
                        None,
                        -1,
                        None,
                        None,
                        blank,
                        blank,
                        None,
                    )
                pick = lambda i: classes[i] if len(classes) > i else None  # noqa: E731
                return (
                    info,
                    z,
                    label,
                    shown,
                    moved,
                    gr.update(choices=classes, value=pick(7)),
                    gr.update(choices=classes, value=pick(9)),
                    latent_map,
                )

            l_run.change(
                latent_open, l_run, [l_info, l_z, l_label, l_base, l_moved, l_from, l_to, l_map]
            )
            page.load(
                latent_open, l_run, [l_info, l_z, l_label, l_base, l_moved, l_from, l_to, l_map]
            )
            l_start.click(
                latent_start,
                [l_run, l_source, l_index, l_seed, *sliders],
                [l_z, l_label, l_base, l_moved],
            )
            for s in sliders:
                s.change(latent_move, [l_run, l_z, l_label, *sliders], l_moved)
            l_reset.click(lambda: [0] * DIRECTIONS, None, sliders)
            l_morph.click(
                safe(lambda name, a, b: views.morph(name, a, b, 0)), [l_run, l_from, l_to], l_path
            )
            l_arith.click(
                safe(lambda name, a, b: views.arithmetic(name, a, b, 0)),
                [l_run, l_from, l_to],
                l_path,
            )

            @safe
            def map_click(name, latent_map, evt: gr.SelectData):
                h, w = np.asarray(latent_map).shape[:2]
                (c1, c2), image = views.map_point(name, evt.index[0], evt.index[1], (w, h))
                return image, f"Decoded at ({c1:.2f}, {c2:.2f}) on directions 1 and 2."

            l_map.select(map_click, [l_run, l_map], [l_clicked, l_where])

        # ---------------------------------------------------------------------- Diffusion
        with gr.Tab("Diffusion", elem_id="tab-diffusion"):
            names = cat.names(DIFFUSION)
            d_run = gr.Dropdown(
                names,
                value=_first(names, views, "shipped/ldm"),
                label="Run (ddpm or ldm)",
                elem_id="diffusion-run",
            )
            dropdowns.append((d_run, lambda: cat.names(DIFFUSION)))
            d_info = gr.Markdown(_status(views, d_run.value))
            gr.Markdown(
                "**The forward process** q(x_t | x_0): a test image and the same image "
                "noised at step t."
            )
            with gr.Row():
                d_index = gr.Number(0, precision=0, label="Test image #", minimum=0)
                d_t = gr.Slider(0, 999, value=250, step=1, label="t", elem_id="diffusion-t")
            d_fwd = gr.Image(
                label="x_0 and x_t", interactive=False, height=220, elem_classes="genlab-pixel"
            )
            d_fwd_text = gr.Markdown()
            gr.Markdown(
                "**The reverse process**: DDIM from pure noise; every step is recorded, "
                "the step slider scrubs the recording."
            )
            with gr.Row():
                d_class = gr.Dropdown([EVERY_CLASS], value=EVERY_CLASS, label="Class")
                d_w = gr.Slider(0, 8, value=3, step=0.5, label="Classifier-free guidance w")
                d_clf = gr.Dropdown(
                    [NO_CLASSIFIER, *cat.names(GUIDE, broken=False)],
                    value=NO_CLASSIFIER,
                    label="Classifier guidance",
                )
                d_scale = gr.Slider(0, 10, value=2, step=0.5, label="Classifier scale s")
            with gr.Row():
                d_seed = gr.Number(0, precision=0, label="Seed", minimum=0)
                d_n = gr.Slider(1, 16, value=8, step=1, label="n")
                d_steps = gr.Slider(10, 100, value=50, step=1, label="DDIM steps")
                d_go = gr.Button(
                    "Run the reverse process", variant="primary", elem_id="diffusion-go"
                )
            d_frames = gr.State([])
            d_ts = gr.State([])
            d_step = gr.Slider(
                0,
                50,
                value=50,
                step=1,
                label="Step of the recording (0: noise)",
                elem_id="diffusion-step",
            )
            d_img = gr.Image(
                label="x_t",
                height=360,
                interactive=False,
                elem_id="diffusion-image",
                elem_classes="genlab-pixel",
            )
            d_step_text = gr.Markdown()

            def diffusion_open(name):
                info = _status(views, name)
                try:
                    e = views.entry(name)
                    T = int(e.config["model"].get("T", 1000))
                    classes = e.class_names if e.conditional else []
                    t = min(250, T - 1)
                    image, text = views.forward(name, 0, t)
                except Exception:
                    keep = gr.update()
                    none = gr.update(choices=[EVERY_CLASS], value=EVERY_CLASS)
                    return info, keep, none, None, ""
                return (
                    info,
                    gr.update(maximum=T - 1, value=t),
                    gr.update(choices=[EVERY_CLASS, *classes], value=EVERY_CLASS),
                    image,
                    text,
                )

            opened = [d_info, d_t, d_class, d_fwd, d_fwd_text]
            d_run.change(diffusion_open, d_run, opened)
            page.load(diffusion_open, d_run, opened)
            forward = safe(lambda name, i, t: views.forward(name, i or 0, t))
            d_t.release(forward, [d_run, d_index, d_t], [d_fwd, d_fwd_text])
            d_index.submit(forward, [d_run, d_index, d_t], [d_fwd, d_fwd_text])

            @safe
            def reverse(name, seed, n, cls, w, clf, s, steps):
                frames, ts = views.reverse(name, seed or 0, n, cls, w, steps, clf, s)
                last = len(frames) - 1
                return (
                    frames,
                    ts,
                    gr.update(maximum=last, value=last),
                    frames[-1],
                    _step_text(ts, last),
                )

            def _step_text(ts, i):
                t = ts[i]
                return (
                    "pure noise x_T" if i == 0 else "the images x_0" if t < 0 else f"x_t at t = {t}"
                )

            d_go.click(
                reverse,
                [d_run, d_seed, d_n, d_class, d_w, d_clf, d_scale, d_steps],
                [d_frames, d_ts, d_step, d_img, d_step_text],
            )

            def scrub(frames, ts, i):
                if not frames:
                    return None, "Run the reverse process first."
                i = max(0, min(int(i), len(frames) - 1))
                return frames[i], _step_text(ts, i)

            d_step.change(scrub, [d_frames, d_ts, d_step], [d_img, d_step_text])

        # ---------------------------------------------------------------------- Text to image
        with gr.Tab("Text to image", elem_id="tab-txt2img"):
            names = cat.names(TEXT)
            t_run = gr.Dropdown(
                names, value=_first(names, views, "shipped/t2i"), label="Run", elem_id="txt2img-run"
            )
            dropdowns.append((t_run, lambda: cat.names(TEXT)))
            t_info = gr.Markdown(_status(views, t_run.value))
            t_vocab = gr.Markdown()
            with gr.Row():
                t_prompt = gr.Textbox(
                    "a pair of ankle boots", label="Prompt", scale=3, elem_id="txt2img-prompt"
                )
                t_w = gr.Slider(0, 8, value=3, step=0.5, label="Guidance w")
                t_seed = gr.Number(0, precision=0, label="Seed", minimum=0)
                t_n = gr.Slider(1, 32, value=8, step=1, label="n")
            t_go = gr.Button("Draw", variant="primary", elem_id="txt2img-go")
            t_img = gr.Image(
                label="Images",
                height=360,
                type="filepath",
                format="png",
                interactive=False,
                elem_id="txt2img-image",
                elem_classes="genlab-pixel",
            )
            t_caption = gr.Markdown(elem_id="txt2img-caption")

            def t_open(name):
                try:
                    return _status(views, name), views.vocabulary(name)
                except Exception as e:
                    return _status(views, name), f"**Error:** {_one_line(e)}"

            t_run.change(t_open, t_run, [t_info, t_vocab])
            page.load(t_open, t_run, [t_info, t_vocab])

            @safe
            def t_draw(name, prompt, w, seed, n):
                path, caption = views.sample(
                    name, int(seed or 0), int(n), guidance=w, prompt=prompt, steps=50
                )
                return str(path), caption

            t_go.click(t_draw, [t_run, t_prompt, t_w, t_seed, t_n], [t_img, t_caption])
            t_prompt.submit(t_draw, [t_run, t_prompt, t_w, t_seed, t_n], [t_img, t_caption])

        # ---------------------------------------------------------------------- GAN lab
        with gr.Tab("GAN lab", elem_id="tab-ganlab"):
            gr.Markdown(
                "A small GAN learns a 2-D mixture of Gaussians, live. The background is the "
                "discriminator's output (red: it says real); green points are G(z) for a fixed "
                "batch of z; circles are the modes. Mode coverage counts the modes with their "
                "share of samples within 3 sd."
            )
            with gr.Row():
                g_data = gr.Radio(["ring", "grid"], value="ring", label="Data")
                g_loss = gr.Dropdown(LOSSES, value="ns", label="Loss")
                g_lr_g = gr.Number(2e-3, label="Learning rate of G", minimum=1e-6, maximum=1)
                g_lr_d = gr.Number(2e-3, label="Learning rate of D", minimum=1e-6, maximum=1)
                g_steps = gr.Slider(100, 10_000, value=3000, step=100, label="Steps")
                g_seed = gr.Number(0, precision=0, label="Seed", minimum=0)
            with gr.Row():
                g_start = gr.Button("Train", variant="primary", elem_id="ganlab-start")
                g_stop = gr.Button("Stop", variant="stop", elem_id="ganlab-stop")
            with gr.Row():
                g_frame = gr.Image(
                    label="Training", interactive=False, height=380, elem_id="ganlab-frame"
                )
                g_curve = gr.Image(label="Modes covered", interactive=False, height=380)
            g_text = gr.Markdown(elem_id="ganlab-text")

            @safe
            def gan_lab(data, loss, lr_g, lr_d, steps, seed):
                from genlab.toy2d import frame, toy_training

                history: list[tuple[int, int]] = []
                every = max(10, int(steps) // 60)
                for shot in toy_training(
                    data,
                    loss,
                    steps=int(steps),
                    lr=float(lr_g),
                    lr_d=float(lr_d),
                    seed=int(seed or 0),
                    snapshot_every=every,
                    n_samples=500,
                ):
                    history.append((shot.step, shot.coverage.modes_covered))
                    k = len(shot.centres)
                    d_loss, g_loss = shot.losses
                    text = (
                        f"step {shot.step} of {int(steps)}: {shot.coverage.modes_covered}/{k}"
                        f" modes, {shot.coverage.high_quality:.0%} of samples near a mode; "
                        f"loss D {d_loss:.3f}, G {g_loss:.3f}"
                    )
                    yield frame(shot), _coverage_curve(history, k, int(steps)), text

            g_event = g_start.click(
                gan_lab,
                [g_data, g_loss, g_lr_g, g_lr_d, g_steps, g_seed],
                [g_frame, g_curve, g_text],
            )
            g_stop.click(None, None, None, cancels=[g_event])

        # ---------------------------------------------------------------------- Compare
        with gr.Tab("Compare", elem_id="tab-compare"):
            names = cat.names(IMAGES, broken=False)
            c_runs = gr.Dropdown(
                names,
                value=[n for n in names if n.startswith("shipped/")][:4],
                multiselect=True,
                label="Runs",
                elem_id="compare-runs",
            )
            dropdowns.append((c_runs, lambda: cat.names(IMAGES, broken=False)))
            with gr.Row():
                c_sort = gr.Dropdown(COMPARE_COLUMNS[3:], value="fd", label="Sort by")
                c_go = gr.Button("Compare", variant="primary", elem_id="compare-go")
            gr.Markdown(
                "Metrics from each run's `genlab eval` record (shipped runs: n = 10,000); "
                "FD and KID lower is better, the rest higher. Grids: 16 samples, seed 0."
            )
            c_table = gr.Dataframe(
                headers=COMPARE_COLUMNS, interactive=False, elem_id="compare-table"
            )
            c_gallery = gr.Gallery(
                label="Samples", columns=4, height="auto", elem_classes="genlab-pixel"
            )

            @safe
            def compare(names, sort_by):
                rows, gallery = views.compare(list(names or []), sort_by)
                return rows, gallery

            c_go.click(compare, [c_runs, c_sort], [c_table, c_gallery])

        # ---------------------------------------------------------------------- PixelCNN
        with gr.Tab("PixelCNN", elem_id="tab-pixelcnn"):
            names = cat.names(STEPWISE)
            p_run = gr.Dropdown(
                names, value=_first(names, views), label="Run", elem_id="pixelcnn-run"
            )
            dropdowns.append((p_run, lambda: cat.names(STEPWISE)))
            p_info = gr.Markdown(_status(views, p_run.value))
            with gr.Row():
                p_seed = gr.Number(0, precision=0, label="Seed", minimum=0)
                p_n = gr.Slider(1, 16, value=4, step=1, label="n")
                p_temp = gr.Slider(0.1, 2, value=1.0, step=0.05, label="Temperature")
                p_go = gr.Button("Write", variant="primary", elem_id="pixelcnn-go")
                p_stop = gr.Button("Stop", variant="stop")
            p_img = gr.Image(
                label="Written so far (grey: not yet)",
                height=360,
                interactive=False,
                elem_id="pixelcnn-image",
                elem_classes="genlab-pixel",
            )
            p_text = gr.Markdown(elem_id="pixelcnn-text")

            @safe
            def pixel_by_pixel(name, seed, n, temp):
                for image, text in views.pixel_by_pixel(name, seed or 0, n, temp, every=28):
                    yield enlarge(image, 480), text

            p_event = p_go.click(pixel_by_pixel, [p_run, p_seed, p_n, p_temp], [p_img, p_text])
            p_stop.click(None, None, None, cancels=[p_event])
            p_run.change(lambda name: _status(views, name), p_run, p_info)

        # ---------------------------------------------------------------------- DQN
        with gr.Tab("DQN", elem_id="tab-dqn"):
            names = cat.names(AGENT)
            q_run = gr.Dropdown(
                names, value=_first(names, views), label="Agent run", elem_id="dqn-run"
            )
            dropdowns.append((q_run, lambda: cat.names(AGENT)))
            q_info = gr.Markdown(_status(views, q_run.value))
            with gr.Row():
                q_episode = gr.Number(0, precision=0, label="Episode (seed)", minimum=0)
                q_go = gr.Button("Play an episode", variant="primary", elem_id="dqn-go")
            q_img = gr.Image(
                label="The greedy agent", type="filepath", interactive=False, elem_id="dqn-image"
            )
            q_text = gr.Markdown(elem_id="dqn-text")

            @safe
            def play(name, episode):
                path, text = views.play(name, episode or 0)
                return str(path), text

            q_go.click(play, [q_run, q_episode], [q_img, q_text])
            q_run.change(lambda name: _status(views, name), q_run, q_info)

        # ---------------------------------------------------------------------- refresh
        def do_refresh(*current):
            cat.refresh()
            updates = []
            for (dd, names_fn), value in zip(dropdowns, current, strict=True):
                names = names_fn()
                if dd.multiselect:
                    keep = [v for v in (value or []) if v in names]
                    updates.append(gr.update(choices=names, value=keep))
                else:
                    updates.append(
                        gr.update(
                            choices=names, value=value if value in names else _first(names, views)
                        )
                    )
            return updates

        refresh.click(do_refresh, [d for d, _ in dropdowns], [d for d, _ in dropdowns])
    return page


def _coverage_curve(history: list[tuple[int, int]], k: int, steps: int) -> np.ndarray:
    """Modes covered against the step, as an image."""
    from matplotlib.figure import Figure

    from genlab.plots import figure_array

    fig = Figure(figsize=(4.5, 4.5), dpi=80, layout="constrained")
    ax = fig.subplots()
    xs, ys = zip(*history, strict=True)
    ax.plot(xs, ys, "-o", ms=2, color="C2")
    ax.set_xlim(0, steps)
    ax.set_ylim(-0.3, k + 0.3)
    ax.set_xlabel("step")
    ax.set_ylabel(f"modes covered (of {k})")
    ax.grid(alpha=0.3)
    return figure_array(fig)
