"""FD against the number of network evaluations (NFE): `genlab nfe-sweep RUN_A RUN_B ...`.

The picture that shows why the field moved from diffusion to flow matching: a diffusion model
sampled with DDIM and a flow-matching model sampled with Euler steps, each scored by `genlab
eval`'s FD at NFE 1, 2, 4, ..., 64, on one plot. Every point is an ordinary evaluation record
(RUN/eval/eval-n<n>-seed<s>-sampler_<s>-steps_<k>.json), so a sweep run again reuses nothing
silently but leaves the records to read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from genlab import flow
from genlab.errors import GenlabError
from genlab.evaluation.evaluate import EvalConfig, evaluate_run
from genlab.runs import Run

NFES = (1, 2, 4, 8, 16, 32, 64)
"""The evaluation budgets of the sweep."""
DEFAULT_SAMPLER = {"flow-matching": "euler"}
"""The sampler of a family's sweep, where it is not DDIM (the diffusion families')."""
EVALUATIONS_PER_STEP = {**flow.EVALUATIONS_PER_STEP, "ddim": 1, "dpmpp_2m": 1}
"""Network evaluations per step of each sampler that takes a step count."""


class NFEPoint(NamedTuple):
    """One point of the sweep: a run sampled with `sampler` in `steps` steps (`nfe` network
    evaluations), its FD and the seconds per sample."""

    run: str
    family: str
    sampler: str
    steps: int
    nfe: int
    fd: float
    seconds_per_sample: float


def nfe_sweep(
    runs: Sequence[str | os.PathLike | Run],
    nfes: Sequence[int] = NFES,
    config: EvalConfig = EvalConfig(n=1000, references=False, memorisation=False),
    *,
    sampler: str | None = None,
    guidance: float | None = None,
    progress: bool = False,
) -> list[NFEPoint]:
    """FD of each run at each NFE of `nfes`, sampled with `sampler` (default: Euler for flow
    matching, DDIM for diffusion) and classifier-free `guidance` where the run is conditional.

    A budget too small for one step of a two-evaluation solver is left out.
    """
    from genlab.samplers import sampler_named
    from genlab.sampling import sampling_options

    if not nfes or min(nfes) < 1:
        raise GenlabError("--nfe: give budgets of at least 1 network evaluation")
    points: list[NFEPoint] = []
    evaluators: dict = {}  # one per data set: the real images are embedded once
    for run in map(Run.of, runs):
        model = run.model()
        samplers = getattr(model, "SAMPLERS", None)
        if samplers is None:
            raise GenlabError(f"{run}: a {run.name} run has no sampler steps to sweep")
        name = sampler_named(sampler or DEFAULT_SAMPLER.get(run.name, "ddim"), samplers)
        if name not in EVALUATIONS_PER_STEP:
            raise GenlabError(f"--sampler {name}: takes no step count to sweep; use ddim")
        w = guidance if guidance is not None and model.config.num_classes else None
        per_step = EVALUATIONS_PER_STEP[name]
        for nfe in sorted(set(nfes)):
            steps = nfe // per_step
            if steps < 1 or steps > model.max_steps:
                continue
            described = {"sampler": name, "steps": str(steps)}
            if w is not None:
                described["w"] = str(w)
            record = evaluate_run(
                run, config, progress=progress, evaluators=evaluators, model=model,
                sample_options=sampling_options(model, name, steps, None, w), described=described,
            )  # fmt: skip
            seconds = record["seconds"]["generate"] / config.n
            fd = float(record["metrics"]["fd"])
            points.append(NFEPoint(str(run), run.name, name, steps, steps * per_step, fd, seconds))
    return points


def plot_nfe_sweep(points: Sequence[NFEPoint], out: str | os.PathLike, n: int) -> Path:
    """FD against NFE (log 2 axis), one line per run, as a PNG."""
    from matplotlib.figure import Figure

    from genlab.plots import save_figure

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    ax = fig.add_subplot()
    for run in dict.fromkeys(p.run for p in points):
        mine = [p for p in points if p.run == run]
        label = f"{Path(run).name} ({mine[0].family}, {mine[0].sampler})"
        ax.plot([p.nfe for p in mine], [p.fd for p in mine], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("network evaluations per sample (NFE)")
    ax.set_ylabel(f"FD (n = {n}), lower is better")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out, {"software": "genlab", "what": "nfe-sweep"})


def sweep_table(points: Sequence[NFEPoint]) -> str:
    """The sweep as a text table: one row per run and NFE."""
    lines = [f"{'run':<28} {'sampler':<9} {'NFE':>4} {'steps':>5} {'FD':>9} {'s/sample':>9}"]
    for p in points:
        name = Path(p.run).name[:28]
        lines.append(
            f"{name:<28} {p.sampler:<9} {p.nfe:>4} {p.steps:>5} {p.fd:>9.2f} "
            f"{p.seconds_per_sample:>9.4f}"
        )
    return "\n".join(lines)
