"""GPU check: every family of the registry trains on CUDA, resumes, samples and is evaluated.

For each family: a run of its default model (bf16 autocast where the GPU has it) trains
`--steps` steps in two halves (the second resumes from the first's checkpoint), then draws
`--samples` samples and (generative families) is scored by `genlab eval` on `--eval-n`
samples. Printed per family: training images/s (of the resumed half), milliseconds per step,
FLOPs of one step (counted by torch's FlopCounterMode on the family's own step: forward,
backward, every player) and the fraction of the GPU's dense bf16 peak that reached, the
sampling time and the FD. One command, a few minutes on an H100/H200:

    python bench/gpu_check.py                      # --steps 300; results/gpu_check.json
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
}
"""Every image family (the agents, dqn and qtable, train on environments: bench/dqn_cartpole.py)."""


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


def step_flops(run: Path, cpu: bool) -> tuple[float, int]:
    """FLOPs of one training step of a run (all players), counted on the family's step, and
    the images one step reads."""
    from torch.utils.flop_counter import FlopCounterMode

    engine, step, _ = build(run, cpu=cpu)
    step(0, 0.0)  # warm-up: lazy initialisations are not the step's work
    with FlopCounterMode(display=False) as counter:
        step(1, 0.0)
    return float(counter.get_total_flops()), step.units_per_step


def check(family: str, options: dict, work: Path, args, peak: float | None) -> dict:
    run = work / family
    cpu = args.cpu or not torch.cuda.is_available()
    genlab.create(family, run, data_dir=args.data_dir, max_steps=args.steps,
                  sample_every=10**9, checkpoint_every=10**9, **options)  # fmt: skip
    first = genlab.train(run, stop_at=args.steps // 2, progress=False, cpu=cpu)
    second = genlab.train(run, progress=False, cpu=cpu)  # resumes from the first half
    assert (first.stopped_by, second.step) == ("stop_at", args.steps), (first, second)
    flops, units_per_step = step_flops(run, cpu)
    steps_per_s = second.images_per_s / units_per_step
    result = {
        "family": family,
        "steps": second.step,
        "images_per_s": round(second.images_per_s, 1),
        "ms_per_step": round(1000 / steps_per_s, 2) if steps_per_s else None,
        "gflop_per_step": round(flops / 1e9, 3),
        "tflops": round(flops * steps_per_s / 1e12, 3),
        "peak_fraction": round(flops * steps_per_s / 1e12 / peak, 5) if peak else None,
    }
    model = genlab.load(run, device="cpu" if cpu else "cuda")
    if hasattr(model, "sample"):
        t = time.perf_counter()
        prompt = {"prompt": "a pair of ankle boots"} if family == "txt2img" else {}
        genlab.sample(run, args.samples, model=model, **prompt)
        result["sample_s"] = round(time.perf_counter() - t, 2)
        if args.eval_n and family != "txt2img":
            from genlab.evaluation.evaluate import EvalConfig

            record, _ = genlab.evaluate(run, config=EvalConfig(n=args.eval_n, references=False))
            result["fd"] = round(record["metrics"]["fd"], 2)
            result["modes"] = record["metrics"].get("modes_covered")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--eval-n", type=int, default=2000)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--families", default=",".join(f for f in FAMILIES if f in OPTIONS))
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--cpu", action="store_true", help="Run on the CPU (a dry run).")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for a dry run", file=sys.stderr)
        return 2
    peak, peak_text = peak_tflops(args.peak_tflops)
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    args.data_dir, real = fashion_mnist(args.data_dir, work)
    print(f"torch {torch.__version__}; {peak_text}; data: "
          f"{'Fashion-MNIST' if real else 'synthetic stand-in (FD not comparable)'}")  # fmt: skip
    families = [f for f in args.families.split(",") if f]
    needs_vae = any(OPTIONS[f].get("vae") for f in families)
    first_stage = work / "first-stage"
    if needs_vae:
        genlab.create("vae", first_stage, data_dir=args.data_dir, latent_channels=4, beta=0.1,
                      max_steps=args.steps, batch_size=256, sample_every=10**9)  # fmt: skip
        genlab.train(first_stage, progress=False, cpu=args.cpu)
    results, failed = [], []
    header = f"{'family':<17}{'img/s':>9}{'ms/step':>9}{'GFLOP/st':>10}{'TFLOP/s':>9}"
    print(header + f"{'% peak':>8}{'sample s':>9}{'FD':>8}")
    for family in families:
        options = {k: (str(first_stage) if v == "FIRST_STAGE" else v)
                   for k, v in OPTIONS[family].items()}  # fmt: skip
        try:
            r = check(family, options, work, args, peak)
        except Exception as e:  # report every family, then fail at the end
            traceback.print_exc()
            failed.append(f"{family}: {type(e).__name__}: {e}")
            continue
        results.append(r)
        share = f"{100 * r['peak_fraction']:.2f}" if r["peak_fraction"] is not None else "-"
        print(f"{family:<17}{r['images_per_s']:>9.0f}{r['ms_per_step'] or 0:>9.2f}"
              f"{r['gflop_per_step']:>10.2f}{r['tflops']:>9.2f}{share:>8}"
              f"{r.get('sample_s', '-'):>9}{r.get('fd', '-'):>8}", flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"device": peak_text, "torch": torch.__version__, "real_data": real,
              "steps": args.steps, "results": results, "failed": failed}  # fmt: skip
    (args.out / "gpu_check.json").write_text(json.dumps(record, indent=2) + "\n")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
