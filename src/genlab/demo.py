"""`genlab demo`: every family's pictures from the runs that ship trained with genlab, one small
model trained live to show the engine, and index.html kept up to date after every picture (a
reader can open it while the rest is drawn: it reloads itself until the demo is done).
`retrain=True` (`genlab demo --retrain`) trains every section itself instead, a few minutes each.

Each picture is a `Figure`: the `genlab` command line that draws it, run from the demo folder
and shown under the picture. `run_demo(DemoConfig(...), say=print)` is the command in Python;
`say` receives the progress lines (the library prints nothing itself) and `runner` runs the
figures' commands (by default each in a fresh `python -m genlab`). The page itself is
`genlab.demo_page`.
"""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from genlab.atomic import atomic_path
from genlab.demo_page import Figure, Section, Trained, write_index
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
        model and a text-to-image model, and of the flow-matching model in the same latent (0
        skips the diffusion and flow-matching sections).
    pixelcnn_minutes: budget of the PixelCNN (0 skips the autoregressive section).
    glow_minutes: budget of the Glow (0 skips the normalizing-flow section).
    vqvae_minutes: budget of the VQ-VAE and of its PixelCNN prior, each (0 skips the VQ-VAE
        section).
    rl_steps: environment steps of the DQN on CartPole (0 skips the reinforcement-learning
        section, which also trains a Q-table on FrozenLake).
    eval_n: samples `genlab eval` scores for a VAE and a GAN the demo trains (0 skips it;
        shipped runs show their recorded n = 10,000 evaluation); the flow-matching NFE sweep
        scores min(500, eval_n) samples a point (below 2, no sweep).
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
    glow_minutes: float = 3.0
    vqvae_minutes: float = 3.0
    rl_steps: int = 30_000
    eval_n: int = 10_000
    data_dir: Path | None = None
    progress: bool = True


Runner = Callable[[Sequence[str], Path], None]
"""Runs one `genlab` command line (without the `genlab`) in a folder."""


def run_in_subprocess(argv: Sequence[str], folder: Path) -> None:
    """A figure's command as a reader would type it: `python -m genlab ARGV` in `folder`.
    (`genlab demo` runs them in its own process instead, which saves a second of start-up a
    figure.)"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "genlab", *argv], cwd=folder, check=False)
    if done.returncode != 0:
        command = shlex.join(("genlab", *argv))
        raise GenlabError(f"{command} (in {folder}) failed with exit code {done.returncode}")


class Plan(NamedTuple):
    """What a section draws once its runs are ready: its figures, then (when `evaluate` names a
    run and `eval_n` > 0) `genlab eval` of that run, its table also written to `eval_file`."""

    figures: list[Figure]
    evaluate: Path | None = None
    eval_n: int = 0
    eval_file: str = ""


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


def _evaluate(run: Path, n: int, config: DemoConfig, say, text: str) -> dict[str, Any]:
    """`genlab eval RUN --n n`, its table also written to the demo folder as `text`."""
    from genlab.evaluation.evaluate import EvalConfig
    from genlab.evaluation.report import eval_table
    from genlab.evaluation.scoring import evaluate

    say(f"evaluating {n} samples (genlab eval {run.name} --n {n})")
    record, _ = evaluate(run, config=EvalConfig(n=n), progress=config.progress)
    table = eval_table(record)
    with atomic_path(config.out / text) as tmp:
        tmp.write_text(table + "\n")
    say(table)
    return record


# ------------------------------------------------------------------------------ sections
# Each section trains (or copies) its runs into the demo folder and returns its Plan: the
# figures as the commands that draw them, run from that folder.


def _available(name: str, config: DemoConfig) -> bool:
    """Whether the demo uses the shipped run `name` (not retraining, and it ships)."""
    from genlab.pretrained import shipped_names

    return not config.retrain and name in shipped_names()


def _also_shipped(
    config: DemoConfig, say, section: Section, name: str, family: str, figure: Figure
) -> list[Figure]:
    """A second shipped run shown by one figure (the conditional VAE and GAN, the pixel DDPM):
    copied into the folder the figure's command names, and the figure; nothing when the demo
    retrains or the run does not ship."""
    if not _available(name, config):
        return []
    run = config.out / figure.argv[1]
    section.trained.append(demo_run(run, family, None, config, say, False, shipped=name))
    return [figure]


def _vae(config: DemoConfig, say, section: Section) -> Plan:
    out, r = config.out, "run"
    trained = demo_run(out / r, "vae", config.minutes, config, say, False, shipped="vae")
    section.trained.append(trained)
    section.recorded = trained.provenance
    figures = [
        Figure("samples.png", "Samples", "64 images decoded from z ~ N(0, I).",
               ("sample", r, "--n", "64", "--seed", "0", "--out", "samples.png")),
        Figure("reconstructions.png", "Reconstructions",
               "Test images (odd rows) and their reconstructions decode(encode(x)) (even rows).",
               ("reconstruct", r, "--n", "32", "--out", "reconstructions.png")),
        Figure("interpolation.png", "Interpolation",
               "Spherical interpolation (slerp) between the latents of two test images, a pair "
               "a row.", ("interpolate", r, "--out", "interpolation.png")),
        Figure("morph.png", "Morph", "A sneaker morphing into an ankle boot: real, path, real.",
               ("morph", r, "--from", "Sneaker", "--to", "Ankle boot", "--out", "morph.png")),
        Figure("arithmetic.png", "Latent vector arithmetic",
               "Each row: a sneaker, then z + s (mean z of boots - mean z of sneakers), s "
               "growing.", ("arithmetic", r, "--from", "Sneaker", "--to", "Ankle boot",
                            "--out", "arithmetic.png")),
        Figure("latent_map.png", "Latent map",
               "5,000 test images embedded and projected to 2-D (PCA).",
               ("latent-map", r, "--out", "latent_map.png")),
        Figure("walk.png", "Latent walks",
               "One row per latent dimension, varied around a test image.",
               ("walk", r, "--out", "walk.png")),
        Figure("loss.png", "Training curves", "Loss, reconstruction and KL terms, learning rate.",
               ("plot", r, "--out", "loss.png")),
    ]  # fmt: skip
    figures += _also_shipped(config, say, section, "cvae", "vae", Figure(
        "cvae_samples.png", "A conditional VAE: one class per column",
        "decode(z, y): the same z along each row, the class y along each column.",
        ("sample", "cvae-run", "--n", "100", "--out", "cvae_samples.png"),
    ))  # fmt: skip
    evaluate = out / r if section.recorded is None else None
    return Plan(figures, evaluate, config.eval_n, "evaluation.txt")


def _gan(config: DemoConfig, say, section: Section) -> Plan:
    out, r = config.out, "gan-run"
    trained = demo_run(out / r, "gan", config.gan_minutes, config, say, False, shipped="dcgan")
    section.trained.append(trained)
    section.recorded = trained.provenance
    figures = [
        Figure("gan_samples.png", "GAN samples",
               "A DCGAN (non-saturating loss) trained for a few minutes: 64 samples of G(z).",
               ("sample", r, "--n", "64", "--seed", "0", "--out", "gan_samples.png")),
        Figure("gan_interpolation.png", "GAN latent paths",
               "Slerp between random latents z of the generator (it has no encoder).",
               ("interpolate", r, "--out", "gan_interpolation.png")),
        Figure("gan_curves.png", "GAN training dynamics",
               "Losses, D(x) and D(G(z)), gradient norms and the classes the samples cover.",
               ("plot", r, "--out", "gan_curves.png")),
        Figure("gan_gradients.png", "Why the non-saturating loss",
               "The generator's gradient against D(G(z)) for both losses, with this run's "
               "points.", ("gan-gradients", r, "--out", "gan_gradients.png")),
    ]  # fmt: skip
    figures += _also_shipped(config, say, section, "cgan", "cgan", Figure(
        "cgan_samples.png", "A conditional GAN: one class per column",
        "G(z, y) with a projection discriminator and mode seeking: the class y along each row, "
        "a new z in every image.",
        ("sample", "cgan-run", "--n", "100", "--out", "cgan_samples.png"),
    ))  # fmt: skip
    evaluate = out / r if section.recorded is None else None
    return Plan(figures, evaluate, config.eval_n, "gan_evaluation.txt")


def _stylegan(config: DemoConfig, say, section: Section) -> Plan:
    out, r = config.out, "stylegan-run"
    trained = demo_run(out / r, "stylegan", config.stylegan_minutes, config, say, False,
                       shipped="stylegan")  # fmt: skip
    section.trained.append(trained)
    section.recorded = trained.provenance
    return Plan([
        Figure("stylegan_samples.png", "StyleGAN samples",
               "64 samples of the EMA generator (psi = 1: no truncation).",
               ("sample", r, "--n", "64", "--seed", "0", "--out", "stylegan_samples.png")),
        Figure("stylegan_mix.png", "Style mixing",
               "Coarse styles (the two lowest resolutions) from each row's left image, fine "
               "styles from each column's top image.",
               ("style-mix", r, "--out", "stylegan_mix.png")),
        Figure("stylegan_truncation.png", "The truncation trick",
               "One seed per row, psi from 0 (the mean w: every row the same image) to 1.",
               ("truncation", r, "--out", "stylegan_truncation.png")),
        Figure("stylegan_noise.png", "Noise variation",
               "One w per row with six noise draws, and the per-pixel std over 64 draws.",
               ("noise-variation", r, "--out", "stylegan_noise.png")),
        Figure("stylegan_zw.png", "Interpolation in z and in w",
               "The same seeds interpolated in z (upper row of each pair) and in w (lower).",
               ("path-length", r, "--n", "200", "--out", "stylegan_zw.png")),
    ])  # fmt: skip


def _diffusion(config: DemoConfig, say, section: Section) -> Plan:
    from genlab.models.ddpm import DIFFUSION_TRAIN

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
    section.recorded = latent_model.provenance
    section.trained.append(demo_run(t2i, "txt2img", minutes, config, say, retrain, vae=first,
                                    shipped="t2i"))  # fmt: skip
    figures = [
        Figure("ldm_forward.png", "The forward process",
               "Test images noised by q(x_t | x_0) from t = 0 to T - 1 (cosine schedule), here "
               "in the 4x7x7 latent of the first-stage VAE and decoded: the signal fades into "
               "noise.", ("forward", ldm.name, "--out", "ldm_forward.png")),
        Figure("ldm_denoise.png", "The reverse process",
               "From pure noise x_T to images, 20 snapshots of DDIM (50 steps); the GIF "
               "ldm_denoise.gif animates 16 samples.",
               ("denoise", ldm.name, "--n", "16", "--frames", "20", "--out", "ldm_denoise.gif",
                "--strip", "ldm_denoise.png")),
        Figure("ldm_guidance.png", "Classifier-free guidance",
               "One row per guidance weight w = 0 (unconditional), 1, 2, 4; one class per "
               "column, the same noise in every row.",
               ("guidance", ldm.name, "--scales", "0,1,2,4", "--out", "ldm_guidance.png")),
        Figure("ldm_samples.png", "Latent diffusion samples",
               "64 samples of the class-conditional latent diffusion model, the classes in "
               "turn.", ("sample", ldm.name, "--n", "64", "--out", "ldm_samples.png")),
    ]  # fmt: skip
    for name, prompt in PROMPTS.items():
        unseen = (" The captions say pullover, jumper or knitwear; the sentence encoder maps "
                  "this wording near them.") if name == "sweater" else ""  # fmt: skip
        figures.append(Figure(
            f"txt2img_{name}.png", f"Text to image: '{prompt}'",
            "A latent diffusion model conditioned on all-MiniLM-L6-v2 token states by "
            "cross-attention, guidance w = 3." + unseen,
            ("txt2img", t2i.name, prompt, "--n", "16", "--out", f"txt2img_{name}.png"),
        ))  # fmt: skip
    return Plan(figures + _also_shipped(config, say, section, "ddpm", "ddpm", Figure(
        "ddpm_samples.png", "Diffusion in pixel space",
        "A DDPM whose UNet denoises the 28x28 images themselves (DDIM, 50 steps): slower to "
        "train than the latent model above, which diffuses 4x7x7 latents.",
        ("sample", "ddpm-run", "--n", "64", "--out", "ddpm_samples.png"),
    )))  # fmt: skip


def _flow(config: DemoConfig, say, section: Section) -> Plan:
    """Flow matching in the diffusion section's VAE latent, next to its latent diffusion model:
    samples in a few midpoint steps, and FD against the number of network evaluations."""
    from genlab.models.flow_matching import FLOW_TRAIN

    out, minutes = config.out, config.diffusion_minutes
    first, fm, ldm = out / "vae-4x7x7", out / "fm-run", out / "ldm-run"
    if not _available("fm", config) and not (first / "config.json").is_file():
        section.trained.append(demo_run(first, "vae", minutes, config, say, False,
                                        **FIRST_STAGE))  # fmt: skip
    trained = demo_run(fm, "flow-matching", minutes, config, say, _stale(fm, first), vae=first,
                       conditional=True, lr=FLOW_TRAIN["lr"], shipped="fm")  # fmt: skip
    section.trained.append(trained)
    section.recorded = trained.provenance
    figures = [
        Figure("fm_samples.png", "Flow matching in 8 network evaluations",
               "64 samples of the class-conditional flow-matching model (guidance w = 2), the "
               "ODE dx/dt = v(x, t) solved from noise at t = 1 to t = 0 in 4 midpoint steps: 8 "
               "network evaluations per image, where the diffusion model above takes 50.",
               ("sample", fm.name, "--n", "64", "--sampler", "midpoint", "--steps", "4",
                "--guidance", "2", "--out", "fm_samples.png")),
    ]  # fmt: skip
    n = min(500, config.eval_n)  # a smaller --eval-n shrinks the sweep too
    if (ldm / "config.json").is_file() and n >= 2:
        figures.append(Figure(
            "fm_nfe.png", "Why the field moved: quality against network evaluations",
            f"FD (n = {n}, guidance w = 3) of the flow-matching model sampled with Euler steps "
            "and of the latent diffusion model sampled with DDIM, at 1 to 32 network "
            "evaluations per image.",
            ("nfe-sweep", fm.name, ldm.name, "--n", str(n), "--nfe", "1,2,4,8,16,32",
             "--guidance", "3", "--out", "fm_nfe.png", "--no-progress"),
        ))  # fmt: skip
    return Plan(figures)


def _pixelcnn(config: DemoConfig, say, section: Section) -> Plan:
    out, r = config.out, "pixelcnn-run"
    trained = demo_run(out / r, "pixelcnn", config.pixelcnn_minutes, config, say, False,
                       shipped="pixelcnn")  # fmt: skip
    section.trained.append(trained)
    section.recorded = trained.provenance
    return Plan([
        Figure("pixelcnn_samples.png", "PixelCNN samples",
               "A gated PixelCNN (256-way softmax per pixel) after a few minutes: 64 samples "
               "drawn pixel by pixel.",
               ("sample", r, "--n", "64", "--seed", "0", "--out", "pixelcnn_samples.png")),
        Figure("pixelcnn_complete.png", "Completing images",
               "Each row: a test image, its top half, and five completions of the bottom half.",
               ("complete", r, "--out", "pixelcnn_complete.png")),
        Figure("pixelcnn_order.gif", "Pixel by pixel",
               "16 samples being written in raster order (grey: not yet written).",
               ("pixel-order", r, "--n", "16", "--out", "pixelcnn_order.gif",
                "--strip", "pixelcnn_order_strip.png")),
        Figure("pixelcnn_loss.png", "PixelCNN training curve", "Training loss in nats per pixel.",
               ("plot", r, "--out", "pixelcnn_loss.png")),
    ])  # fmt: skip


def _glow(config: DemoConfig, say, section: Section) -> Plan:
    out, r = config.out, "glow-run"
    trained = demo_run(out / r, "glow", config.glow_minutes, config, say, False, shipped="glow")
    section.trained.append(trained)
    section.recorded = trained.provenance
    return Plan([
        Figure("glow_samples.png", "Glow samples at temperature 0.7",
               "x = f^-1(T eps), eps ~ N(0, I), T = 0.7: the invertible network run backwards. "
               "A lower temperature trades variety for cleaner images (Kingma & Dhariwal).",
               ("sample", r, "--n", "64", "--seed", "0", "--temperature", "0.7", "--out",
                "glow_samples.png")),
        Figure("glow_samples_t1.png", "The same seeds at temperature 1",
               "The model's own density: every sample it assigns its likelihood to.",
               ("sample", r, "--n", "64", "--seed", "0", "--temperature", "1", "--out",
                "glow_samples_t1.png")),
        Figure("glow_interpolation.png", "Interpolation in an invertible latent",
               "Test images encoded exactly (decode(encode(x)) = x), their latents "
               "interpolated: the ends of each row are the real images.",
               ("interpolate", r, "--out", "glow_interpolation.png")),
    ])  # fmt: skip


def _vqvae(config: DemoConfig, say, section: Section) -> Plan:
    out, vq, prior = config.out, "vqvae-run", "vqvae-prior-run"
    minutes = config.vqvae_minutes
    first = demo_run(out / vq, "vqvae", minutes, config, say, False, shipped="vqvae")
    section.trained.append(first)
    section.recorded = first.provenance
    trained = demo_run(out / prior, "pixelcnn", minutes, config, say, _stale(out / prior, out / vq),
                       prior=out / vq, shipped="vqvae-prior")  # fmt: skip
    section.trained.append(trained)
    return Plan([
        Figure("vqvae_reconstructions.png", "Reconstructions from 49 codes",
               "Test images (odd rows) and their reconstructions (even rows): each image is "
               "kept as a 7x7 grid of code ids, each one of the codebook's vectors.",
               ("reconstruct", vq, "--n", "32", "--out", "vqvae_reconstructions.png")),
        Figure("vqvae_codebook.png", "Codebook usage",
               "How often each code is chosen over the test set, sorted: a codebook whose codes "
               "are all used (dead codes are restarted in training).",
               ("codebook", vq, "--out", "vqvae_codebook.png")),
        Figure("vqvae_samples.png", "Samples of the prior over codes",
               "A PixelCNN writes a 7x7 grid of code ids one code at a time, then the VQ-VAE's "
               "decoder turns it into an image.",
               ("sample", prior, "--n", "64", "--seed", "0", "--out", "vqvae_samples.png")),
    ])  # fmt: skip


def _agent(config: DemoConfig, say, section: Section) -> Plan:
    from genlab.evaluation.agent import describe_record, evaluate_agent

    out, r, table = config.out, "dqn-run", "qtable-run"
    agent = demo_run(out / r, "dqn", None, config, say, False, steps=config.rl_steps,
                     env="CartPole-v1", shipped="dqn")  # fmt: skip
    section.trained.append(agent)
    section.trained.append(demo_run(out / table, "qtable", None, config, say, False,
                                    steps=min(200_000, 10 * config.rl_steps),
                                    env="FrozenLake-v1"))  # fmt: skip
    say(f"evaluating the agent on 100 seeded greedy episodes (genlab eval {r})")
    record, _ = evaluate_agent(out / r, 100)
    say(describe_record(record))
    section.intro += f" Greedy evaluation (genlab eval {r}): {describe_record(record)}."
    with atomic_path(out / "dqn_eval.txt") as tmp:
        tmp.write_text(describe_record(record) + "\n")
    return Plan([
        Figure("dqn_play.gif", "The agent playing CartPole",
               f"Two greedy episodes of the DQN after {agent.steps} environment steps (returns "
               f"of 100 evaluation episodes: mean {record['mean']:.1f}, min {record['min']:g}).",
               ("play", r, "--episodes", "2", "--out", "dqn_play.gif")),
        Figure("dqn_curves.png", "Learning curves",
               "Training return, greedy evaluation return (mean +- std), TD loss, mean Q and "
               "epsilon against environment steps.", ("plot", r, "--out", "dqn_curves.png")),
        Figure("dqn_q_values.png", "What the network learned",
               "Q(s, a) over cart position and pole angle (velocities at 0): the value of the "
               "best action, and which action is greedy.",
               ("q-values", r, "--out", "dqn_q_values.png")),
        Figure("qtable_q_values.png", "A Q-table where a table works",
               "Tabular Q-learning on FrozenLake's 16 squares (slippery ice): max_a Q per square "
               "and the greedy action. CartPole's state is continuous: a table cannot be built "
               "for it.", ("q-values", table, "--out", "qtable_q_values.png")),
    ])  # fmt: skip


def _live(config: DemoConfig, say, section: Section) -> Plan:
    """A DCGAN trained now, for a minute or two: the engine at work on this machine."""
    out, r = config.out, "live-run"
    trained = demo_run(out / r, "gan", config.live_minutes, config, say, False)
    section.trained.append(trained)
    return Plan([
        Figure("live_samples.png",
               f"A DCGAN after {trained.seconds / 60:.1f} minutes on this machine",
               f"64 samples of G(z) after {trained.steps} steps; the shipped DCGAN above had 20 "
               "CPU-minutes.",
               ("sample", r, "--n", "64", "--seed", "0", "--out", "live_samples.png")),
        Figure("live_curves.png", "Its training dynamics",
               "Losses, D(x) and D(G(z)), gradient norms and the classes the samples cover, as "
               "logged while it trained.", ("plot", r, "--out", "live_curves.png")),
        Figure("live_gradients.png", "Why the non-saturating loss",
               "The generator's gradient against D(G(z)) for both losses, with this run's "
               "points.", ("gan-gradients", r, "--out", "live_gradients.png")),
    ], out / r, config.live_eval_n, "live_evaluation.txt")  # fmt: skip


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
    ("flow", "Flow matching", _flow,
     "Rectified flow in the same 4x7x7 latent: a UNet learns the velocity eps - x0 of the "
     "straight path from data to noise, and samples in a few ODE steps."),
    ("pixelcnn", "Autoregressive: PixelCNN", _pixelcnn,
     "A gated PixelCNN: an exact likelihood, images written one pixel at a time, completions."),
    ("glow", "Normalizing flow: Glow", _glow,
     "An invertible network with an exact log-likelihood (change of variables): actnorm, "
     "invertible 1x1 convolutions and affine couplings at two scales."),
    ("vqvae", "VQ-VAE and a prior over its codes", _vqvae,
     "An autoencoder with a discrete latent, a 7x7 grid of codebook entries, and a PixelCNN that "
     "writes such grids: the two stages behind DALL-E 1 and VQGAN."),
    ("rl", "Reinforcement learning: Deep Q-Network", _agent,
     "A DQN (Double, 3-step returns, Polyak target) learns CartPole from its 4-number state; "
     "a Q-table learns FrozenLake, where the states can be listed."),
    ("live", "Training live", _live,
     "The sections above show runs that ship trained. This one trains a DCGAN on this machine "
     "now, for a minute or two, with the engine every family uses (bf16 where the CPU has "
     "it, atomic checkpoints, exact resume), and evaluates it."),
)  # fmt: skip


def run_demo(
    config: DemoConfig = DemoConfig(),
    say: Callable[[str], None] = lambda _: None,
    runner: Runner = run_in_subprocess,
) -> Path:
    """Train, draw and evaluate every section into `config.out`; index.html is rewritten after
    every picture. `runner(argv, folder)` runs each figure's command. Returns index.html."""
    if config.data_dir is not None:  # the runs record it; the figures run from config.out
        config = replace(config, data_dir=Path(config.data_dir).resolve())
    config.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    budgets = {"vae": config.minutes, "gan": config.gan_minutes,
               "stylegan": config.stylegan_minutes,
               "diffusion": config.diffusion_minutes, "flow": config.diffusion_minutes,
               "pixelcnn": config.pixelcnn_minutes, "glow": config.glow_minutes,
               "vqvae": config.vqvae_minutes, "rl": config.rl_steps,
               "live": 0 if config.retrain else config.live_minutes}  # fmt: skip
    sections: list[Section] = []

    def write(done: bool = False) -> Path:
        return write_index(config.out, sections, time.perf_counter() - start, done)

    for key, title, prepare, intro in SECTIONS:
        if not budgets[key]:
            continue
        section = Section(key, title, intro)
        sections.append(section)
        write()
        plan = prepare(config, say, section)
        for figure in plan.figures:
            say(f"$ {figure.command}")
            runner(figure.argv, config.out)
            section.figures.append(figure)
            write()
        if plan.evaluate is not None and plan.eval_n:
            section.evaluation = _evaluate(plan.evaluate, plan.eval_n, config, say,
                                           plan.eval_file)  # fmt: skip
            write()
    return write(done=True)
