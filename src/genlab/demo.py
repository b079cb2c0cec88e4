"""`genlab demo`: every family's pictures from the runs that ship trained with genlab, one small
model trained live to show the engine, and index.html kept up to date after every picture (a
reader can open it while the rest is drawn: it reloads itself until the demo is done).
`retrain=True` (`genlab demo --retrain`) trains every section itself instead, a few minutes each.

`run_demo(DemoConfig(...), say=print)` is the command in Python; `say` receives the progress
lines (the library prints nothing itself).
"""

from __future__ import annotations

import html
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from genlab.atomic import atomic_path
from genlab.errors import GenlabError


@dataclass(frozen=True)
class DemoConfig:
    """Attributes:
    out: the folder of the demo (runs, pictures, index.html).
    retrain: train every section for its budget below instead of copying the shipped runs
        (a demo run trained before is reused: delete it to train it again).
    live_minutes: budget of the DCGAN trained live to show the engine (0 skips it; with
        `retrain` every section trains, and this one is skipped).
    live_eval_n: samples `genlab eval` scores for the live run (0 skips its evaluation).
    minutes: training budget of the VAE (with `retrain`, or where no shipped run exists).
    gan_minutes: budget of the GAN (0 skips the GAN section).
    stylegan_minutes: budget of the StyleGAN (0 skips the StyleGAN section).
    diffusion_minutes: budget of each diffusion run: the first-stage VAE, a latent diffusion
        model and a text-to-image model (0 skips the diffusion section).
    pixelcnn_minutes: budget of the PixelCNN (0 skips the autoregressive section).
    rl_steps: environment steps of the DQN on CartPole (0 skips the reinforcement-learning
        section, which also trains a Q-table on FrozenLake).
    eval_n: samples `genlab eval` scores for a VAE and a GAN the demo trains (0 skips it;
        shipped runs show their recorded n = 10,000 evaluation).
    data_dir: the Fashion-MNIST IDX directory (None: the usual places).
    progress: show progress bars.
    """

    out: Path = Path("demo")
    retrain: bool = False
    live_minutes: float = 1.5
    live_eval_n: int = 2_000
    minutes: float = 3.0
    gan_minutes: float = 3.0
    stylegan_minutes: float = 3.0
    diffusion_minutes: float = 3.0
    pixelcnn_minutes: float = 3.0
    rl_steps: int = 30_000
    eval_n: int = 10_000
    data_dir: Path | None = None
    progress: bool = True


class Figure(NamedTuple):
    """One picture of the page: its file in the demo folder and how it was made."""

    file: str
    title: str
    caption: str
    command: str


class Trained(NamedTuple):
    """What training a demo run took (a shipped run: what training it took when shipped)."""

    run: Path
    family: str
    steps: int
    seconds: float
    provenance: dict[str, Any] | None = None  # a shipped run's record (genlab.pretrained)


@dataclass
class Section:
    """A part of the page: a heading, what was trained, the pictures, the evaluation."""

    key: str
    title: str
    intro: str
    trained: list[Trained] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None
    recorded: dict[str, Any] | None = None  # a shipped run's provenance (its n = 10,000 eval)


FIRST_STAGE = {"latent_channels": 4, "beta": 0.1}
"""The demo's latent diffusion first stage: a 4x7x7 latent, a light KL weight for sharpness."""
PROMPTS = {"boots": "a pair of ankle boots", "sweater": "a wool sweater"}
"""One prompt worded like the training captions, one never seen in training."""


# ------------------------------------------------------------------------------ training


def _stale(run: Path, first_stage: Path) -> bool:
    """Whether a latent run was made from an older first stage than the one there now."""
    from genlab.runs import checkpoint_dir

    if not (run / "config.json").is_file() or checkpoint_dir(first_stage) is None:
        return False
    return (run / "config.json").stat().st_mtime < (first_stage / "config.json").stat().st_mtime


def demo_run(
    run: Path,
    family: str,
    minutes: float | None,
    config: DemoConfig,
    say,
    retrain: bool,
    steps: int | None = None,
    shipped: str | None = None,
    **options,
) -> Trained:
    """The shipped run `shipped` copied into `run` (unless `config.retrain`), else train a demo
    run for `minutes` on Fashion-MNIST (or, for an agent, `steps` environment steps), or reuse
    the one already there."""
    from genlab.pretrained import PROVENANCE, shipped_names
    from genlab.runs import Run, checkpoint_dir, write_json
    from genlab.training import create, train
    from genlab.training.checkpoint import load_checkpoint

    if shipped is not None and not config.retrain and shipped in shipped_names():
        return _shipped_run(run, shipped, family, say)
    done = (run / "config.json").is_file() and checkpoint_dir(run) is not None
    if (run / PROVENANCE).is_file():  # a shipped copy from an earlier demo: train instead
        shutil.rmtree(run)
        done = False
    if done and not retrain:
        say(f"reusing the trained demo run {run} (delete it to train again)")
        trainer = load_checkpoint(run).trainer
        return Trained(run, family, trainer["step"], trainer["elapsed_s"])
    if run.exists():
        if not (run / "config.json").is_file() or not Run.open(run).config.get("demo"):
            raise GenlabError(f"{run}: exists and is not a demo run; choose another --out")
        shutil.rmtree(run)
    if steps is not None:
        say(f"training a {family} on {options.get('env')} for {steps} steps into {run}")
        create(family, run, max_steps=steps, **options)
    else:
        say(f"training a {family} on Fashion-MNIST for {minutes:g} minutes into {run}")
        create(family, run, data_dir=config.data_dir, max_minutes=minutes, sample_every=10**9,
               **options)  # fmt: skip
    write_json(run / "config.json", {**Run.open(run).config, "demo": True})
    result = train(run, progress=config.progress)
    say(f"trained {result.step} steps at {result.images_per_s:.0f} {result.rate_unit}/s")
    return Trained(run, family, result.step, result.elapsed_s)


def _shipped_run(run: Path, name: str, family: str, say) -> Trained:
    """The shipped run `name` in `run` (copied there unless an earlier demo did)."""
    from genlab.pretrained import PROVENANCE, find, get
    from genlab.runs import Run

    source = find(name)
    if not (run / PROVENANCE).is_file():
        if run.exists():
            if not (run / "config.json").is_file() or not Run.open(run).config.get("demo"):
                raise GenlabError(f"{run}: exists and is not a demo run; choose another --out")
            shutil.rmtree(run)  # a run an earlier `genlab demo --retrain` trained
        get(name, run)
    say(f"using the shipped run {name} ({source.summary}) in {run}")
    p = source.provenance
    return Trained(run, family, p.get("steps") or 0, p.get("train_seconds") or 0.0, p)


def _evaluate(run: Path, config: DemoConfig, say, text: str) -> dict[str, Any]:
    """`genlab eval RUN --n eval_n`, its table also written to the demo folder as `text`."""
    from genlab.evaluation.evaluate import EvalConfig
    from genlab.evaluation.report import eval_table
    from genlab.evaluation.scoring import evaluate

    say(f"evaluating {config.eval_n} samples (genlab eval {run} --n {config.eval_n})")
    record, _ = evaluate(run, config=EvalConfig(n=config.eval_n), progress=config.progress)
    table = eval_table(record)
    with atomic_path(config.out / text) as tmp:
        tmp.write_text(table + "\n")
    say(table)
    return record


# ------------------------------------------------------------------------------ sections


def _vae(config: DemoConfig, say, section: Section, write: Callable[[], None]) -> None:
    from genlab.pictures import curves, latent
    from genlab.sampling import sample, save_samples

    out, run = config.out, config.out / "run"
    trained = demo_run(run, "vae", config.minutes, config, say, False, shipped="vae")
    section.trained.append(trained)
    r = "run"
    figures = [
        ("samples.png", "Samples", "64 images decoded from z ~ N(0, I).",
         f"genlab sample {r} --n 64 --seed 0 --out samples.png",
         lambda p: save_samples(sample(run, 64), p)),
        ("reconstructions.png", "Reconstructions",
         "Test images (odd rows) and their reconstructions decode(encode(x)) (even rows).",
         f"genlab reconstruct {r} --n 32 --out reconstructions.png",
         lambda p: latent.reconstruct(run, 32).save(p)),
        ("interpolation.png", "Interpolation",
         "Spherical interpolation (slerp) between the latents of two test images, a pair a row.",
         f"genlab interpolate {r} --out interpolation.png",
         lambda p: latent.interpolate(run).save(p)),
        ("morph.png", "Morph", "A sneaker morphing into an ankle boot: real, path, real.",
         f"genlab morph {r} --from Sneaker --to 'Ankle boot' --out morph.png",
         lambda p: latent.morph(run).save(p)),
        ("arithmetic.png", "Latent vector arithmetic",
         "Each row: a sneaker, then z + s (mean z of boots - mean z of sneakers), s growing.",
         f"genlab arithmetic {r} --from Sneaker --to 'Ankle boot' --out arithmetic.png",
         lambda p: latent.arithmetic(run).save(p)),
        ("latent_map.png", "Latent map", "5,000 test images embedded and projected to 2-D (PCA).",
         f"genlab latent-map {r} --out latent_map.png", lambda p: latent.latent_map(run, p)),
        ("walk.png", "Latent walks", "One row per latent dimension, varied around a test image.",
         f"genlab walk {r} --out walk.png", lambda p: latent.walk(run).save(p)),
        ("loss.png", "Training curves", "Loss, reconstruction and KL terms, learning rate.",
         f"genlab plot {r} --out loss.png", lambda p: curves.plot(run, p)),
    ]  # fmt: skip
    conditional = out / "cvae-run"
    if _available("cvae", config):
        section.trained.append(demo_run(conditional, "vae", None, config, say, False,
                                        shipped="cvae"))  # fmt: skip
        figures += [
            ("cvae_samples.png", "A conditional VAE: one class per column",
             "decode(z, y): the same z along each row, the class y along each column.",
             "genlab sample cvae-run --n 100 --out cvae_samples.png",
             lambda p: save_samples(sample(conditional, 100), p)),
        ]  # fmt: skip
    _draw(out, section, figures, write)
    section.recorded = trained.provenance
    if config.eval_n and section.recorded is None:
        section.evaluation = _evaluate(run, config, say, "evaluation.txt")
    write()


def _available(name: str, config: DemoConfig) -> bool:
    """Whether the demo uses the shipped run `name` (not retraining, and it ships)."""
    from genlab.pretrained import shipped_names

    return not config.retrain and name in shipped_names()


def _gan(config: DemoConfig, say, section: Section, write: Callable[[], None]) -> None:
    from genlab.pictures import curves, gan, latent
    from genlab.sampling import sample, save_samples

    out, run = config.out, config.out / "gan-run"
    trained = demo_run(run, "gan", config.gan_minutes, config, say, False,
                       shipped="dcgan")  # fmt: skip
    section.trained.append(trained)
    r = "gan-run"
    figures = [
        ("gan_samples.png", "GAN samples",
         "A DCGAN (non-saturating loss) trained for a few minutes: 64 samples of G(z).",
         f"genlab sample {r} --n 64 --seed 0 --out gan_samples.png",
         lambda p: save_samples(sample(run, 64), p)),
        ("gan_interpolation.png", "GAN latent paths",
         "Slerp between random latents z of the generator (it has no encoder).",
         f"genlab interpolate {r} --out gan_interpolation.png",
         lambda p: latent.interpolate(run).save(p)),
        ("gan_curves.png", "GAN training dynamics",
         "Losses, D(x) and D(G(z)), gradient norms and the classes the samples cover.",
         f"genlab plot {r} --out gan_curves.png", lambda p: curves.plot(run, p)),
        ("gan_gradients.png", "Why the non-saturating loss",
         "The generator's gradient against D(G(z)) for both losses, with this run's points.",
         f"genlab gan-gradients {r} --out gan_gradients.png",
         lambda p: gan.gan_gradients([run], p)),
    ]  # fmt: skip
    conditional = out / "cgan-run"
    if _available("cgan", config):
        section.trained.append(demo_run(conditional, "cgan", None, config, say, False,
                                        shipped="cgan"))  # fmt: skip
        figures.append(
            ("cgan_samples.png", "A conditional GAN: one class per column",
             "G(z, y) with a projection discriminator and mode seeking: the class y along each "
             "row, a new z in every image.",
             "genlab sample cgan-run --n 100 --out cgan_samples.png",
             lambda p: save_samples(sample(conditional, 100), p)),
        )  # fmt: skip
    _draw(out, section, figures, write)
    section.recorded = trained.provenance
    if config.eval_n and section.recorded is None:
        section.evaluation = _evaluate(run, config, say, "gan_evaluation.txt")
    write()


def _stylegan(config: DemoConfig, say, section: Section, write: Callable[[], None]) -> None:
    from genlab.pictures import style
    from genlab.sampling import sample, save_samples

    out, run = config.out, config.out / "stylegan-run"
    trained = demo_run(run, "stylegan", config.stylegan_minutes, config, say, False,
                       shipped="stylegan")  # fmt: skip
    section.trained.append(trained)
    r = "stylegan-run"
    figures = [
        ("stylegan_samples.png", "StyleGAN samples",
         "64 samples of the EMA generator (psi = 1: no truncation).",
         f"genlab sample {r} --n 64 --seed 0 --out stylegan_samples.png",
         lambda p: save_samples(sample(run, 64), p)),
        ("stylegan_mix.png", "Style mixing",
         "Coarse styles (the two lowest resolutions) from each row's left image, fine styles from "
         "each column's top image.",
         f"genlab style-mix {r} --out stylegan_mix.png", lambda p: style.style_mix(run).save(p)),
        ("stylegan_truncation.png", "The truncation trick",
         "One seed per row, psi from 0 (the mean w: every row the same image) to 1.",
         f"genlab truncation {r} --out stylegan_truncation.png",
         lambda p: style.truncation(run).save(p)),
        ("stylegan_noise.png", "Noise variation",
         "One w per row with six noise draws, and the per-pixel std over 64 draws.",
         f"genlab noise-variation {r} --out stylegan_noise.png",
         lambda p: style.noise_variation(run).picture.save(p)),
        ("stylegan_zw.png", "Interpolation in z and in w",
         "The same seeds interpolated in z (upper row of each pair) and in w (lower).",
         f"genlab path-length {r} --n 200 --out stylegan_zw.png",
         lambda p: style.path_length(run, n=200).picture.save(p)),
    ]  # fmt: skip
    _draw(out, section, figures, write)
    section.recorded = trained.provenance
    write()


def _diffusion(config: DemoConfig, say, section: Section, write: Callable[[], None]) -> None:
    from genlab.models.ddpm import DIFFUSION_TRAIN
    from genlab.pictures import diffusion
    from genlab.sampling import sample, save_samples

    out, minutes = config.out, config.diffusion_minutes
    first, ldm, t2i = out / "vae-4x7x7", out / "ldm-run", out / "txt2img-run"
    if not (_available("ldm", config) and _available("t2i", config)):
        section.trained.append(demo_run(first, "vae", minutes, config, say, False,
                                        **FIRST_STAGE))  # fmt: skip
    retrain = _stale(ldm, first) or _stale(t2i, first)
    lr = DIFFUSION_TRAIN["lr"]
    latent_model = demo_run(ldm, "ldm", minutes, config, say, retrain, vae=first, lr=lr,
                            conditional=True, shipped="ldm")  # fmt: skip
    section.trained.append(latent_model)
    section.trained.append(demo_run(t2i, "txt2img", minutes, config, say, retrain, vae=first,
                                    shipped="t2i"))  # fmt: skip
    pixel = out / "ddpm-run"
    if _available("ddpm", config):
        section.trained.append(demo_run(pixel, "ddpm", None, config, say, False, shipped="ddpm"))

    def denoise(path: Path) -> None:
        frames = diffusion.denoise(ldm, 16, 20)
        frames.save_gif(out / "ldm_denoise.gif")
        frames.strip(4).save(path)

    figures = [
        ("ldm_forward.png", "The forward process",
         "Test images noised by q(x_t | x_0) from t = 0 to T - 1 (cosine schedule), here in the "
         "4x7x7 latent of the first-stage VAE and decoded: the signal fades into noise.",
         "genlab forward ldm-run --out ldm_forward.png",
         lambda p: diffusion.forward(ldm).save(p)),
        ("ldm_denoise.png", "The reverse process",
         "From pure noise x_T to images, 20 snapshots of DDIM (50 steps); the GIF "
         "ldm_denoise.gif animates 16 samples.",
         "genlab denoise ldm-run --out ldm_denoise.gif --strip ldm_denoise.png", denoise),
        ("ldm_guidance.png", "Classifier-free guidance",
         "One row per guidance weight w = 0 (unconditional), 1, 2, 4; one class per column, "
         "the same noise in every row.",
         "genlab guidance ldm-run --scales 0,1,2,4 --out ldm_guidance.png",
         lambda p: diffusion.guidance(ldm, (0, 1, 2, 4)).save(p)),
        ("ldm_samples.png", "Latent diffusion samples",
         "64 samples of the class-conditional latent diffusion model, the classes in turn.",
         "genlab sample ldm-run --n 64 --out ldm_samples.png",
         lambda p: save_samples(sample(ldm, 64), p)),
    ]  # fmt: skip
    for name, prompt in PROMPTS.items():
        figures.append((
            f"txt2img_{name}.png", f"Text to image: '{prompt}'",
            "A latent diffusion model conditioned on all-MiniLM-L6-v2 token states by "
            "cross-attention, guidance w = 3." + (
                " The captions say pullover, jumper or knitwear; the sentence encoder maps "
                "this wording near them." if name == "sweater" else ""),
            f"genlab txt2img txt2img-run '{prompt}' --out txt2img_{name}.png",
            lambda p, prompt=prompt: save_samples(sample(t2i, 16, prompt=prompt), p),
        ))  # fmt: skip
    if _available("ddpm", config):
        figures.append(
            ("ddpm_samples.png", "Diffusion in pixel space",
             "A DDPM whose UNet denoises the 28x28 images themselves (DDIM, 50 steps): slower "
             "to train than the latent model above, which diffuses 4x7x7 latents.",
             "genlab sample ddpm-run --n 64 --out ddpm_samples.png",
             lambda p: save_samples(sample(pixel, 64), p)),
        )  # fmt: skip
    _draw(out, section, figures, write)
    section.recorded = latent_model.provenance
    write()


def _pixelcnn(config: DemoConfig, say, section: Section, write: Callable[[], None]) -> None:
    from genlab.pictures import autoregressive, curves
    from genlab.sampling import sample, save_samples

    out, run = config.out, config.out / "pixelcnn-run"
    trained = demo_run(run, "pixelcnn", config.pixelcnn_minutes, config, say, False,
                       shipped="pixelcnn")  # fmt: skip
    section.trained.append(trained)
    r = "pixelcnn-run"

    def order(path: Path) -> None:
        animation = autoregressive.order(run, n=16)
        animation.save_gif(path)
        animation.strip(4).save(out / "pixelcnn_order_strip.png")

    figures = [
        ("pixelcnn_samples.png", "PixelCNN samples",
         "A gated PixelCNN (256-way softmax per pixel) after a few minutes: 64 samples drawn "
         "pixel by pixel.", f"genlab sample {r} --n 64 --seed 0 --out pixelcnn_samples.png",
         lambda p: save_samples(sample(run, 64), p)),
        ("pixelcnn_complete.png", "Completing images",
         "Each row: a test image, its top half, and five completions of the bottom half.",
         f"genlab complete {r} --out pixelcnn_complete.png",
         lambda p: autoregressive.complete(run).save(p)),
        ("pixelcnn_order.gif", "Pixel by pixel",
         "16 samples being written in raster order (grey: not yet written).",
         f"genlab pixel-order {r} --out pixelcnn_order.gif", order),
        ("pixelcnn_loss.png", "PixelCNN training curve", "Training loss in nats per pixel.",
         f"genlab plot {r} --out pixelcnn_loss.png", lambda p: curves.plot(run, p)),
    ]  # fmt: skip
    _draw(out, section, figures, write)
    section.recorded = trained.provenance
    write()


def _agent(config: DemoConfig, say, section: Section, write: Callable[[], None]) -> None:
    from genlab.evaluation.agent import describe_record, evaluate_agent
    from genlab.pictures import curves
    from genlab.pictures.agent import play, q_values

    out, run, table = config.out, config.out / "dqn-run", config.out / "qtable-run"
    agent = demo_run(run, "dqn", None, config, say, False, steps=config.rl_steps,
                     env="CartPole-v1", shipped="dqn")  # fmt: skip
    section.trained.append(agent)
    section.trained.append(demo_run(table, "qtable", None, config, say, False,
                                    steps=min(200_000, 10 * config.rl_steps),
                                    env="FrozenLake-v1"))  # fmt: skip
    say("evaluating the agent on 100 seeded greedy episodes (genlab eval dqn-run)")
    record, _ = evaluate_agent(run, 100)
    say(describe_record(record))
    section.intro += f" Greedy evaluation (genlab eval dqn-run): {describe_record(record)}."
    with atomic_path(out / "dqn_eval.txt") as tmp:
        tmp.write_text(describe_record(record) + "\n")
    figures = [
        ("dqn_play.gif", "The agent playing CartPole",
         f"Two greedy episodes of the DQN after {agent.steps} environment steps (returns "
         f"of 100 evaluation episodes: mean {record['mean']:.1f}, min {record['min']:g}).",
         "genlab play dqn-run --episodes 2 --out dqn_play.gif",
         lambda p: play(run, p, episodes=2, every=2)),
        ("dqn_curves.png", "Learning curves",
         "Training return, greedy evaluation return (mean +- std), TD loss, mean Q and epsilon "
         "against environment steps.", "genlab plot dqn-run --out dqn_curves.png",
         lambda p: curves.plot(run, p)),
        ("dqn_q_values.png", "What the network learned",
         "Q(s, a) over cart position and pole angle (velocities at 0): the value of the best "
         "action, and which action is greedy.",
         "genlab q-values dqn-run --out dqn_q_values.png", lambda p: q_values(run, p)),
        ("qtable_q_values.png", "A Q-table where a table works",
         "Tabular Q-learning on FrozenLake's 16 squares (slippery ice): max_a Q per square and "
         "the greedy action. CartPole's state is continuous: a table cannot be built for it.",
         "genlab q-values qtable-run --out qtable_q_values.png",
         lambda p: q_values(table, p)),
    ]  # fmt: skip
    _draw(out, section, figures, write)


def _live(config: DemoConfig, say, section: Section, write: Callable[[], None]) -> None:
    """A DCGAN trained now, for a minute or two: the engine at work on this machine."""
    from genlab.pictures import curves, gan
    from genlab.sampling import sample, save_samples

    out, run = config.out, config.out / "live-run"
    trained = demo_run(run, "gan", config.live_minutes, config, say, False)
    section.trained.append(trained)
    r = "live-run"
    figures = [
        ("live_samples.png", f"A DCGAN after {trained.seconds / 60:.1f} minutes on this machine",
         f"64 samples of G(z) after {trained.steps} steps; the shipped DCGAN above had 20 "
         "CPU-minutes.", f"genlab sample {r} --n 64 --seed 0 --out live_samples.png",
         lambda p: save_samples(sample(run, 64), p)),
        ("live_curves.png", "Its training dynamics",
         "Losses, D(x) and D(G(z)), gradient norms and the classes the samples cover, as logged "
         "while it trained.", f"genlab plot {r} --out live_curves.png",
         lambda p: curves.plot(run, p)),
        ("live_gradients.png", "Why the non-saturating loss",
         "The generator's gradient against D(G(z)) for both losses, with this run's points.",
         f"genlab gan-gradients {r} --out live_gradients.png",
         lambda p: gan.gan_gradients([run], p)),
    ]  # fmt: skip
    _draw(out, section, figures, write)
    if config.live_eval_n:
        section.evaluation = _evaluate(run, replace(config, eval_n=config.live_eval_n), say,
                                       "live_evaluation.txt")  # fmt: skip
        write()


def _draw(out: Path, section: Section, figures: list, write: Callable[[], None]) -> None:
    """Make each picture, add it to the section, and rewrite the page after each."""
    for file, title, caption, command, make in figures:
        make(out / file)
        section.figures.append(Figure(file, title, caption, command))
        write()


SECTIONS = (
    ("vae", "Variational autoencoder", _vae,
     "A convolutional VAE (Bernoulli decoder, 32-d latent): samples, the latent space, and its "
     "evaluation against real images."),
    ("gan", "Generative adversarial network", _gan,
     "A DCGAN with the non-saturating loss: samples, latent paths, and the training dynamics."),
    ("stylegan", "StyleGAN2", _stylegan,
     "A CPU-sized StyleGAN2: samples, style mixing, the truncation trick and the noise inputs."),
    ("diffusion", "Diffusion", _diffusion,
     "A spatial-latent VAE (4x7x7), a class-conditional latent diffusion model in its latent, "
     "and a miniature text-to-image model on a real sentence encoder."),
    ("pixelcnn", "Autoregressive: PixelCNN", _pixelcnn,
     "A gated PixelCNN: an exact likelihood, images written one pixel at a time, completions."),
    ("rl", "Reinforcement learning: Deep Q-Network", _agent,
     "A DQN (Double, 3-step returns, Polyak target) learns CartPole from its 4-number state; "
     "a Q-table learns FrozenLake, where the states can be listed."),
    ("live", "Training live", _live,
     "The sections above show runs that ship trained. This one trains a DCGAN on this machine "
     "now, for a minute or two, with the engine every family uses (bf16 where the CPU has "
     "it, atomic checkpoints, exact resume), and evaluates it."),
)  # fmt: skip


def run_demo(config: DemoConfig = DemoConfig(), say: Callable[[str], None] = lambda _: None):
    """Train, draw and evaluate every section into `config.out`; index.html is rewritten after
    every picture. Returns the path of index.html."""
    config.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    budgets = {"vae": config.minutes, "gan": config.gan_minutes,
               "stylegan": config.stylegan_minutes,
               "diffusion": config.diffusion_minutes,
               "pixelcnn": config.pixelcnn_minutes, "rl": config.rl_steps,
               "live": 0 if config.retrain else config.live_minutes}  # fmt: skip
    sections: list[Section] = []

    def write(done: bool = False) -> Path:
        return write_index(config.out, sections, time.perf_counter() - start, done)

    for key, title, make, intro in SECTIONS:
        if not budgets[key]:
            continue
        sections.append(Section(key, title, intro))
        write()
        make(config, say, sections[-1], write)
    return write(done=True)


# ------------------------------------------------------------------------------ the page

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;"
    "color:#222}img{image-rendering:pixelated;max-width:100%;border:1px solid #ddd}"
    "figure{margin:1.5em 0}code{background:#f3f3f3;padding:2px 4px}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:3px 8px;"
    "text-align:right}th:first-child,td:first-child,.l{text-align:left}"
    ".note{background:#fff6d6;padding:.5em 1em}"
)


def _img(out_dir: Path, file: str, alt: str) -> str:
    """An <img> shown at 3x (small grids), 2x or 1x (plots), by its natural width."""
    from PIL import Image

    with Image.open(out_dir / file) as image:
        width = image.size[0]
    scale = 3 if width <= 320 else 2 if width <= 480 else 1
    return (
        f"<img src='{html.escape(file)}' alt='{html.escape(alt)}' width='{width * scale}' "
        f"loading='lazy'>"
    )


def _summary(sections: list[Section]) -> str:
    rows = []
    for s in sections:
        m = (s.evaluation or {}).get("metrics", {})
        fd = f"{m['fd']:.1f}" if "fd" in m else "-"
        modes = f"{m['modes_covered']}/{m['modes_total']}" if "modes_covered" in m else "-"
        n = str((s.evaluation or {}).get("config", {}).get("n", "-")) if s.evaluation else "-"
        if s.recorded is not None and s.evaluation is None:
            r = s.recorded.get("eval", {})
            rm = r.get("metrics", {})
            fd = f"{rm['fd']:.1f}" if "fd" in rm else "-"
            covered = rm.get("modes_covered")
            modes = f"{covered}/{len(s.recorded.get('class_names', [])) or 10}" if covered else "-"
            n = f"{r.get('n', '-')} (shipped)"
        link = f"<a href='#{s.key}'>{html.escape(s.title)}</a>"
        for t in s.trained or [None]:
            what = f"{t.family} ({t.run.name})" if t else "-"
            if t is not None and t.provenance:
                what += ", shipped"
            minutes = f"{t.seconds / 60:.1f} min" if t else "-"
            steps = str(t.steps) if t else "-"
            rows.append(
                f"<tr><td>{link}</td><td class='l'>{html.escape(what)}</td><td>{minutes}</td>"
                f"<td>{steps}</td><td>{fd}</td><td>{modes}</td><td>{n}</td></tr>"
            )
            link = fd = modes = n = ""  # the section and its evaluation once
    return (
        "<table><thead><tr><th>section</th><th>family (run)</th><th>training</th><th>steps</th>"
        "<th>FD</th><th>modes</th><th>eval n</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _recorded_html(p: dict[str, Any]) -> str:
    """A shipped run's recorded evaluation and how it was trained."""
    ev = p.get("eval", {})
    m = ev.get("metrics", {})
    names = {"fd": "FD", "kid_mean": "KID", "precision": "precision", "recall": "recall",
             "coverage": "coverage", "modes_covered": "classes covered",
             "conditional_accuracy": "conditional accuracy", "mean": "mean return",
             "std": "std of the return"}  # fmt: skip
    cells = [(label, m[k]) for k, label in names.items() if m.get(k) is not None]
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in cells)
    row = "".join(f"<td>{v:.3g}</td>" if isinstance(v, float) else f"<td>{v}</td>"
                  for _, v in cells)  # fmt: skip
    sampling = ", ".join(f"{k} {v}" for k, v in ev.get("sampling", {}).items())
    commands = "<br>".join(f"<code>{html.escape(c)}</code>" for c in p.get("commands", []))
    minutes = (p.get("train_seconds") or 0) / 60
    return (
        f"<h3>Recorded evaluation</h3><table><tr>{head}</tr><tr>{row}</tr></table>"
        f"<p>The shipped run <b>{html.escape(p['name'])}</b> ({html.escape(p['summary'])}): "
        f"{p.get('steps')} steps in {minutes:.1f} minutes on {html.escape(p.get('machine', ''))}"
        f"; scored by <code>genlab eval</code> at n = {ev.get('n')}"
        + (f" ({html.escape(sampling)})" if sampling else "")
        + f" when it was shipped. Trained by<br>{commands}<br><code>genlab pretrained info "
        f"{html.escape(p['name'])}</code> has the whole record.</p>"
    )


def write_index(out_dir: Path, sections: list[Section], seconds: float, done: bool) -> Path:
    """Write out_dir/index.html: a table of contents, one summary table (family, training time,
    steps, FD and modes where measured) and every section's pictures and evaluation."""
    from genlab.evaluation.report import eval_html

    refresh = "" if done else "<meta http-equiv='refresh' content='30'>"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'>{refresh}",
        f"<title>genlab demo</title><style>{STYLE}</style></head><body>",
        "<h1>genlab demo: generative models on Fashion-MNIST, and a DQN on CartPole</h1>",
        "<p>Every section but the last uses a run that ships trained with genlab (<code>genlab "
        "pretrained list</code>); the last trains one now. <code>genlab demo --retrain</code> "
        "trains every section on this machine instead. <code>genlab app</code> explores the "
        "same runs interactively.</p>"
        if any(t.provenance for s in sections for t in s.trained)
        else "<p>Every run here was trained on this machine by this demo.</p>",
        f"<p>Wall time so far {seconds / 60:.1f} min.</p>" if not done else
        f"<p>Demo wall time {seconds / 60:.1f} min. Every picture shows the command that "
        "makes it (run from this folder).</p>",
    ]  # fmt: skip
    if not done:
        parts.append("<p class='note'>Still training: this page reloads itself.</p>")
    toc = "".join(f"<li><a href='#{s.key}'>{html.escape(s.title)}</a></li>" for s in sections)
    parts += [f"<ul>{toc}</ul>", _summary(sections)]
    for s in sections:
        parts.append(f"<h2 id='{s.key}'>{html.escape(s.title)}</h2><p>{html.escape(s.intro)}</p>")
        for f in s.figures:
            if not (out_dir / f.file).is_file():
                continue
            parts.append(
                f"<figure><h3>{html.escape(f.title)}</h3>{_img(out_dir, f.file, f.title)}"
                f"<figcaption>{html.escape(f.caption)}<br><code>{html.escape(f.command)}</code>"
                "</figcaption></figure>"
            )
        if s.recorded is not None and s.evaluation is None:
            parts.append(_recorded_html(s.recorded))
        if s.evaluation is not None:
            run = s.evaluation.get("source", {}).get("run", "")
            parts.append(
                f"<h3>Evaluation</h3>{eval_html(s.evaluation)}<p>Every metric of the samples "
                "against the test set, next to real training images (the floor) and blurred "
                "and noised ones (ceilings). <code>genlab eval "
                f"{html.escape(Path(run).name)}</code></p>"
            )
    parts.append("</body></html>\n")
    path = Path(out_dir) / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return path
