"""MkDocs hook: the notebooks' equations typeset offline.

mkdocs-jupyter leaves a notebook's $...$ and $$...$$ as text in the page; MathJax typesets them
in the browser. The site loads nothing from outside, so MathJax comes from a wheel on PyPI
(jupyter-server-mathjax, BSD-3-Clause: the MathJax 2.7 that Jupyter serves itself), copied into
the built site, and only the notebook pages load it (the guides write no TeX).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

TARGET = "assets/mathjax"
CONFIG = """<script>
window.MathJax = {
  tex2jax: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]],
            displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], webFont: "STIX-Web", imageFont: null},
  showMathMenu: false, messageStyle: "none"
};
</script>"""


def mathjax_source() -> Path:
    """The MathJax folder inside the installed jupyter-server-mathjax package (not imported)."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "the docs need jupyter-server-mathjax for the notebooks' equations: "
            "pip install -e '.[docs]' (make setup installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def on_post_page(output: str, page, config) -> str:
    """A notebook page gets the MathJax configuration and script (path relative to the page)."""
    if "jp-Notebook" not in output:
        return output
    up = "../" * page.url.count("/")  # notebooks/01_vae/ (or notebooks/01_vae.html) -> the root
    script = f'{CONFIG}\n<script src="{up}{TARGET}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full">'
    return output.replace("</body>", f"{script}</script>\n</body>", 1)


def on_post_build(config) -> None:
    """MathJax's files into the built site (once; a rebuild finds them there)."""
    target = Path(config.site_dir) / TARGET
    if not (target / "MathJax.js").exists():
        shutil.copytree(mathjax_source(), target, dirs_exist_ok=True)
