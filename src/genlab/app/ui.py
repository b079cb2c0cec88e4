"""The web app's page: gradio Blocks over `Views`, one tab per way of exploring a model.

The tabs are in `genlab.app.tabs`; what they share (handlers that fail as one line, run dropdowns,
the page's CSS) in `genlab.app.widgets`.
"""

from __future__ import annotations

import gradio as gr

from genlab.app.catalog import Catalog
from genlab.app.tabs import (
    compare_tab,
    diffusion_tab,
    dqn_tab,
    gan_lab_tab,
    latent_tab,
    pixelcnn_tab,
    sample_tab,
    text_tab,
)
from genlab.app.views import Views
from genlab.app.widgets import CSS, RunDropdowns, safe

__all__ = ["CSS", "build", "safe"]


def build(views: Views) -> gr.Blocks:
    """The page: header, a refresh button, and the tabs."""
    with gr.Blocks(title="genlab", analytics_enabled=False) as page:
        gr.Markdown(_header(views.catalog))
        refresh = gr.Button("Refresh runs", size="sm", elem_id="refresh")
        runs = RunDropdowns(views)
        sample_tab(page, views, runs)
        latent_tab(page, views, runs)
        diffusion_tab(page, views, runs)
        text_tab(page, views, runs)
        gan_lab_tab()
        compare_tab(views, runs)
        pixelcnn_tab(views, runs)
        dqn_tab(views, runs)

        def do_refresh(*current):
            views.catalog.refresh()
            return runs.updates(current)

        refresh.click(do_refresh, runs.dropdowns, runs.dropdowns)
    return page


def _header(cat: Catalog) -> str:
    """What the app is, and where the user's own runs come from."""
    where = (
        f"runs under `{cat.runs_dir}` are listed next to them (press Refresh after training one)"
        if cat.runs_dir is not None
        else "start with `genlab app --runs DIR` to list your own runs next to them"
    )
    return (
        "# genlab\nTrain, sample, evaluate and explore generative models. The shipped runs "
        f"were trained by genlab's own commands; {where}."
    )
