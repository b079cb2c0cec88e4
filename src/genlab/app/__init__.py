"""`genlab app`: a local web app (gradio) over the shipped runs and the user's own runs.

`serve(runs="runs")` builds the page (`genlab.app.ui.build`) over a `Catalog` of runs and the
`Views` that compute each tab, and serves it on 127.0.0.1. Nothing leaves the machine: gradio's
analytics are off, the theme uses the system's fonts, and the only files served are the app's
own output folder (and the run files it lists).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from genlab.errors import GenlabError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _quiet_environment(out: Path) -> None:
    """What gradio reads from the environment: no analytics, its cache inside `out`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["GRADIO_TEMP_DIR"] = str(out / "gradio")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    local = "127.0.0.1,localhost,::1"  # gradio checks its own server through httpx
    for key in ("NO_PROXY", "no_proxy"):
        os.environ[key] = f"{os.environ[key]},{local}" if os.environ.get(key) else local


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def build_app(
    runs: str | os.PathLike | None = "runs",
    out: str | os.PathLike | None = None,
    shipped: bool = True,
    device: str | None = None,
):
    """The page (a gradio Blocks, queued one event at a time) and its `Views`. The models run on
    `device` (`genlab.devices`; None: auto), made the process's default: the page's handlers
    run in gradio's worker threads."""
    from genlab.devices import set_default

    set_default(device)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="genlab-app-"))
    out.mkdir(parents=True, exist_ok=True)
    _quiet_environment(out.resolve())
    try:
        import gradio  # noqa: F401
    except ImportError as e:
        raise GenlabError(
            f"genlab app needs gradio ({e}); install genlab with its dependencies: pip install -e ."
        ) from None
    from genlab.app.catalog import Catalog
    from genlab.app.ui import build
    from genlab.app.views import Views

    views = Views(Catalog(runs, shipped=shipped), out)
    page = build(views)
    page.queue(default_concurrency_limit=1)
    return page, views


def serve(
    runs: str | os.PathLike | None = "runs",
    host: str = "127.0.0.1",
    port: int = 7860,
    out: str | os.PathLike | None = None,
    shipped: bool = True,
    block: bool = True,
    on_ready=None,
    device: str | None = None,
):
    """Build and launch the app; returns (page, views, url) once it listens (with `block`,
    after it is stopped). `on_ready(url)` is called once it listens."""
    import gradio as gr

    page, views = build_app(runs, out, shipped, device)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])
    from genlab.app.ui import CSS

    if port == 0:
        port = free_port(host)
    try:
        page.launch(
            server_name=host,
            server_port=port,
            share=False,
            prevent_thread_lock=True,
            allowed_paths=[str(views.out)],
            theme=theme,
            css=CSS,
            quiet=True,
            ssr_mode=False,
            inbrowser=False,
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
        )
    except OSError as e:
        raise GenlabError(
            f"--port {port}: cannot listen on {host} ({e}); choose another port"
        ) from None
    url = f"http://{host if ':' not in host else f'[{host}]'}:{page.server_port}/"
    if on_ready is not None:
        on_ready(url)
    if block:
        try:
            page.block_thread()
        finally:
            page.close()
    return page, views, url
