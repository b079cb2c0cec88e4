"""The demo's page: what a section holds (its runs, its figures as commands, its evaluation) and
index.html written from it. `genlab.demo` fills the sections; this module only renders them."""

from __future__ import annotations

import html
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from genlab.atomic import atomic_path


class Figure(NamedTuple):
    """One picture of the page, as the command that draws it. `argv` is both what the demo runs
    (from the demo folder) and what the page shows under the picture, so the two cannot drift."""

    file: str
    title: str
    caption: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        """The command line a reader types in the demo folder to draw the picture again."""
        return shlex.join(("genlab", *self.argv))


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
