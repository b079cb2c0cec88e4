"""Evaluation records as text tables and an HTML page (`genlab eval`, `genlab compare`)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

# (key, label, format, what is good): the scalar metrics shown in tables, in order.
COLUMNS = (
    ("fd", "FD", "{:.3f}", "lower is better"),
    ("fid_inception", "FID (Inception)", "{:.2f}", "lower is better"),
    ("kid_mean", "KID", "{:.4g}", "lower is better"),
    ("precision", "precision", "{:.3f}", "higher is better"),
    ("recall", "recall", "{:.3f}", "higher is better"),
    ("density", "density", "{:.3f}", "about 1 for real data"),
    ("coverage", "coverage", "{:.3f}", "higher is better"),
    ("is_mean", "IS", "{:.3f}", "higher is better"),
    ("modes_covered", "modes", "{}", "all is best"),
    ("conditional_accuracy", "cond. acc", "{:.3f}", "higher is better"),
    ("memorised_fraction", "memorised", "{:.4f}", "fresh images: about 0.01"),
    ("nn_ratio", "NN ratio", "{:.3f}", "fresh images: about 1, copies: < 1"),
)
REFERENCE_LABELS = {
    "floor": "floor: training images",
    "blurred": "ceiling: blurred",
    "noised": "ceiling: noised",
}


def _fmt(metrics: dict[str, Any], key: str, spec: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "-"
    if key == "kid_mean":
        return f"{value:.4g}±{metrics.get('kid_std', 0.0):.2g}"
    if key == "modes_covered":
        return f"{value}/{metrics.get('modes_total')}"
    if key == "is_mean":
        return f"{value:.3f}±{metrics.get('is_std', 0.0):.3f}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return spec.format(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _rows(record: dict[str, Any]) -> tuple[tuple[str, str, str, str], ...]:
    """COLUMNS as rows of one record: FD is left out where it is the Inception FID's row."""
    standard = record["metrics"].get("fid_inception") is not None
    return tuple(c for c in COLUMNS if not (standard and c[0] == "fd"))


def eval_table(record: dict[str, Any]) -> str:
    """One evaluation as text: each metric of the samples next to the floor and the ceilings."""
    refs = record.get("references") or {}
    scored = record.get("source", {}).get("scored", "samples")  # or a VQ-VAE's reconstructions
    header = ["metric", scored] + [REFERENCE_LABELS[k] for k in refs]
    rows = []
    for key, label, spec, better in _rows(record):
        values = [record["metrics"], *refs.values()]
        if all(v.get(key) is None for v in values):
            continue
        rows.append([f"{label} ({better})"] + [_fmt(v, key, spec) for v in values])
    out = [_table(header, rows)]
    m = record["metrics"]
    counts = m.get("class_histogram") or []
    names = record.get("class_names") or [str(i) for i in range(len(counts))]
    if counts:
        hist = ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=False))
        out.append(f"class histogram: {hist}")
    features = (record.get("networks") or {}).get("features")
    if isinstance(features, dict) and features.get("resize"):
        out.append(f"features: {features['name']}, images resized to 299x299 "
                   f"({features['resize']})")  # fmt: skip
    if m.get("missing_classes"):
        missing = ", ".join(names[i] if i < len(names) else str(i) for i in m["missing_classes"])
        out.append(f"MODE COLLAPSE: classes below 20% of their expected share: {missing}")
    if m.get("memorised_count"):
        out.append(
            f"memorisation: {m['memorised_count']} samples lie closer to a training image than "
            f"99% of test images do (pixel distance <= {m['memorisation_threshold']:.1f})"
        )
    return "\n".join(out)


def eval_html(record: dict[str, Any]) -> str:
    """One evaluation as an HTML table (metric rows; samples, floor and ceilings as columns),
    with the class histogram and any collapse or memorisation warning below it."""
    refs = record.get("references") or {}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["metric", "samples"] + [
        REFERENCE_LABELS[k] for k in refs
    ])  # fmt: skip
    body = []
    for key, label, spec, better in _rows(record):
        values = [record["metrics"], *refs.values()]
        if all(v.get(key) is None for v in values):
            continue
        cells = "".join(f"<td>{html.escape(_fmt(v, key, spec))}</td>" for v in values)
        body.append(f"<tr><th>{html.escape(label)} <small>({better})</small></th>{cells}</tr>")
    notes = eval_table(record).split("\n")[len(body) + 2 :]  # the lines after the text table
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in notes)
    return (
        f"<table class='eval'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
        f"</table>{paragraphs}"
    )


def _name(record: dict[str, Any]) -> str:
    source = record["source"]
    return str(source.get("run") or source.get("images"))


def rank(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records sorted by FD, lowest (best) first."""
    return sorted(records, key=lambda r: r["metrics"]["fd"])


def _columns(records: list[dict[str, Any]]) -> tuple[tuple[str, str, str, str], ...]:
    """COLUMNS, without FID (Inception) where no record has it."""
    standard = any(r["metrics"].get("fid_inception") is not None for r in records)
    return tuple(c for c in COLUMNS if standard or c[0] != "fid_inception")


def compare_table(records: list[dict[str, Any]]) -> str:
    """Runs ranked by FD, one row each, with the floor of the first as the last row."""
    columns = _columns(records)
    header = ["#", "run"] + [label for _, label, _, _ in columns]
    rows = []
    for i, r in enumerate(rank(records), 1):
        rows.append([str(i), _name(r)] + [_fmt(r["metrics"], k, s) for k, _, s, _ in columns])
    floor = (records[0].get("references") or {}).get("floor") if records else None
    if floor:
        rows.append(["", REFERENCE_LABELS["floor"]] + [_fmt(floor, k, s) for k, _, s, _ in columns])
    header[1] = "run (ranked by FD)"
    return _table(header, rows)


def _img_tag(path: Path | None, alt: str) -> str:
    if path is None or not path.is_file():
        return "<p>(no sample grid)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def compare_html(records: list[dict[str, Any]], grids: dict[str, Path | None]) -> str:
    """A self-contained HTML page: the ranked table and a sample grid per run (inline PNGs)."""
    ranked = rank(records)
    columns = _columns(records)
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _, _ in columns)
    body = []
    for i, r in enumerate(ranked, 1):
        cells = "".join(
            f"<td>{html.escape(_fmt(r['metrics'], k, s))}</td>" for k, _, s, _ in columns
        )
        body.append(f"<tr><td>{i}</td><td>{html.escape(_name(r))}</td>{cells}</tr>")
    floor = (ranked[0].get("references") or {}).get("floor") if ranked else None
    if floor:
        cells = "".join(f"<td>{html.escape(_fmt(floor, k, s))}</td>" for k, _, s, _ in columns)
        body.append(f'<tr class="ref"><td></td><td>{REFERENCE_LABELS["floor"]}</td>{cells}</tr>')
    cards = []
    for i, r in enumerate(ranked, 1):
        name = _name(r)
        step = r["source"].get("step")
        title = f"{i}. {name}" + (f" (step {step})" if step is not None else "")
        cards.append(
            f'<div class="card"><h3>{html.escape(title)}</h3>{_img_tag(grids.get(name), name)}'
            f"<p>FD {_fmt(r['metrics'], 'fd', '{:.3f}')}</p></div>"
        )
    n = ranked[0]["n"] if ranked else 0
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genlab compare</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 4px 10px; text-align: right; }}
td:nth-child(2), th:nth-child(2) {{ text-align: left; }}
tr:nth-child(even) {{ background: #f4f4f4; }} tr.ref {{ color: #666; font-style: italic; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 1.5em; }} .card img {{ image-rendering: pixelated;
  width: 300px; }}
</style></head><body>
<h1>genlab compare</h1>
<p>{len(ranked)} runs, {n} samples each, ranked by Frechet distance on genlab's feature network
(lower is better). The last row is real training images scored the same way: the floor.</p>
<table><tr><th>#</th><th>run</th>{head}</tr>
{"".join(body)}
</table>
<h2>Samples</h2>
<div class="cards">{"".join(cards)}</div>
</body></html>
"""
