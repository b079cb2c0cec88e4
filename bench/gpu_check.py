"""GPU check: every family of the registry trains on the device, resumes, samples, is evaluated,
and its pictures and tools run there.

For each family (the Q-table is skipped: SKIPPED says why): a run of its default model (bf16
autocast where the GPU has it) trains `--steps` steps in two halves (the second resumes from the
first's checkpoint), then draws `--samples` samples and is scored by `genlab eval` on `--eval-n`
samples (an agent: the mean return of 10 greedy episodes), and its commands (COMMANDS: pictures,
nll, embed, play, ...) run through the command line with `--device`. Printed per family: the
training rate in the family's unit (images or environment steps, of the resumed half),
milliseconds per step, FLOPs of one step (torch's FlopCounterMode on the family's own step:
forward, backward, every player; an empty cell when the counter cannot follow the step) and the
fraction of the GPU's dense bf16 peak that reached, the sampling and evaluation times and the FD.
Any failure is listed at the end and makes the exit code 1.

    python bench/gpu_check.py                      # --steps 300; results/gpu_check.json
    python bench/gpu_check.py --minutes 1          # quality: 1 minute a family, eval n = 10,000
    python bench/gpu_check.py --cpu --steps 4 --samples 8 --eval-n 20   # the same, on the CPU

Needs Fashion-MNIST (the usual places, or --data-dir); without it, the synthetic stand-in of the
tests is written and used (said in the output: then FD is not comparable to the README's).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

import genlab
from genlab import devices
from genlab.families import FAMILIES
from genlab.training.engine import build

PEAK_BF16_TFLOPS = {  # dense, no sparsity, from the vendors' data sheets
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
}
OPTIONS = {  # family -> its options here (default models; batches that give a GPU some work)
    "ae": {"batch_size": 256},
    "vae": {"batch_size": 256},
    "gan": {"batch_size": 256},
    "cgan": {"batch_size": 256},
    "stylegan": {"batch_size": 128},
    "cyclegan": {"batch_size": 32, "class_a": "Sneaker", "class_b": "Ankle boot"},
    "ddpm": {"batch_size": 256, "conditional": True},
    "ldm": {"batch_size": 256, "conditional": True, "vae": "FIRST_STAGE"},
    "txt2img": {"batch_size": 256, "vae": "FIRST_STAGE"},
    "classifier": {"batch_size": 256},
    "noisy-classifier": {"batch_size": 256},
    "pixelcnn": {"batch_size": 256},
    "flow-matching": {"batch_size": 256, "conditional": True, "vae": "FIRST_STAGE"},
    "glow": {"batch_size": 256},
    "vqvae": {"batch_size": 256},
    "dqn": {"env": "CartPole-v1"},  # its rate counts environment steps
}
SKIPPED = {
    "qtable": "a table lookup per environment step: no tensor work for a device "
    "(genlab train qtable runs on the CPU)",
}
COMMANDS = {  # family -> the commands (beyond sample and eval) checked on the device
    "ae": [["reconstruct", "RUN"], ["interpolate", "RUN"], ["latent-map", "RUN", "--n", "500"]],
    "vae": [["reconstruct", "RUN"], ["interpolate", "RUN"], ["walk", "RUN"],
            ["morph", "RUN", "--from", "Sneaker", "--to", "Ankle boot"],
            ["arithmetic", "RUN", "--from", "Sneaker", "--to", "Ankle boot"],
            ["latent-map", "RUN", "--n", "500"], ["nll", "RUN", "--n", "64", "--k", "8"],
            ["embed", "RUN", "--out", "OUT.csv"]],
    "gan": [["interpolate", "RUN"], ["gan-gradients", "RUN"]],
    "cgan": [["sample", "RUN", "--n", "16", "--class", "Bag"]],
    "stylegan": [["style-mix", "RUN"], ["truncation", "RUN"], ["noise-variation", "RUN"],
                 ["path-length", "RUN", "--n", "50"]],
    "ddpm": [["forward", "RUN"], ["denoise", "RUN", "--n", "8", "--steps", "10"],
             ["guidance", "RUN", "--steps", "10"], ["nll", "RUN", "--n", "64"],
             ["sample", "RUN", "--n", "16", "--sampler", "dpm", "--steps", "10"]],
    "ldm": [["forward", "RUN"], ["denoise", "RUN", "--n", "8", "--steps", "10"],
            ["guidance", "RUN", "--steps", "10"]],
    "txt2img": [["txt2img", "RUN", "a pair of ankle boots", "--n", "8", "--steps", "10"]],
    "pixelcnn": [["complete", "RUN", "--n", "2", "--samples", "2"],
                 ["pixel-order", "RUN", "--n", "4", "--frames", "4"],
                 ["nll", "RUN", "--n", "64"]],
    "flow-matching": [["sample", "RUN", "--n", "16", "--sampler", "heun", "--steps", "4",
                       "--guidance", "2"],
                      ["nfe-sweep", "RUN", "--n", "64", "--nfe", "1,4", "--out", "OUT.png"]],
    "glow": [["nll", "RUN", "--n", "64"], ["interpolate", "RUN"],
             ["sample", "RUN", "--n", "16", "--temperature", "1.0"]],
    "vqvae": [["reconstruct", "RUN"], ["codebook", "RUN", "--out", "OUT.png"]],
    "dqn": [["play", "RUN", "--episodes", "1", "--out", "OUT.gif"], ["q-values", "RUN"]],
}  # fmt: skip
"""Every family of the registry is benched but the Q-table (SKIPPED says why)."""


def peak_tflops(override: float | None) -> tuple[float | None, str]:
    if override:
        return override, f"{override:g} TFLOP/s (given)"
    if not torch.cuda.is_available():
        return None, "no GPU: no peak"
    name = torch.cuda.get_device_name()
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value, f"{name}: {value:g} TFLOP/s dense bf16"
    return None, f"{name}: peak unknown (pass --peak-tflops)"


def fashion_mnist(data_dir: Path | None, work: Path) -> tuple[Path | None, bool]:
    """The IDX directory to use, and whether it is the real data set."""
    from genlab.data.fashion_mnist import find_data_dir

    try:
        return find_data_dir(str(data_dir) if data_dir else None), True
    except genlab.GenlabError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from helpers import write_fashion_mnist

        return write_fashion_mnist(work / "synthetic", 6000, 1000), False


def step_flops(step) -> tuple[float | None, str]:
    """FLOPs of one training step (all players), counted on the family's built step; None and
    the reason when torch's counter cannot follow the step (the row keeps its other cells)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        step(0, 0.0)  # warm-up: lazy initialisations are not the step's work
        with FlopCounterMode(display=False) as counter:
            step(1, 0.0)
    except Exception as e:  # e.g. "Expected gradient function to be set" under the counter
        return None, f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"
    return float(counter.get_total_flops()), ""


def accepted(family: str, values: dict) -> dict:
    """The values `genlab train FAMILY` offers an option for (an agent has no data options)."""
    from genlab.training import options_of

    known = options_of(FAMILIES[family])
    return {k: v for k, v in values.items() if k in known}


def train_run(family: str, options: dict, work: Path, args) -> tuple[Path, object]:
    """The family's run trained on the device: --steps in two halves (the second resumes the
    first), or --minutes in one go; returns the run and the result of the (last) call."""
    run = work / family
    budget = {"max_minutes": args.minutes} if args.minutes else {"max_steps": args.steps}
    shared = {"data_dir": args.data_dir, "sample_every": 10**9, "checkpoint_every": 10**9}
    genlab.create(family, run, **accepted(family, {**shared, **budget, **options}))
    if args.minutes:
        return run, genlab.train(run, progress=False, device=args.device)
    first = genlab.train(run, stop_at=args.steps // 2, progress=False, device=args.device)
    second = genlab.train(run, progress=False, device=args.device)  # resumes the first half
    assert (first.stopped_by, second.step) == ("stop_at", args.steps), (first, second)
    return run, second


def run_commands(family: str, run: Path, work: Path, device: str) -> tuple[dict, list[str]]:
    """The family's pictures and tools (COMMANDS) on the device, through the command line:
    seconds per command, and the ones that failed."""
    from genlab.cli import main as cli

    seconds, failed = {}, []
    for i, template in enumerate(COMMANDS.get(family, [])):
        out = work / f"{family}-{i}"
        argv = [str(run) if a == "RUN" else str(out) + a[3:] if a.startswith("OUT") else a
                for a in template]  # fmt: skip
        if "--out" not in argv and template[0] != "nll":  # nll prints its figures
            argv += ["--out", f"{out}.png"]
        t = time.perf_counter()
        code = cli([*argv, "--device", device])
        seconds[template[0]] = round(time.perf_counter() - t, 2)
        if code != 0:
            failed.append(f"{family}: genlab {' '.join(template)} --device {device}: exit {code}")
    return seconds, failed


def quality(family: str, run: Path, args) -> dict:
    """Samples drawn on the device, then `genlab eval` (a generative family: FD and classes
    covered, with its time; an agent: the mean return of greedy episodes)."""
    from genlab.evaluation.evaluate import EvalConfig

    result = {}
    model = genlab.load(run, device=args.device)
    if FAMILIES[family].agent:
        from genlab.evaluation.agent import evaluate_agent

        record, _ = evaluate_agent(run, 10)
        return {"return": round(record["mean"], 1)}
    if not hasattr(model, "sample"):
        return result
    t = time.perf_counter()
    prompt = {"prompt": "a pair of ankle boots"} if family == "txt2img" else {}
    genlab.sample(run, args.samples, model=model, **prompt)
    result["sample_s"] = round(time.perf_counter() - t, 2)
    if args.eval_n and family != "txt2img":
        t = time.perf_counter()
        config = EvalConfig(n=args.eval_n, references=False)
        record, _ = genlab.evaluate(run, config=config, progress=False)
        result["eval_s"] = round(time.perf_counter() - t, 2)
        result["fd"] = round(record["metrics"]["fd"], 2)
        result["modes"] = record["metrics"].get("modes_covered")
    return result


def check(family: str, options: dict, work: Path, args, peak: float | None) -> dict:
    run, trained = train_run(family, options, work, args)
    _, step, _ = build(run, device=args.device)  # the family's step, as `train` runs it
    flops, why = step_flops(step)
    steps_per_s = trained.images_per_s / step.units_per_step
    result = {
        "family": family,
        "steps": trained.step,
        "unit": trained.rate_unit,
        "units_per_s": round(trained.images_per_s, 1),
        "ms_per_step": round(1000 / steps_per_s, 2) if steps_per_s else None,
        "gflop_per_step": round(flops / 1e9, 3) if flops is not None else None,
        "tflops": round(flops * steps_per_s / 1e12, 3) if flops is not None else None,
        "peak_fraction": None,
    }
    if why:
        result["flop_count_failed"] = why
    if flops is not None and peak:
        result["peak_fraction"] = round(flops * steps_per_s / 1e12 / peak, 5)
    with devices.using(args.device):
        result.update(quality(family, run, args))
        result["commands_s"], result["failed"] = run_commands(family, run, work, args.device)
    return result


def first_stage(args, work: Path, families: list[str]) -> Path | None:
    """The first-stage VAE of the latent families (ldm, txt2img), trained on the device."""
    if not any(OPTIONS[f].get("vae") for f in families):
        return None
    path = work / "first-stage"
    budget = {"max_minutes": args.minutes / 4} if args.minutes else {"max_steps": args.steps}
    genlab.create("vae", path, data_dir=args.data_dir, latent_channels=4, beta=0.1,
                  batch_size=256, sample_every=10**9, **budget)  # fmt: skip
    genlab.train(path, progress=False, device=args.device)
    return path


def missing(family: str) -> str:
    """Why a family cannot run on this machine (a package it needs is not installed), or ""."""
    if family != "txt2img":
        return ""
    from genlab.text import minilm_dir

    try:
        minilm_dir()
    except genlab.GenlabError as e:
        return str(e)
    return ""


def print_row(r: dict) -> None:
    def cell(value, width: int, form: str = "") -> str:
        return f"{'-' if value is None else format(value, form):>{width}}"

    share = 100 * r["peak_fraction"] if r["peak_fraction"] is not None else None
    print(f"{r['family']:<17}{cell(r['units_per_s'], 10, '.0f')} {r['unit'][:7]:<8}"
          f"{cell(r['ms_per_step'], 9, '.2f')}{cell(r['gflop_per_step'], 10, '.2f')}"
          f"{cell(r['tflops'], 9, '.2f')}{cell(share, 8, '.2f')}"
          f"{cell(r.get('sample_s'), 9)}{cell(r.get('eval_s'), 8)}"
          f"{cell(r.get('fd', r.get('return')), 9)}", flush=True)  # fmt: skip


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=None,
                        help="Quality mode: train each family's defaults this long on the device, "
                        "then evaluate n = 10,000 (unless --eval-n).")  # fmt: skip
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--eval-n", type=int, default=None, help="2,000 (10,000 with --minutes)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu")
    parser.add_argument("--cpu", action="store_true", help="--device cpu: a dry run.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.device = "cpu" if args.cpu else args.device
    if args.eval_n is None:
        args.eval_n = 10_000 if args.minutes else 2_000
    return args


def main() -> int:
    args = parse()
    try:
        device = devices.resolve(args.device)
    except genlab.GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if device.type == "cpu" and not args.cpu:
        print("no GPU here: run with --cpu for a dry run", file=sys.stderr)
        return 2
    args.device = str(device)
    peak, peak_text = peak_tflops(args.peak_tflops)
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    args.data_dir, real = fashion_mnist(args.data_dir, work)
    budget = f"{args.minutes:g} minutes" if args.minutes else f"{args.steps} steps"
    print(f"torch {torch.__version__}; {peak_text}; {budget} a family on {args.device}; data: "
          f"{'Fashion-MNIST' if real else 'synthetic stand-in (FD not comparable)'}")  # fmt: skip
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in OPTIONS and f not in SKIPPED]
    if unknown:
        print(f"error: no options here for {', '.join(unknown)}", file=sys.stderr)
        return 2
    stage = first_stage(args, work, [f for f in families if f in OPTIONS])
    results, failed, skipped = [], [], {}
    print(f"{'family':<17}{'rate/s':>10} {'unit':<8}{'ms/step':>9}{'GFLOP/st':>10}{'TFLOP/s':>9}"
          f"{'% peak':>8}{'sample s':>9}{'eval s':>8}{'FD/ret':>9}")  # fmt: skip
    for family in families:
        reason = SKIPPED.get(family) or missing(family)
        if reason:
            skipped[family] = reason
            print(f"{family:<17}skipped: {reason}")
            continue
        options = {k: (str(stage) if v == "FIRST_STAGE" else v)
                   for k, v in OPTIONS[family].items()}  # fmt: skip
        try:
            r = check(family, options, work, args, peak)
        except Exception as e:  # report every family, then fail at the end
            traceback.print_exc()
            failed.append(f"{family}: {type(e).__name__}: {e}")
            continue
        results.append(r)
        failed += r["failed"]
        print_row(r)
        if "flop_count_failed" in r:
            print(f"  (FLOPs not counted: {r['flop_count_failed']})")
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"device": peak_text, "on": args.device, "torch": torch.__version__,
              "real_data": real, "steps": args.steps, "minutes": args.minutes,
              "eval_n": args.eval_n, "results": results, "skipped": skipped,
              "failed": failed}  # fmt: skip
    name = "gpu_check_quality.json" if args.minutes else "gpu_check.json"
    (args.out / name).write_text(json.dumps(record, indent=2) + "\n")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
