"""genlab's standard FID beside clean-fid's and torch-fidelity's, on the same image sets and the
same Inception weights (issue 27: agreement within 0.1%).

Image sets, n each (Fashion-MNIST, 28x28 grey): the real test images (the reference), real
training images, the same blurred and noised (the evaluation's ceilings), and samples of a
shipped run. Two comparisons:
- "clean" (28x28 PNGs): genlab `--features inception` (PIL bicubic in float, as clean-fid)
  against clean-fid's `compute_fid(mode="clean")`.
- "299" (the same images resized by clean-fid's resize and rounded to 299x299 uint8 PNGs):
  genlab's network against torch-fidelity, which resizes by its TensorFlow-1 bilinear emulation
  (an identity at 299x299), so both see the same pixels.
clean-fid loads the wheel's TorchScript file (what its own download would fetch); torch-fidelity
loads genlab's converted weights saved in its layout (its classifier layer zero: FID does not use
it). The peers need torchvision, which genlab does not install, so they run in their own venv:

    python3 -m venv bench-runs/peer-fid
    bench-runs/peer-fid/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
        torch-fidelity==0.4.0 clean-fid==0.1.35
    .venv/bin/python bench/fid_crosscheck.py --peer-python bench-runs/peer-fid/bin/python

Prints one row per set: the three FIDs and the relative differences.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent


def write_pngs(images: torch.Tensor, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im[0].numpy()).save(folder / f"{i:05d}.png")


def read_pngs(folder: Path) -> torch.Tensor:
    arrays = [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]
    return torch.from_numpy(np.stack(arrays))[:, None]  # (N, 1, H, W) uint8


def image_sets(n: int, run: str, seed: int) -> dict[str, torch.Tensor]:
    from genlab import pretrained
    from genlab.data.fashion_mnist import load_fashion_mnist
    from genlab.evaluation.evaluate import EvalConfig, add_noise, gaussian_blur, generate
    from genlab.runs import Run

    cfg = EvalConfig()
    test = load_fashion_mnist("test").images[:n]
    train = load_fashion_mnist("train").images[:n]
    g = torch.Generator().manual_seed(seed)
    model = Run.open(pretrained.find(run).path).model()
    samples, _ = generate(model, n, seed=seed, batch_size=250)
    return {
        "test": test,
        "train": train,
        "blurred": gaussian_blur(train, cfg.blur_sigma),
        "noised": add_noise(train, cfg.noise_sigma, g),
        f"{run} samples": samples,
    }


def torch_fidelity_weights(out: Path) -> Path:
    """genlab's converted weights with torch-fidelity's key names (+ a zero fc layer)."""
    from safetensors.torch import load_file

    from genlab.evaluation.inception import packaged_weights

    state = load_file(str(packaged_weights()))
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    torch.save(state, out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500, help="images per set")
    p.add_argument("--run", default="vae", help="the shipped run whose samples form a set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench-runs/fid-crosscheck"))
    p.add_argument("--peer-python", type=Path, help="python of the venv with the peers")
    args = p.parse_args()

    from genlab.evaluation.inception import load_packaged_inception, packaged_source, preprocess
    from genlab.evaluation.metrics import frechet_distance

    torch.set_num_threads(torch.get_num_threads())
    sets = image_sets(args.n, args.run, args.seed)
    net = load_packaged_inception("cpu")
    names = list(sets)
    genlab: dict[str, dict[str, float]] = {"clean": {}, "299": {}}
    feats: dict[str, dict[str, torch.Tensor]] = {"clean": {}, "299": {}}
    t = time.perf_counter()
    for name in names:
        key = name.replace(" ", "_")
        write_pngs(sets[name], args.out / "28" / key)
        big = preprocess(sets[name], "clean") * 128 + 128  # (N, 3, 299, 299) in [0, 255]
        big = big[:, :1].round().clamp(0, 255).to(torch.uint8)
        write_pngs(big, args.out / "299" / key)
        feats["clean"][name] = net.embed(sets[name]).features
        feats["299"][name] = net.embed(read_pngs(args.out / "299" / key)).features
    for mode in ("clean", "299"):
        for name in names[1:]:
            genlab[mode][name] = frechet_distance(feats[mode]["test"], feats[mode][name])
    seconds = time.perf_counter() - t
    record = {"n": args.n, "sets": names, "genlab": genlab, "genlab_seconds": seconds}
    if args.peer_python:
        weights = torch_fidelity_weights(args.out / "torch_fidelity_weights.pth")
        cmd = [str(args.peer_python), str(HERE / "fid_crosscheck_peers.py"), str(args.out),
               "--torchscript", str(packaged_source()), "--fidelity-weights", str(weights),
               "--sets", *[n.replace(" ", "_") for n in names]]  # fmt: skip
        peers = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        record["peers"] = peers
    (args.out / "crosscheck.json").write_text(json.dumps(record, indent=1))
    print(f"n = {args.n} images per set, reference: the first {args.n} test images")
    print(f"{'set':<16}{'genlab clean':>14}{'clean-fid':>12}{'diff':>9}"
          f"{'genlab 299':>13}{'torch-fidelity':>16}{'diff':>9}")  # fmt: skip
    for name in names[1:]:
        key = name.replace(" ", "_")
        a, b = genlab["clean"][name], genlab["299"][name]
        peers = record.get("peers", {})
        c = peers.get("clean-fid", {}).get(key)
        d = peers.get("torch-fidelity", {}).get(key)

        def rel(x, y):
            return "-" if y is None else f"{100 * (x - y) / y:+.4f}%"

        cs = "-" if c is None else f"{c:.4f}"
        ds = "-" if d is None else f"{d:.4f}"
        print(f"{name:<16}{a:>14.4f}{cs:>12}{rel(a, c):>9}{b:>13.4f}{ds:>16}{rel(b, d):>9}")
    print(f"genlab: {seconds:.0f} s for {2 * len(names)} embeddings of {args.n} images")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
