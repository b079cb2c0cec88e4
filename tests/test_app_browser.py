"""`genlab app` in a real browser: Debian's Chromium driven by Playwright clicks through every
tab as a person would, and the test fails on any request to an address other than 127.0.0.1.

`make test` installs Chromium (apt, as root) and Playwright (pip); without them the test is
skipped, or fails under GENLAB_REQUIRE_REAL_DATA=1 (CI). The same tour takes the README's
screenshots: `make screenshots` (python tests/test_app_browser.py docs/img/app).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = os.environ.get("GENLAB_CHROMIUM", "/usr/bin/chromium")
LOCAL = {"127.0.0.1", "localhost"}
ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-dev-shm-usage",  # containers with a small /dev/shm
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]
WAIT = 120_000  # ms: a slow 2-core machine running the other tests beside this one


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def guard(page, schemes: tuple[str, ...] = ("data:", "blob:")) -> list[str]:
    """Abort and record every request that would leave 127.0.0.1 (requests of `schemes`, e.g.
    "file:" for a site on disk, stay on the machine too)."""
    outside: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(schemes) or urlparse(url).hostname in LOCAL:
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    page.route("**/*", route)
    return outside


def choose(page, elem_id: str, value: str) -> None:
    """Pick `value` in a gradio dropdown as a person would: open it, click the option."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).click()


def image_src(page, elem_id: str, previous: str | None = None) -> str:
    """The src of the image in `elem_id` once there is one (different from `previous`)."""
    locator = page.locator(f"#{elem_id} img").first
    locator.wait_for(state="visible", timeout=WAIT)
    page.wait_for_function(
        "([sel, prev]) => { const i = document.querySelector(sel);"
        " return i && i.src && i.src !== prev && i.complete; }",
        arg=[f"#{elem_id} img", previous or ""],
        timeout=WAIT,
    )
    return locator.get_attribute("src")


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def tour(page, url: str, pick: dict[str, str] | None = None, shots: Path | None = None) -> None:
    """Every tab, clicked; `pick` chooses runs (elem id -> name), else each tab's default.
    With `shots`, a screenshot of each tab goes there."""
    pick = pick or {}

    def shot(name: str) -> None:
        if shots is not None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    page.goto(url)
    page.get_by_role("heading", name="genlab").wait_for(timeout=WAIT)

    # Sample: a grid; another seed, another grid
    if "sample-run" in pick:
        choose(page, "sample-run", pick["sample-run"])
    page.click("#sample-go")
    first = image_src(page, "sample-image")
    first_bytes = page.request.get(first).body()
    page.fill("#sample-seed input", "7")
    page.click("#sample-go")
    second = image_src(page, "sample-image", first)
    assert page.request.get(second).body() != first_bytes
    page.wait_for_function("() => document.querySelector('#sample-caption').innerText"
                           ".includes('seed 7')", timeout=WAIT)  # fmt: skip
    page.click("#sample-new-seed")
    image_src(page, "sample-image", second)
    assert page.input_value("#sample-seed input") != "7"
    shot("sample")

    # Latent space: a slider moves the decoded image; a click on the map decodes there
    tab(page, "Latent space")
    if "latent-run" in pick:
        choose(page, "latent-run", pick["latent-run"])
    before = image_src(page, "latent-moved")
    slider = page.locator("#latent-dir1 input[type=number]")
    slider.fill("2.5")
    slider.press("Enter")
    image_src(page, "latent-moved", before)
    latent_map = page.locator("#latent-map img")
    latent_map.wait_for(timeout=WAIT)
    box = latent_map.bounding_box()
    latent_map.click(position={"x": box["width"] * 0.4, "y": box["height"] * 0.6})
    image_src(page, "latent-clicked")
    shot("latent")

    # Diffusion: record the reverse process, then scrub back to the noise
    tab(page, "Diffusion")
    if "diffusion-run" in pick:
        choose(page, "diffusion-run", pick["diffusion-run"])
    page.click("#diffusion-go")
    end = image_src(page, "diffusion-image")
    step = page.locator("#diffusion-step input[type=number]")
    step.fill("0")
    step.press("Enter")
    image_src(page, "diffusion-image", end)
    page.get_by_text("pure noise x_T").wait_for(timeout=WAIT)
    step.fill("30")
    step.press("Enter")
    shot("diffusion")

    # Text to image: a prompt
    tab(page, "Text to image")
    if "txt2img-run" in pick:
        choose(page, "txt2img-run", pick["txt2img-run"])
    page.fill("#txt2img-prompt textarea", "a pair of ankle boots")
    page.click("#txt2img-go")
    image_src(page, "txt2img-image")
    page.get_by_text("prompt a pair of ankle boots").wait_for(timeout=WAIT)
    shot("txt2img")

    # GAN lab: train live, then stop
    tab(page, "GAN lab")
    page.click("#ganlab-start")
    image_src(page, "ganlab-frame")
    text = page.locator("#ganlab-text")
    page.wait_for_function("() => /step [1-9]/.test(document.querySelector('#ganlab-text')"
                           ".innerText)", timeout=WAIT)  # fmt: skip
    page.click("#ganlab-stop")
    page.wait_for_timeout(1500)
    stopped = text.inner_text()
    page.wait_for_timeout(2000)
    assert text.inner_text() == stopped, "the GAN lab kept training after Stop"
    assert "step 3000 of 3000" not in stopped
    shot("ganlab")

    # Compare: the table of the chosen runs with their grids
    tab(page, "Compare")
    if "compare-runs" in pick:
        page.locator("#compare-runs input").click()
        page.get_by_role("option", name=pick["compare-runs"], exact=True).click()
        page.keyboard.press("Escape")
    page.click("#compare-go")
    page.wait_for_function("() => document.querySelector('#compare-table').textContent"
                           ".includes('shipped/')", timeout=WAIT)  # fmt: skip
    shot("compare")

    # PixelCNN: watch the image being written
    tab(page, "PixelCNN")
    if "pixelcnn-run" in pick:
        choose(page, "pixelcnn-run", pick["pixelcnn-run"])
    page.click("#pixelcnn-go")
    page.get_by_text("784 of 784 pixels written").wait_for(timeout=WAIT)
    shot("pixelcnn")

    # DQN: the agent plays
    tab(page, "DQN")
    if "dqn-run" in pick:
        choose(page, "dqn-run", pick["dqn-run"])
    page.click("#dqn-go")
    image_src(page, "dqn-image")
    page.locator("#dqn-text").get_by_text("return").wait_for(timeout=WAIT)
    shot("dqn")


def require_browser() -> None:
    """Skip without Chromium or Playwright; fail instead under GENLAB_REQUIRE_REAL_DATA=1."""
    missing = []
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing.append(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python (pip install playwright)")
    if not missing:
        return
    if os.environ.get("GENLAB_REQUIRE_REAL_DATA") == "1":
        pytest.fail(f"the browser test needs {' and '.join(missing)}")
    pytest.skip(f"no {' and '.join(missing)}")


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory, fmnist_dir) -> Path:
    """Tiny runs of every kind the tabs need, and a broken one."""
    import genlab

    root = tmp_path_factory.mktemp("runs")
    data = {"data_dir": str(fmnist_dir), "batch_size": 32}
    spatial = genlab.create("vae", root / "vae-spatial", latent_channels=4, widths=(4, 8),
                            max_steps=2, **data)  # fmt: skip
    made = [
        genlab.create("vae", root / "vae", latent_dim=4, widths=(4, 8), max_steps=20, **data),
        spatial,
        genlab.create("ddpm", root / "ddpm", width=8, conditional=True, max_steps=2, steps=5,
                      **data),
        genlab.create("pixelcnn", root / "pixelcnn", width=4, layers=2, head_width=8,
                      max_steps=2, **data),
        genlab.create("dqn", root / "dqn", width=8, learning_starts=1, eval_every=0,
                      max_steps=50),
    ]  # fmt: skip
    for run in made:
        genlab.train(run, progress=False)
    t2i = genlab.create("txt2img", root / "t2i", vae=spatial, width=8, max_steps=2, **data)
    genlab.train(t2i, progress=False)
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text('{"family": "vae"')
    return root


def test_every_tab_in_a_real_browser_and_no_request_leaves_the_machine(app_runs, tmp_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    from genlab.app import serve

    server, _, url = serve(app_runs, port=0, out=tmp_path / "out", block=False)
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            outside = guard(page)
            pick = {"sample-run": "vae", "latent-run": "vae", "diffusion-run": "ddpm",
                    "txt2img-run": "t2i", "compare-runs": "vae", "pixelcnn-run": "pixelcnn",
                    "dqn-run": "dqn"}  # fmt: skip
            tour(page, url, pick)
            # a broken run: one line in the page, and the app keeps serving
            tab(page, "Sample")
            choose(page, "sample-run", "broken")
            page.locator("#sample-info").get_by_text("not valid JSON").wait_for(timeout=WAIT)
            page.click("#sample-go")
            page.get_by_text("the run directory is damaged").first.wait_for(timeout=WAIT)
            assert "Traceback" not in page.content()
            choose(page, "sample-run", "vae")
            page.click("#sample-go")
            page.locator("#sample-caption").get_by_text("vae, seed").wait_for(timeout=WAIT)
            browser.close()
        assert outside == [], f"requests left 127.0.0.1: {outside}"
    finally:
        server.close()


def main(argv: list[str]) -> None:
    """`make screenshots`: the tour over the shipped runs, a screenshot of each tab."""
    from playwright.sync_api import sync_playwright

    from genlab.app import serve

    shots = Path(argv[0] if argv else "docs/img/app")
    shots.mkdir(parents=True, exist_ok=True)
    server, _, url = serve(None, port=0, block=False)
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            outside = guard(page)
            tour(page, url, shots=shots)
            browser.close()
        if outside:
            raise SystemExit(f"requests left 127.0.0.1: {outside}")
    finally:
        server.close()
    print(f"screenshots in {shots}")


if __name__ == "__main__":
    main(sys.argv[1:])
