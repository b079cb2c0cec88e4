"""The built docs site (`make docs`, which `make test` runs before the tests): the notebooks'
equations are typeset by MathJax from files inside the site (scripts/mkdocs_mathjax.py), in a
real browser, and no request leaves the machine."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_app_browser import guard, launch, require_browser

SITE = Path(__file__).resolve().parents[1] / "build" / "site"
NOTEBOOKS = ("01_vae", "02_gans", "03_diffusion", "04_pixelcnn_likelihoods", "05_dqn",
             "06_evaluation")  # fmt: skip


def built_site() -> Path:
    """The site `make docs` built; skipped without it (failed under GENLAB_REQUIRE_REAL_DATA=1,
    as in CI, where `make test` builds it first)."""
    if (SITE / "index.html").is_file() and (SITE / "notebooks").is_dir():
        return SITE
    if os.environ.get("GENLAB_REQUIRE_REAL_DATA") == "1":
        pytest.fail(f"no docs site in {SITE}: make docs builds it")
    pytest.skip(f"no docs site in {SITE}: make docs builds it")


def test_notebook_pages_load_mathjax_from_the_site_and_the_guides_do_not():
    site = built_site()
    for name in NOTEBOOKS:
        page = site / "notebooks" / name / "index.html"
        html = page.read_text(encoding="utf-8")
        found = re.search(r'<script src="([^"]+/MathJax\.js)\?config=', html)
        assert found, f"{page}: no MathJax script"
        assert (page.parent / found.group(1)).resolve().is_file(), found.group(1)
        assert "cdn." not in html.lower() and "mathjax@" not in html
    for guide in ("rl", "evaluation", "api"):
        assert "MathJax.js" not in (site / guide / "index.html").read_text(encoding="utf-8")


def test_the_notebooks_equations_are_typeset_offline_in_a_browser():
    site = built_site()
    require_browser()
    from playwright.sync_api import sync_playwright

    typeset, errors, leftover = {}, {}, {}
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        outside = guard(page, ("file:", "data:", "blob:"))
        for name in NOTEBOOKS:
            page.goto((site / "notebooks" / name / "index.html").as_uri())
            page.wait_for_function(
                "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0"
                " && MathJax.Hub.queue.running === 0"
                " && document.querySelectorAll('.MathJax, .MathJax_Display').length > 0",
                timeout=120_000,
            )
            typeset[name] = page.locator(".MathJax, .MathJax_Display").count()
            errors[name] = page.locator(".MathJax_Error, merror").count()
            prose = "\n".join(page.locator(".jp-RenderedMarkdown").all_inner_texts())
            leftover[name] = prose.count("$")  # the markdown cells: no TeX left as text
        browser.close()
    assert typeset["01_vae"] >= 10, typeset  # the ELBO, the KL, the reparametrisation, ...
    assert errors == dict.fromkeys(NOTEBOOKS, 0), errors
    assert leftover == dict.fromkeys(NOTEBOOKS, 0), leftover
    assert outside == [], f"requests left the machine: {outside}"
