"""The demo's figure specs (genlab.demo, genlab.demo_page): one argv is both the command the page
shows and the call, and the Python API's runner runs it as a reader would."""

import pytest

from genlab.demo import run_in_subprocess
from genlab.demo_page import Figure
from genlab.errors import GenlabError


def test_a_figure_shows_the_command_it_runs_quoted_for_a_shell():
    figure = Figure("morph.png", "Morph", "", ("morph", "run", "--to", "Ankle boot"))
    assert figure.command == "genlab morph run --to 'Ankle boot'"


def test_the_subprocess_runner_runs_genlab_in_the_folder_and_names_a_failure(tmp_path):
    run_in_subprocess(("data", "--help"), tmp_path)  # exit 0: nothing raised
    with pytest.raises(GenlabError, match=r"genlab sample no-such-run .*exit code 2"):
        run_in_subprocess(("sample", "no-such-run", "--out", "x.png"), tmp_path)
    assert not (tmp_path / "x.png").exists()
