"""`genlab eval` and `genlab compare` in Python: score a run (with a diffusion model's sampling
options) or any images, and rank several runs on the same metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from genlab.errors import GenlabError
from genlab.evaluation.evaluate import (
    EvalConfig,
    evaluate_images,
    evaluate_run,
    record_path,
    run_step,
    sampling_tag,
)


def evaluate(
    run: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    config: EvalConfig = EvalConfig(),
    *,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    guidance: float | None = None,
    classifier: str | os.PathLike | None = None,
    classifier_scale: float = 1.0,
    temperature: float | None = None,
    features: str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    progress: bool = False,
    **image_options: Any,
) -> tuple[dict[str, Any], Path | None]:
    """Score a run's samples (or `images`: a folder or a grid PNG, with `image_options` data,
    data_dir, size, channels, tile, padding) with every metric next to real-data references.

    Returns:
        The record, and where it was written (RUN/eval/...json; None for images).
    """
    from genlab.runs import Run
    from genlab.sampling import sampling_options, temperature_option

    if (run is None) == (images is None):
        raise GenlabError("give a run directory or --images DIR_OR_GRID (one of them)")
    given = (sampler, steps, eta, guidance, classifier)
    common = {"features_run": features, "inception_weights": inception_weights}
    if images is not None:
        if temperature is not None:
            raise GenlabError("--temperature needs a run (pixelcnn, glow)")
        if given != (None,) * 5:
            raise GenlabError("--sampler, --steps, --eta, --guidance and --classifier need a run")
        record = evaluate_images(Path(images), config, progress=progress, **common,
                                 **image_options)  # fmt: skip
        return record, None
    run = Run.of(run)
    model = run.model()
    options = sampling_options(model, *given, classifier_scale)
    names = ("sampler", "steps", "eta", "w", "classifier")
    described = {k: str(v) for k, v in zip(names, given, strict=True) if v is not None}
    options.update(temperature_option(run, model, temperature))
    if temperature is not None:
        described["T"] = str(temperature)
    if classifier is not None:
        described.update(classifier=Path(classifier).name, s=str(classifier_scale))
    record = evaluate_run(
        run, config, progress=progress, sample_options=options, described=described,
        model=model, **common,
    )  # fmt: skip
    return record, record_path(run.path, config, sampling_tag(described))


class Ranking(NamedTuple):
    """`compare`'s result: each run's record, the grids of their samples, and which runs were
    scored now (the others had a current record)."""

    records: list[dict[str, Any]]
    grids: dict[str, Path]
    reused: list[Path]


def compare(
    runs: list[str | os.PathLike],
    config: EvalConfig = EvalConfig(),
    *,
    fresh: bool = False,
    features: str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    progress: bool = False,
) -> Ranking:
    """Score several runs on the same metrics (a run's record of its current step is reused
    unless `fresh`), the data and its embeddings loaded once for runs on the same data."""
    records, grids, evaluators, reused = [], {}, {}, []
    for run in map(Path, runs):
        path = record_path(run, config)
        record = None
        if path.is_file() and not fresh and features is None and inception_weights is None:
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                record = None
            if record and record.get("source", {}).get("step") != run_step(run):
                record = None  # trained further since: evaluate again
        if record is None:
            record = evaluate_run(
                run, config, features_run=features, inception_weights=inception_weights,
                progress=progress, evaluators=evaluators,
            )  # fmt: skip
        else:
            reused.append(run)
        records.append(record)
        grids[record["source"]["run"]] = path.parent / f"samples-seed{config.seed}.png"
    return Ranking(records, grids, reused)
