"""DDP through accelerate: 2 CPU processes (gloo) train exactly like one process."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.runs import load_weights

ARGS = ["train", "ae", "--max-steps", "4", "--batch-size", "32", "--no-progress", "--ema", "0"]


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
    reason="torchrun is installed with torch",
)
def test_two_process_ddp_equals_one_process(fmnist_dir, tmp_path):
    data = ["--data-dir", str(fmnist_dir)]
    one, two = tmp_path / "one", tmp_path / "two"
    cli = [sys.executable, "-m", "genlab.cli"]
    subprocess.run([*cli, *ARGS, *data, "--out", str(one)], check=True, capture_output=True)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "genlab.cli",
            *ARGS,
            *data,
            "--out",
            str(two),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    a, b = load_weights(one / "model.safetensors"), load_weights(two / "model.safetensors")
    params = [k for k in a if "weight" in k or "bias" in k]
    assert params
    for key in params:
        # Each rank takes half of every global batch; averaged gradients equal the full batch's.
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
