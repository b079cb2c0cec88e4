"""The app's tabs, in the page's order: each builds its components inside a `gr.Tab` and wires
their events to `Views`. Run dropdowns go through `RunDropdowns`, so Refresh renews them."""

from __future__ import annotations

import secrets

import gradio as gr
import numpy as np

from genlab.app.catalog import AGENT, DIFFUSION, GUIDE, IMAGES, LATENT, STEPWISE, TEXT
from genlab.app.views import COMPARE_COLUMNS, EVERY_CLASS, NO_CLASSIFIER, Views, enlarge
from genlab.app.widgets import (
    PIXEL,
    RunDropdowns,
    one_line,
    pixel_image,
    run_status,
    safe,
    whole_number,
)
from genlab.samplers import ALL_SAMPLER_NAMES

SAMPLERS = list(ALL_SAMPLER_NAMES)
"""The Sample tab's choices of sampler (each run offers its own: diffusion or flow)."""
LOSSES = ["ns", "minimax", "hinge", "wgan-gp"]
DIRECTIONS = 6
"""Sliders of the latent explorer: the first principal directions of the encoded test set."""


def sample_tab(page: gr.Blocks, views: Views, runs: RunDropdowns) -> None:
    """Samples of any run that draws images, with the options its run takes (class, sampler and
    steps, guidance, temperature), as a PNG that records them."""
    with gr.Tab("Sample", elem_id="tab-sample"):
        run = runs.add(IMAGES, "Run", "sample-run")
        info = gr.Markdown(run_status(views, run.value), elem_id="sample-info")
        with gr.Row():
            seed = whole_number("Seed", "sample-seed")
            new_seed = gr.Button("New seed", elem_id="sample-new-seed")
            n = gr.Slider(1, 64, value=16, step=1, label="n", elem_id="sample-n")
        with gr.Row():
            cls = gr.Dropdown([EVERY_CLASS], value=EVERY_CLASS, label="Class", visible=False)
            sampler = gr.Dropdown(SAMPLERS, value="ddim", label="Sampler", visible=False)
            steps = gr.Slider(1, 200, value=50, step=1, label="Steps", visible=False)
            guidance = gr.Slider(0, 8, value=3, step=0.5, label="Guidance w", visible=False)
            temp = gr.Slider(0.1, 2, value=1.0, step=0.05, label="Temperature", visible=False)
        go = gr.Button("Sample", variant="primary", elem_id="sample-go")
        image = pixel_image("Samples", 440, "sample-image", type="filepath", format="png")
        caption = gr.Markdown(elem_id="sample-caption")
        file = gr.File(label="PNG with its metadata (run, seed, options)")

        def sample_controls(name):
            info = run_status(views, name)
            try:
                c = views.controls(name)
            except Exception:
                hidden = gr.update(visible=False)
                return info, hidden, hidden, hidden, hidden, hidden
            classes = [EVERY_CLASS, *c.classes]
            return (
                info if not c.note else f"{info}\n\n{c.note}",
                gr.update(choices=classes, value=EVERY_CLASS, visible=bool(c.classes)),
                gr.update(
                    choices=list(c.samplers),
                    value=c.samplers[0] if c.samplers else None,
                    visible=c.diffusion,
                ),
                gr.update(value=c.steps or 50, visible=c.diffusion),
                gr.update(visible=c.guidance),
                gr.update(visible=c.temperature),
            )

        controls = [info, cls, sampler, steps, guidance, temp]
        run.change(sample_controls, run, controls)
        page.load(sample_controls, run, controls)

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

        inputs = [run, seed, n, cls, sampler, steps, guidance, temp]
        go.click(do_sample, inputs, [image, caption, file])
        new_seed.click(lambda: secrets.randbelow(2**31), None, seed).then(
            do_sample, inputs, [image, caption, file]
        )


def latent_tab(page: gr.Blocks, views: Views, runs: RunDropdowns) -> None:
    """An autoencoder's latent space: move a code along its principal directions, morph between
    classes, and decode any point of the test set's map."""
    with gr.Tab("Latent space", elem_id="tab-latent"):
        run = runs.add(LATENT, "Run (ae or vae)", "latent-run", prefer="shipped/vae")
        info = gr.Markdown(run_status(views, run.value))
        z_state = gr.State(None)
        label_state = gr.State(-1)
        base, moved = _latent_directions(views, run, z_state, label_state)
        pick_from, pick_to = _latent_classes(views, run)
        map_image = _latent_map(views, run)

        def latent_open(name):
            info = run_status(views, name)
            blank = gr.update(choices=[], value=None)
            try:
                e = views.entry(name)
                classes = e.class_names
                z, label, shown = views.latent_start(name, "test image", 0, 0)
                moved = views.move(name, z, label, [0] * DIRECTIONS)
                latent_map = views.latent_map(name)
            except Exception as e:
                return (
                    f"**Error:** {one_line(e)}" if "Error" not in info else info,
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

        opened = [info, z_state, label_state, base, moved, pick_from, pick_to, map_image]
        run.change(latent_open, run, opened)
        page.load(latent_open, run, opened)


def _latent_directions(
    views: Views, run: gr.Dropdown, z_state: gr.State, label_state: gr.State
) -> tuple[gr.Image, gr.Image]:
    """Where to start (a test image or a drawn z) and one slider per principal direction; returns
    the start and moved images."""
    with gr.Row():
        source = gr.Radio(["test image", "sampled z"], value="test image", label="Start from")
        index = whole_number("Test image #")
        seed = whole_number("Seed of z")
        start = gr.Button("Start here", elem_id="latent-start")
    with gr.Row():
        with gr.Column(scale=1):
            base = pixel_image("Start", 220)
        with gr.Column(scale=1):
            moved = pixel_image("Moved along the directions", 220, "latent-moved")
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
            reset = gr.Button("Reset directions", size="sm")
    gr.Markdown(
        "Directions are the principal components of 2,000 encoded test images, in units "
        "of their standard deviation. Morph and arithmetic use the chosen classes."
    )

    @safe
    def latent_start(name, source, index, seed, *values):
        z, label, shown = views.latent_start(name, source, index or 0, seed or 0)
        return z, label, shown, views.move(name, z, label, values)

    @safe
    def latent_move(name, z, label, *values):
        if z is None:
            z, label, _ = views.latent_start(name, "test image", 0, 0)
        return views.move(name, z, label, values)

    start.click(
        latent_start,
        [run, source, index, seed, *sliders],
        [z_state, label_state, base, moved],
    )
    for s in sliders:
        s.change(latent_move, [run, z_state, label_state, *sliders], moved)
    reset.click(lambda: [0] * DIRECTIONS, None, sliders)
    return base, moved


def _latent_classes(views: Views, run: gr.Dropdown) -> tuple[gr.Dropdown, gr.Dropdown]:
    """Morph and vector arithmetic between two classes; returns the two class dropdowns."""
    with gr.Row():
        pick_from = gr.Dropdown([], label="From class")
        pick_to = gr.Dropdown([], label="To class")
        morph = gr.Button("Morph")
        arithmetic = gr.Button("Vector arithmetic")
    path = pixel_image("Path", 200)
    morph.click(
        safe(lambda name, a, b: views.morph(name, a, b, 0)), [run, pick_from, pick_to], path
    )
    arithmetic.click(
        safe(lambda name, a, b: views.arithmetic(name, a, b, 0)),
        [run, pick_from, pick_to],
        path,
    )
    return pick_from, pick_to


def _latent_map(views: Views, run: gr.Dropdown) -> gr.Image:
    """The test set on the first two directions, decoded where clicked; returns the map."""
    gr.Markdown(
        "**Latent map**: the test set on the first two directions. Click a point to decode it."
    )
    with gr.Row():
        map_image = gr.Image(
            label="Latent map (click)", interactive=False, height=480, elem_id="latent-map"
        )
        clicked = pixel_image("Decoded at the click", 220, "latent-clicked")
    where = gr.Markdown()

    @safe
    def map_click(name, latent_map, evt: gr.SelectData):
        h, w = np.asarray(latent_map).shape[:2]
        (c1, c2), image = views.map_point(name, evt.index[0], evt.index[1], (w, h))
        return image, f"Decoded at ({c1:.2f}, {c2:.2f}) on directions 1 and 2."

    map_image.select(map_click, [run, map_image], [clicked, where])
    return map_image


def diffusion_tab(page: gr.Blocks, views: Views, runs: RunDropdowns) -> None:
    """A diffusion model's two processes: a test image noised at step t, and the reverse process
    recorded step by step (with classifier-free and classifier guidance)."""
    with gr.Tab("Diffusion", elem_id="tab-diffusion"):
        run = runs.add(DIFFUSION, "Run (ddpm or ldm)", "diffusion-run", prefer="shipped/ldm")
        info = gr.Markdown(run_status(views, run.value))
        t_slider, forward_image, forward_text = _diffusion_forward(views, run)
        cls = _diffusion_reverse(views, run)

        def diffusion_open(name):
            info = run_status(views, name)
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

        opened = [info, t_slider, cls, forward_image, forward_text]
        run.change(diffusion_open, run, opened)
        page.load(diffusion_open, run, opened)


def _diffusion_forward(views: Views, run: gr.Dropdown) -> tuple[gr.Slider, gr.Image, gr.Markdown]:
    """q(x_t | x_0) for a test image; returns the t slider, the image and its caption."""
    gr.Markdown(
        "**The forward process** q(x_t | x_0): a test image and the same image noised at step t."
    )
    with gr.Row():
        index = whole_number("Test image #")
        t_slider = gr.Slider(0, 999, value=250, step=1, label="t", elem_id="diffusion-t")
    image = pixel_image("x_0 and x_t", 220)
    text = gr.Markdown()
    forward = safe(lambda name, i, t: views.forward(name, i or 0, t))
    t_slider.release(forward, [run, index, t_slider], [image, text])
    index.submit(forward, [run, index, t_slider], [image, text])
    return t_slider, image, text


def _diffusion_reverse(views: Views, run: gr.Dropdown) -> gr.Dropdown:
    """DDIM from pure noise, every step recorded and scrubbed by a slider; returns the class
    dropdown (its choices are the run's classes)."""
    gr.Markdown(
        "**The reverse process**: DDIM from pure noise; every step is recorded, "
        "the step slider scrubs the recording."
    )
    with gr.Row():
        cls = gr.Dropdown([EVERY_CLASS], value=EVERY_CLASS, label="Class")
        w = gr.Slider(0, 8, value=3, step=0.5, label="Classifier-free guidance w")
        classifier = gr.Dropdown(
            [NO_CLASSIFIER, *views.catalog.names(GUIDE, broken=False)],
            value=NO_CLASSIFIER,
            label="Classifier guidance",
        )
        scale = gr.Slider(0, 10, value=2, step=0.5, label="Classifier scale s")
    with gr.Row():
        seed = whole_number("Seed")
        n = gr.Slider(1, 16, value=8, step=1, label="n")
        steps = gr.Slider(10, 100, value=50, step=1, label="DDIM steps")
        go = gr.Button("Run the reverse process", variant="primary", elem_id="diffusion-go")
    frames_state = gr.State([])
    ts_state = gr.State([])
    step = gr.Slider(
        0, 50, value=50, step=1, label="Step of the recording (0: noise)", elem_id="diffusion-step"
    )
    image = pixel_image("x_t", 360, "diffusion-image")
    step_text = gr.Markdown()

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

    go.click(
        reverse,
        [run, seed, n, cls, w, classifier, scale, steps],
        [frames_state, ts_state, step, image, step_text],
    )

    def scrub(frames, ts, i):
        if not frames:
            return None, "Run the reverse process first."
        i = max(0, min(int(i), len(frames) - 1))
        return frames[i], _step_text(ts, i)

    step.change(scrub, [frames_state, ts_state, step], [image, step_text])
    return cls


def _step_text(ts: list[int], i: int) -> str:
    """The caption of frame `i` of a recorded reverse process (`ts[i]` < 0: the final x_0)."""
    t = ts[i]
    return "pure noise x_T" if i == 0 else "the images x_0" if t < 0 else f"x_t at t = {t}"


def text_tab(page: gr.Blocks, views: Views, runs: RunDropdowns) -> None:
    """Images drawn from a prompt by a text-conditioned run, with the words it knows."""
    with gr.Tab("Text to image", elem_id="tab-txt2img"):
        run = runs.add(TEXT, "Run", "txt2img-run", prefer="shipped/t2i")
        info = gr.Markdown(run_status(views, run.value))
        vocab = gr.Markdown()
        with gr.Row():
            prompt = gr.Textbox(
                "a pair of ankle boots", label="Prompt", scale=3, elem_id="txt2img-prompt"
            )
            w = gr.Slider(0, 8, value=3, step=0.5, label="Guidance w")
            seed = whole_number("Seed")
            n = gr.Slider(1, 32, value=8, step=1, label="n")
        go = gr.Button("Draw", variant="primary", elem_id="txt2img-go")
        image = pixel_image("Images", 360, "txt2img-image", type="filepath", format="png")
        caption = gr.Markdown(elem_id="txt2img-caption")

        def t_open(name):
            try:
                return run_status(views, name), views.vocabulary(name)
            except Exception as e:
                return run_status(views, name), f"**Error:** {one_line(e)}"

        run.change(t_open, run, [info, vocab])
        page.load(t_open, run, [info, vocab])

        @safe
        def t_draw(name, prompt, w, seed, n):
            path, caption = views.sample(
                name, int(seed or 0), int(n), guidance=w, prompt=prompt, steps=50
            )
            return str(path), caption

        go.click(t_draw, [run, prompt, w, seed, n], [image, caption])
        prompt.submit(t_draw, [run, prompt, w, seed, n], [image, caption])


def gan_lab_tab() -> None:
    """A small GAN trained live on a 2-D mixture of Gaussians, its modes counted as it learns."""
    with gr.Tab("GAN lab", elem_id="tab-ganlab"):
        gr.Markdown(
            "A small GAN learns a 2-D mixture of Gaussians, live. The background is the "
            "discriminator's output (red: it says real); green points are G(z) for a fixed "
            "batch of z; circles are the modes. Mode coverage counts the modes with their "
            "share of samples within 3 sd."
        )
        with gr.Row():
            data = gr.Radio(["ring", "grid"], value="ring", label="Data")
            loss = gr.Dropdown(LOSSES, value="ns", label="Loss")
            lr_g = gr.Number(2e-3, label="Learning rate of G", minimum=1e-6, maximum=1)
            lr_d = gr.Number(2e-3, label="Learning rate of D", minimum=1e-6, maximum=1)
            steps = gr.Slider(100, 10_000, value=3000, step=100, label="Steps")
            seed = whole_number("Seed")
        with gr.Row():
            start = gr.Button("Train", variant="primary", elem_id="ganlab-start")
            stop = gr.Button("Stop", variant="stop", elem_id="ganlab-stop")
        with gr.Row():
            frame_image = gr.Image(
                label="Training", interactive=False, height=380, elem_id="ganlab-frame"
            )
            curve = gr.Image(label="Modes covered", interactive=False, height=380)
        text = gr.Markdown(elem_id="ganlab-text")

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

        training = start.click(
            gan_lab, [data, loss, lr_g, lr_d, steps, seed], [frame_image, curve, text]
        )
        stop.click(None, None, None, cancels=[training])


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


def compare_tab(views: Views, runs: RunDropdowns) -> None:
    """Several runs side by side: their evaluation metrics in a table, and a grid of each."""
    with gr.Tab("Compare", elem_id="tab-compare"):
        names = views.catalog.names(IMAGES, broken=False)
        chosen = gr.Dropdown(
            names,
            value=[n for n in names if n.startswith("shipped/")][:4],
            multiselect=True,
            label="Runs",
            elem_id="compare-runs",
        )
        runs.register(chosen, IMAGES, broken=False)
        with gr.Row():
            sort = gr.Dropdown(COMPARE_COLUMNS[3:], value="fd", label="Sort by")
            go = gr.Button("Compare", variant="primary", elem_id="compare-go")
        gr.Markdown(
            "Metrics from each run's `genlab eval` record (shipped runs: n = 10,000); "
            "FD and KID lower is better, the rest higher. Grids: 16 samples, seed 0."
        )
        table = gr.Dataframe(headers=COMPARE_COLUMNS, interactive=False, elem_id="compare-table")
        gallery = gr.Gallery(label="Samples", columns=4, height="auto", elem_classes=PIXEL)

        @safe
        def compare(names, sort_by):
            rows, gallery = views.compare(list(names or []), sort_by)
            return rows, gallery

        go.click(compare, [chosen, sort], [table, gallery])


def pixelcnn_tab(views: Views, runs: RunDropdowns) -> None:
    """An autoregressive run writing its images pixel by pixel, streamed as it goes."""
    with gr.Tab("PixelCNN", elem_id="tab-pixelcnn"):
        run = runs.add(STEPWISE, "Run", "pixelcnn-run")
        info = gr.Markdown(run_status(views, run.value))
        with gr.Row():
            seed = whole_number("Seed")
            n = gr.Slider(1, 16, value=4, step=1, label="n")
            temp = gr.Slider(0.1, 2, value=1.0, step=0.05, label="Temperature")
            go = gr.Button("Write", variant="primary", elem_id="pixelcnn-go")
            stop = gr.Button("Stop", variant="stop")
        image = pixel_image("Written so far (grey: not yet)", 360, "pixelcnn-image")
        text = gr.Markdown(elem_id="pixelcnn-text")

        @safe
        def pixel_by_pixel(name, seed, n, temp):
            for image, text in views.pixel_by_pixel(name, seed or 0, n, temp, every=28):
                yield enlarge(image, 480), text

        writing = go.click(pixel_by_pixel, [run, seed, n, temp], [image, text])
        stop.click(None, None, None, cancels=[writing])
        run.change(lambda name: run_status(views, name), run, info)


def dqn_tab(views: Views, runs: RunDropdowns) -> None:
    """An agent run playing one episode greedily, as a GIF, with its return."""
    with gr.Tab("DQN", elem_id="tab-dqn"):
        run = runs.add(AGENT, "Agent run", "dqn-run")
        info = gr.Markdown(run_status(views, run.value))
        with gr.Row():
            episode = whole_number("Episode (seed)")
            go = gr.Button("Play an episode", variant="primary", elem_id="dqn-go")
        image = gr.Image(
            label="The greedy agent", type="filepath", interactive=False, elem_id="dqn-image"
        )
        text = gr.Markdown(elem_id="dqn-text")

        @safe
        def play(name, episode):
            path, text = views.play(name, episode or 0)
            return str(path), text

        go.click(play, [run, episode], [image, text])
        run.change(lambda name: run_status(views, name), run, info)
