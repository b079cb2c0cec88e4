"""The notebooks in notebooks/ run top to bottom from the API, and their results make sense.

Each notebook runs in a fresh kernel of this virtual environment with GENLAB_NOTEBOOK_QUICK=1
(the same code with fewer steps and samples, seconds instead of minutes), in a temporary working
directory, so nothing is written into the repository. Any cell error fails the test
(nbclient raises CellExecutionError). Every notebook ends in a cell tagged "summary" whose value,
a dict of plain literals, is read back from the executed notebook and checked here. `make
notebooks` runs the same notebooks in full for docs/notebooks/.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import require_real_fashion_mnist
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 300  # per cell; a quick notebook takes seconds in all


def run_notebook(path: Path, workdir: Path, monkeypatch) -> tuple[nbformat.NotebookNode, str]:
    """Execute a notebook in quick mode; returns it with its outputs and the kernel's sys.prefix."""
    monkeypatch.setenv("GENLAB_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one core per kernel: pytest -n 2 on 2 cores
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_code_cell("import sys\nprint(sys.prefix)"))  # which Python ran it
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},  # the kernel's working directory
    )
    client.execute()
    prefix = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()
    return nb, prefix


def summary_of(nb: nbformat.NotebookNode) -> dict:
    """The value of the notebook's cell tagged "summary" (its text/plain repr, a literal)."""
    cells = [c for c in nb.cells if "summary" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged 'summary'"
    results = [o for o in cells[0].outputs if o.output_type == "execute_result"]
    assert results, "the summary cell must end in the summary dict"
    return ast.literal_eval(results[0]["data"]["text/plain"])


def images_shown(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )


# ------------------------------------------------------------------------ per-notebook checks


def check_vae(s: dict) -> None:
    assert s["steps"] == 40
    assert s["elbo_last"] > s["elbo_first"] + 50  # training raises the ELBO (nats/image)
    assert -300 < s["shipped_test_elbo"] < -200  # the shipped VAE: about -239 nats on test
    assert s["sample_shape"] == [16, 1, 28, 28]
    assert s["sample_min"] >= 0.0 and s["sample_max"] <= 1.0


def check_gans(s: dict) -> None:
    assert s["modes_collapsed"] <= 1  # no input noise: every sample is one point
    assert s["grad_ns_at_0.01"] > 10 * s["grad_minimax_at_0.01"]  # the saturation picture
    assert s["dcgan_shape"] == [32, 1, 28, 28]
    assert s["dcgan_std"] > 0.1  # images, not a constant


def check_diffusion(s: dict) -> None:
    assert s["alpha_bar_first"] > 0.999 and s["alpha_bar_last"] < 1e-3  # cosine: x_T is noise
    assert 0.0 <= s["ddpm_min"] < s["ddpm_max"] <= 1.0
    assert s["sd_shape"] == [32, 32, 3]
    assert s["sd_same_seed_identical"] is True  # a request replays exactly
    assert s["sd_guidance_changes"] is True


def check_pixelcnn(s: dict) -> None:
    assert s["n_images"] == 50
    assert 2.5 < s["pixelcnn_bpd"] < 3.5  # shipped run: 3.02 bits/dim on the test set
    assert 2.5 < s["glow_bpd"] < 3.6
    assert s["ddpm_bpd"] > 0
    assert 0 < s["heatmap_mean_bpd"] < 8  # under a uniform model of 8-bit pixels


def check_dqn(s: dict) -> None:
    assert s["steps"] == 1500 and s["episodes"] == 5
    assert 0 < s["live_mean"] <= 500
    assert s["shipped_mean"] >= 475  # the shipped agent balances the pole
    assert 50 < s["q_upright"] < 110  # about 1 / (1 - gamma) = 100 near upright


def check_evaluation(s: dict) -> None:
    assert s["eval_n"] == 100
    assert s["fd_by_hand"] == pytest.approx(s["fd_torchmetrics"], rel=1e-4)
    assert all(s["floor_fd"] < fd for fd in s["fd"].values())  # real beats every model
    assert s["fd"]["ldm"] < s["fd"]["vae"]  # the ranking of issue 14's table
    assert s["best"] in ("ldm", "cgan")


CHECKS = {
    "01_vae": (check_vae, True),  # (check, needs the real Fashion-MNIST)
    "02_gans": (check_gans, False),
    "03_diffusion": (check_diffusion, True),
    "04_pixelcnn_likelihoods": (check_pixelcnn, True),
    "05_dqn": (check_dqn, False),
    "06_evaluation": (check_evaluation, True),
}


def test_every_notebook_is_checked():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CHECKS)


def test_notebooks_are_stored_without_outputs():
    """notebooks/ holds the sources; the executed copies are docs/notebooks/ (make notebooks)."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name
        assert 'os.environ.get("GENLAB_NOTEBOOK_QUICK") == "1"' in code[0].source, path.name


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs(name, tmp_path, monkeypatch):
    check, needs_data = CHECKS[name]
    if needs_data:
        require_real_fashion_mnist()
    workdir, temp = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the notebook's runs (tempfile.mkdtemp) go here
    nb, prefix = run_notebook(NOTEBOOKS / f"{name}.ipynb", workdir, monkeypatch)
    assert prefix == sys.prefix, f"the kernel ran {prefix}, not this environment's Python"
    assert images_shown(nb) >= 2, "the notebook shows its pictures"
    check(summary_of(nb))
    assert list(workdir.iterdir()) == [], "a notebook writes nothing where it runs"
    assert any(p.name.startswith("genlab-notebook-") for p in temp.iterdir())  # its runs
