"""Side by side at equal wall time: genlab's default VAE vs pythae's VAE on Fashion-MNIST.

Each contender trains for `--minutes` of wall clock with its own trainer, one after the other
on the same machine (pythae's BaseTrainer with its convolutional MNIST benchmark networks;
genlab through `python -m genlab train vae`), then both are scored by the same evaluator:

- test negative ELBO in nats/image under a Bernoulli likelihood: the sum over the 784 pixels of
  the binary cross-entropy of the decoder mean against the [0, 1] intensities, plus the analytic
  KL(q(z|x) || N(0, I)), one z per image, the same seeded noise for both models;
- a sample-quality proxy: the Frechet distance between 5,000 prior samples and 5,000 test images
  in the 128-d penultimate features of a small CNN classifier trained here for about a minute
  (not Inception features: the numbers compare the contenders, not published FIDs);
- the images/s each trainer reached, and the CPU seconds its process used while training;
- `--eval-samples` prior samples of each as one grid PNG, for `genlab eval --images` (genlab's
  shipped feature network and its floor and ceilings, as in the README's quality table).

Run in the benchmark venv (bench/README.md):
    .venv-bench/bin/python bench/vae_vs_pythae.py --minutes 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from genlab.data import DataSpec, load_data
from genlab.images import make_grid, save_png

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 128  # genlab's default batch; pythae trains at the same size (its default is 64)
N_FD = 5000


# -- a small classifier whose penultimate features feed the Frechet distance ------------------


class FeatureNet(nn.Module):
    """Conv(32)-pool-Conv(64)-pool-FC(128)-FC(10); `features` is the 128-d ReLU layer."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),  # (B, 128)
        )  # fmt: skip
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_feature_net(train_x, train_y, test_x, test_y, seconds: float, seed: int):
    torch.manual_seed(seed)
    net = FeatureNet()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        idx = torch.randint(0, train_x.shape[0], (BATCH,), generator=g)
        loss = F.cross_entropy(net(to_float(train_x[idx])), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    net.eval()
    with torch.inference_mode():
        pred = torch.cat([net(to_float(b)).argmax(1) for b in test_x.split(1000)])
    return net, steps, (pred == test_y).float().mean().item()


@torch.inference_mode()
def features(net: FeatureNet, images: torch.Tensor) -> np.ndarray:
    """images (N, 1, 28, 28) floats in [0, 1] -> (N, 128) float64."""
    return torch.cat([net.features(b) for b in images.split(1000)]).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017, eq. 6)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


# -- the one evaluator both contenders go through ---------------------------------------------

Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # x -> (mu, logvar)
Decoder = Callable[[torch.Tensor], torch.Tensor]  # z -> Bernoulli means in [0, 1]


@torch.inference_mode()
def test_neg_elbo(encode: Encoder, decode: Decoder, test_x: torch.Tensor, seed: int) -> float:
    """Mean over the test set of BCE(decode(z), x) summed over pixels + KL, nats/image."""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for xb in test_x.split(500):
        x = to_float(xb)  # (B, 1, 28, 28)
        mu, logvar = encode(x)  # (B, D) each
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
        recon = F.binary_cross_entropy(decode(z), x, reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)  # Kingma & Welling, app. B
        total += (recon + kl).sum().item()
    return total / test_x.shape[0]


@torch.inference_mode()
def prior_samples(decode: Decoder, latent_dim: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent_dim, generator=g)
    return torch.cat([decode(zb) for zb in z.split(500)]).clamp(0, 1)


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(255.0)


# -- contenders -------------------------------------------------------------------------------


class _TimeUp(Exception):
    pass


def train_pythae(
    train_x, train_y, latent_dim: int, minutes: float, lr: float, seed: int, workdir: Path
):
    """pythae's VAE + its conv MNIST benchmark nets, trained by pythae's BaseTrainer.

    pythae has no wall-clock budget and at ~15 images/s its first epoch alone takes over an
    hour here, so a callback stops its loop after the first step that ends past the budget.
    """
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    class TimeBudget(TrainingCallback):
        def __init__(self):
            self.steps, self.start, self.cpu0, self.elapsed, self.cpu = 0, None, None, 0.0, 0.0

        def on_train_begin(self, training_config, **kwargs):
            self.start, self.cpu0 = time.perf_counter(), time.process_time()

        def on_train_step_end(self, training_config, **kwargs):
            self.steps += 1
            self.elapsed = time.perf_counter() - self.start
            self.cpu = time.process_time() - self.cpu0
            if self.elapsed >= 60.0 * minutes:
                raise _TimeUp

    torch.manual_seed(seed)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=latent_dim, reconstruction_loss="bce")
    model = VAE(config, Encoder_Conv_VAE_MNIST(config), Decoder_Conv_AE_MNIST(config))
    trainer_config = BaseTrainerConfig(
        output_dir=str(workdir / "pythae"),
        per_device_train_batch_size=BATCH,
        num_epochs=100,
        learning_rate=lr,
        seed=seed,
        no_cuda=True,
    )
    budget = TimeBudget()
    logging.getLogger("pythae").setLevel(logging.WARNING)
    dataset = BaseDataset(to_float(train_x), train_y)
    trainer = BaseTrainer(model, dataset, training_config=trainer_config, callbacks=[budget])
    with contextlib.suppress(_TimeUp):
        trainer.train()
    model = trainer.model.eval()

    def encode(x):
        out = model.encoder(x)
        return out.embedding, out.log_covariance

    def decode(z):
        return model.decoder(z)["reconstruction"]

    n_params = sum(p.numel() for p in model.parameters())
    return encode, decode, budget.steps * BATCH, budget.elapsed, budget.cpu, n_params


def train_genlab(minutes: float, seed: int, data_dir: str | None, workdir: Path):
    """genlab's default VAE trained by its CLI; the run directory is reloaded with genlab.load."""
    import genlab
    from genlab.training.checkpoint import checkpoint_dir

    run = workdir / "genlab-vae"
    cmd = [sys.executable, "-m", "genlab", "train", "vae", "--data", "fashion-mnist"]
    cmd += ["--data-dir", data_dir] if data_dir else []
    cmd += ["--out", str(run), "--max-minutes", str(minutes), "--seed", str(seed)]
    cmd += ["--no-progress"]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)  # incl. startup
    trainer = json.loads((checkpoint_dir(run) / "trainer.json").read_text())
    config = json.loads((run / "config.json").read_text())
    model = genlab.load(run)  # EMA weights, as `genlab sample` uses them
    images = trainer["step"] * config["train"]["batch_size"]

    def encode(x):
        return model.encode_dist(x)

    n_params = sum(p.numel() for p in model.parameters())
    return encode, model.decode, images, trainer["elapsed_s"], cpu, n_params


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training wall time each")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pythae-lr", type=float, default=1e-3, help="Adam lr for pythae")
    parser.add_argument("--classifier-seconds", type=float, default=60.0)
    parser.add_argument("--n-test", type=int, default=10000, help="test images for the ELBO")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--eval-samples",
        type=int,
        default=10000,
        help="prior samples per contender written as OUT/eval_<name>.png (100 per row, 28 px "
        "tiles, 2 px borders) for `genlab eval --images FILE --tile 28 --padding 2`; 0: none",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)

    spec = DataSpec("fashion-mnist", args.data_dir)
    train, test = load_data(spec, "train"), load_data(spec, "test")
    from genlab.models.vae import VAEConfig

    latent_dim = VAEConfig().latent_dim  # genlab's default; pythae gets the same

    t = time.perf_counter()
    net, clf_steps, clf_acc = train_feature_net(
        train.images, train.labels, test.images, test.labels, args.classifier_seconds, args.seed
    )
    print(f"feature net: {clf_steps} steps in {time.perf_counter() - t:.0f} s, "
          f"test accuracy {clf_acc:.3f}")  # fmt: skip
    test_feats = features(net, to_float(test.images[:N_FD]))
    floor = frechet_distance(features(net, to_float(train.images[:N_FD])), test_feats)

    rows = []
    with tempfile.TemporaryDirectory(prefix="genlab-bench-") as tmp:
        contenders = {
            "pythae VAE (conv MNIST nets)": lambda: train_pythae(
                train.images,
                train.labels,
                latent_dim,
                args.minutes,
                args.pythae_lr,
                args.seed,
                Path(tmp),
            ),
            "genlab VAE (default)": lambda: train_genlab(
                args.minutes, args.seed, args.data_dir, Path(tmp)
            ),
        }
        for name, fit in contenders.items():
            print(f"training {name} for {args.minutes} min ...", flush=True)
            encode, decode, images, seconds, cpu, n_params = fit()
            t = time.perf_counter()
            neg_elbo = test_neg_elbo(encode, decode, test.images[: args.n_test], args.seed)
            samples = prior_samples(decode, latent_dim, N_FD, args.seed)
            fd = frechet_distance(features(net, samples), test_feats)
            slug = name.split()[0]
            args.out.mkdir(parents=True, exist_ok=True)
            save_png(
                args.out / f"samples_{slug}.png",
                make_grid(samples[:64], nrow=8),
                {"contender": name, "seed": str(args.seed), "minutes": str(args.minutes)},
            )
            if args.eval_samples:  # for genlab's own evaluator (its features, its references)
                many = prior_samples(decode, latent_dim, args.eval_samples, args.seed + 1)
                save_png(
                    args.out / f"eval_{slug}.png",
                    make_grid(many, nrow=100, padding=2),
                    {"contender": name, "seed": str(args.seed + 1), "n": str(len(many))},
                )
            rows.append(
                {
                    "contender": name,
                    "params": n_params,
                    "train_s": round(seconds, 1),
                    "train_cpu_s": round(cpu, 1),
                    "images_seen": images,
                    "images_per_s": round(images / seconds, 1),
                    "test_neg_elbo_nats": round(neg_elbo, 2),
                    "fd_proxy": round(fd, 2),
                    "eval_s": round(time.perf_counter() - t, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    header = f"{'contender':30s} {'params':>8s} {'train s':>8s} {'cpu s':>7s} {'images':>9s} "
    header += f"{'img/s':>8s} {'test -ELBO':>11s} {'FD proxy':>9s}"
    print("\n" + header)
    for r in rows:
        print(
            f"{r['contender']:30s} {r['params'] / 1e6:7.2f}M {r['train_s']:8.1f} "
            f"{r['train_cpu_s']:7.1f} {r['images_seen']:9d} {r['images_per_s']:8.1f} "
            f"{r['test_neg_elbo_nats']:11.2f} {r['fd_proxy']:9.2f}"
        )
    print(f"FD proxy floor (5k train vs 5k test images): {floor:.2f}")
    result = {
        "minutes_each": args.minutes,
        "seed": args.seed,
        "batch_size": BATCH,
        "latent_dim": latent_dim,
        "pythae_lr": args.pythae_lr,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "feature_net": {"steps": clf_steps, "test_accuracy": round(clf_acc, 4)},
        "fd_floor_train_vs_test": round(floor, 2),
        "rows": rows,
    }
    if math.isfinite(rows[0]["test_neg_elbo_nats"]):
        a, b = rows[0], rows[-1]
        result["genlab_minus_pythae_neg_elbo"] = round(
            b["test_neg_elbo_nats"] - a["test_neg_elbo_nats"], 2
        )
        result["fd_ratio_pythae_over_genlab"] = round(a["fd_proxy"] / b["fd_proxy"], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vae_vs_pythae.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'vae_vs_pythae.json'}")


if __name__ == "__main__":
    main()
