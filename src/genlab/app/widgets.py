"""What the app's tabs share: handlers that fail as one line, run dropdowns that Refresh renews,
and the components the page repeats (images of pixels, boxes for a seed or an index).

Handlers call `Views` and turn its one-line `GenlabError`s (and any other failure, as one line)
into gradio's error message, so the page never shows a traceback and keeps serving. Runs are
chosen from dropdowns whose choices are the catalog's names; gradio refuses other values.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from genlab.app.views import Views
from genlab.errors import GenlabError

log = logging.getLogger("genlab.app")
PIXEL = "genlab-pixel"
"""The class of images of small pixel images: enlarged without smoothing (see `CSS`)."""
CSS = (
    f".{PIXEL} img {{ image-rendering: pixelated; width: 100% !important; height: 100% "
    "!important; object-fit: contain; } footer { display: none !important; }"
)


def one_line(e: BaseException) -> str:
    """The first line of an error, with its type unless it is a `GenlabError`."""
    if isinstance(e, GenlabError):
        return str(e).splitlines()[0] if str(e) else "error"
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def safe(fn):
    """Run a handler; any failure becomes one line in the page (gr.Error), logged in full."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:
                log.debug("handler failed", exc_info=True)
                raise gr.Error(one_line(e), print_exception=False) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            log.debug("handler failed", exc_info=True)
            raise gr.Error(one_line(e), print_exception=False) from None

    return wrapper


def run_status(views: Views, name: str | None) -> str:
    """The line under a run dropdown: what the run is, or its error (never raised)."""
    if not name:
        return "No run of this kind: train one (`genlab train ...`) into the runs folder."
    try:
        return views.describe(name)
    except Exception as e:
        return f"**Error:** {one_line(e)}"


def first_run(names: list[str], views: Views, prefer: str | None = None) -> str | None:
    """`prefer` if listed, else the first run that opens without error (else the first)."""
    if prefer in names and views.catalog.get(prefer).error is None:
        return prefer
    for name in names:
        if views.catalog.get(name).error is None:
            return name
    return names[0] if names else None


class RunDropdowns:
    """The page's run dropdowns, each with the catalog query that lists its choices, so that the
    Refresh button can renew them all."""

    def __init__(self, views: Views):
        self.views = views
        self.listed: list[tuple[gr.Dropdown, Callable[[], list[str]]]] = []

    def add(self, can: str, label: str, elem_id: str, prefer: str | None = None) -> gr.Dropdown:
        """A dropdown of the runs that can `can` (a catalog capability), showing `prefer` if it
        opens, else the first run that does."""
        names = self.views.catalog.names(can)
        dropdown = gr.Dropdown(
            names, value=first_run(names, self.views, prefer), label=label, elem_id=elem_id
        )
        self.register(dropdown, can)
        return dropdown

    def register(self, dropdown: gr.Dropdown, can: str, broken: bool = True) -> None:
        """Renew `dropdown` on Refresh with the runs that can `can` (without broken ones)."""
        self.listed.append((dropdown, lambda: self.views.catalog.names(can, broken=broken)))

    @property
    def dropdowns(self) -> list[gr.Dropdown]:
        return [dropdown for dropdown, _ in self.listed]

    def updates(self, current: Sequence[Any]) -> list[dict[str, Any]]:
        """Each dropdown's new choices once the catalog is refreshed: `current` (its value, in
        the order of `dropdowns`) kept while still listed, else the first run that opens."""
        updates = []
        for (dropdown, names_fn), value in zip(self.listed, current, strict=True):
            names = names_fn()
            if dropdown.multiselect:
                keep = [v for v in (value or []) if v in names]
                updates.append(gr.update(choices=names, value=keep))
            else:
                value = value if value in names else first_run(names, self.views)
                updates.append(gr.update(choices=names, value=value))
        return updates


def pixel_image(label: str, height: int, elem_id: str | None = None, **options) -> gr.Image:
    """An output image of small images, shown enlarged without smoothing; `options` go to
    `gr.Image` (e.g. `type="filepath", format="png"` for a file to download)."""
    return gr.Image(
        label=label,
        height=height,
        interactive=False,
        elem_id=elem_id,
        elem_classes=PIXEL,
        **options,
    )


def whole_number(label: str, elem_id: str | None = None) -> gr.Number:
    """A box for a whole number from 0 (a seed, an index), showing 0."""
    return gr.Number(0, precision=0, label=label, minimum=0, elem_id=elem_id)
