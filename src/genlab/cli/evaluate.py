"""`genlab eval` and `genlab compare` (the library's `genlab.evaluation.scoring`)."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import (
    CLASSIFIER,
    CLASSIFIER_SCALE,
    ETA,
    GUIDANCE,
    PROGRESS,
    SAMPLER,
    SEED,
    STEPS,
    TEMPERATURE,
    echo,
    on_device,
    opt,
)
from genlab.errors import GenlabError
from genlab.options import Option

FEATURES = Option(
    "features",
    "run",
    None,
    "The feature network: a classifier run trained on the data (`genlab train classifier`), or "
    "'inception' for the standard FID (Inception-v3 from the genlab[fid] extra, clean-fid's "
    "resize).",
)
INCEPTION = Option(
    "inception_weights",
    "path",
    None,
    "Inception-v3 FID weights from a file (pytorch-fid's pt_inception-2015-12-05 file; "
    "pytorch-fid's bilinear resize).",
)
EPISODES = Option("episodes", "int", 100, "Agents: evaluation episodes (seeded, greedy).", min=1,
                  max=1_000_000)  # fmt: skip
EVAL_N = Option("n", "int", 10_000, "Samples to generate and score.", min=10, max=1_000_000)


@click.command("eval")
@click.argument("run", nargs=-1, type=click.Path(path_type=Path))
@opt(Option("images", "path", None, "Score these instead: a folder of images or a grid PNG."))
@opt(EVAL_N)
@opt(SEED)
@click.option("--json", "json_", type=click.Path(path_type=Path), default=None,
              help="Also write the record to this file.")  # fmt: skip
@opt(Option("tile", "int", None, "Grid tile side in pixels.", min=1, max=4096))
@opt(Option("padding", "int", None, "Grid border in pixels.", min=0, max=256))
@opt(Option("data", "str", "fashion-mnist", "Real data for --images: 'fashion-mnist' or a folder."))
@opt(Option("data_dir", "path", None, "Fashion-MNIST IDX directory."))
@opt(Option("size", "int", 32, "Image size for folder data.", min=4, max=1024))
@opt(Option("channels", "int", 1, "1 or 3 for folder data.", choices=(1, 3)))
@opt(FEATURES)
@opt(INCEPTION)
@opt(Option("references", "bool", True, "Score the floor and ceilings too (cached)."))
@opt(PROGRESS)
@opt(SAMPLER)
@opt(STEPS)
@opt(ETA)
@opt(GUIDANCE)
@opt(CLASSIFIER)
@opt(CLASSIFIER_SCALE)
@opt(TEMPERATURE)
@opt(EPISODES)
@opt(Option("epsilon", "float", 0.0, "Agents: exploration rate of the evaluation policy.",
            max=1.0))  # fmt: skip
@on_device
def eval_(run, images, n, seed, json_, references, episodes, epsilon, **options) -> None:
    """Score a run's samples (or --images) with every metric, next to real-data references;
    score an agent (dqn, qtable) by its return on seeded greedy episodes, and several agents'
    runs (seeds) by the interquartile mean of their returns with a 95% bootstrap interval.

    Diffusion runs take the sampling options of `genlab sample`; the record's file name then
    names them (RUN/eval/eval-n<n>-seed<s>-sampler_ddim-steps_10.json)."""
    from genlab.evaluation.agent import (
        describe_aggregate,
        describe_record,
        evaluate_agent,
        evaluate_agents,
    )
    from genlab.runs import Run, write_json

    if len(run) > 1:
        if images is not None:
            raise GenlabError("give runs or --images, not both")
        record = evaluate_agents(run, episodes, epsilon)
        echo(describe_aggregate(record))
        if json_ is not None:
            write_json(json_, record)
            echo(f"wrote {json_}")
        return
    run = run[0] if run else None
    if run is not None and images is None:
        run = Run.open(run)  # opened once, passed down
    if isinstance(run, Run) and run.family.agent:
        record, where = evaluate_agent(run, episodes, epsilon)
        echo(describe_record(record))
        if json_ is not None:
            write_json(json_, record)
        echo(f"wrote {json_ or where}")
        return
    from genlab.evaluation.evaluate import EvalConfig
    from genlab.evaluation.report import eval_table
    from genlab.evaluation.scoring import evaluate

    config = EvalConfig(n=n, seed=seed, references=references)
    if run is not None:  # the options of --images are not the run's
        for key in ("tile", "padding", "data", "data_dir", "size", "channels"):
            options.pop(key)
    record, where = evaluate(run, images, config, **options)
    echo(eval_table(record))
    if json_ is not None:
        write_json(json_, record)
        where = json_
    if where is not None:
        echo(f"wrote {where}")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@opt(EVAL_N)
@opt(SEED)
@click.option("--html", type=click.Path(path_type=Path), default=Path("compare.html"),
              show_default=True, help="The HTML page to write.")  # fmt: skip
@opt(Option("fresh", "bool", False, "Evaluate again even where a run has a current record."))
@opt(FEATURES)
@opt(INCEPTION)
@opt(PROGRESS)
@on_device
def compare(runs, n, seed, html: Path, **options) -> None:
    """Rank runs on the same metrics: a table here and an HTML page with their samples."""
    from genlab.atomic import atomic_path
    from genlab.evaluation.evaluate import EvalConfig
    from genlab.evaluation.report import compare_html, compare_table
    from genlab.evaluation.scoring import compare as rank

    ranking = rank(list(runs), EvalConfig(n=n, seed=seed), **options)
    for run in ranking.reused:
        echo(f"{run}: using its current record (--fresh evaluates again)")
    echo(compare_table(ranking.records))
    html.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(html) as tmp:
        tmp.write_text(compare_html(ranking.records, ranking.grids))
    echo(f"wrote {html}")


@click.command("nfe-sweep")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@opt(Option("n", "int", 1000, "Samples per point.", min=10, max=1_000_000))
@opt(SEED)
@opt(Option("nfe", "ints", (1, 2, 4, 8, 16, 32, 64), "Network evaluations per sample to try.",
            min=1, max=100_000))  # fmt: skip
@opt(Option("sampler", "str", None,
            "The solver of every run (default: euler for flow matching, ddim for diffusion).",
            choices=("euler", "midpoint", "heun", "ddim", "dpm")))  # fmt: skip
@opt(GUIDANCE)
@click.option("--out", type=click.Path(path_type=Path), default=Path("nfe_sweep.png"),
              show_default=True, help="The plot to write (PNG).")  # fmt: skip
@click.option("--json", "json_", type=click.Path(path_type=Path), default=None,
              help="Also write the points to this file.")  # fmt: skip
@opt(PROGRESS)
@on_device
def nfe_sweep(runs, n, seed, nfe, sampler, guidance, out: Path, json_, progress) -> None:
    """FD against network evaluations per sample for diffusion and flow-matching runs, on one
    plot: DDIM for diffusion, Euler for flow matching, at NFE 1, 2, 4, ..., 64."""
    from genlab.evaluation.evaluate import EvalConfig
    from genlab.evaluation.nfe import nfe_sweep as sweep
    from genlab.evaluation.nfe import plot_nfe_sweep, sweep_table
    from genlab.runs import write_json

    config = EvalConfig(n=n, seed=seed, references=False, memorisation=False)
    points = sweep(list(runs), nfe, config, sampler=sampler, guidance=guidance,
                   progress=progress)  # fmt: skip
    echo(sweep_table(points))
    echo(f"wrote {plot_nfe_sweep(points, out, n)}")
    if json_ is not None:
        write_json(json_, {"n": n, "seed": seed, "points": [p._asdict() for p in points]})
        echo(f"wrote {json_}")


COMMANDS = [eval_, compare, nfe_sweep]
