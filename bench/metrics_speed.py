"""Time every sample-quality metric on 10,000 real vs 10,000 generated feature vectors.

Synthetic inputs of the real sizes: (10000, 128) ReLU features per set, (10000, 10) logits, and
for the memorisation check a 60,000-image training set and 10,000 held-out images, once as
128-d features and once as 784-d flattened pixels. Generation and feature extraction are not
timed. The issue's target: all metrics (memorisation in feature space) under 60 s on 2 cores.

Then, when the real Fashion-MNIST is installed, the whole `genlab eval` scoring path on real
images (what `genlab eval RUN --n 10000` does after generating): embedding 10,000 test images
and 10,000 stand-in samples with the shipped feature network, every metric, and memorisation in
pixel space against the 60,000 training images, once with the cached test distances (every eval
after the first) and once computing them (the first eval on a machine); then the reference rows
(floor and two ceilings: 30,000 more images embedded and scored, cached after the first time).

    .venv/bin/python bench/metrics_speed.py [--with-prdc-package] [--no-end-to-end]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import torch

from genlab.evaluation import metrics as M


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="real and generated samples")
    ap.add_argument("--n-train", type=int, default=60_000)
    ap.add_argument("--with-prdc-package", action="store_true", help="also time prdc.compute_prdc")
    ap.add_argument("--no-end-to-end", action="store_true", help="skip the real-data eval path")
    args = ap.parse_args()

    g = torch.Generator().manual_seed(0)
    n, d = args.n, 128
    real = torch.randn(n, d, generator=g).relu()
    fake = (torch.randn(n, d, generator=g) * 1.1 + 0.1).relu()
    logits = torch.randn(n, 10, generator=g) * 4
    requested = torch.randint(10, (n,), generator=g)
    train_f = torch.randn(args.n_train, d, generator=g).relu()
    test_f = torch.randn(n, d, generator=g).relu()
    train_px, test_px, fake_px = (torch.rand(m, 784, generator=g) for m in (args.n_train, n, n))

    rows = [
        ("fd", lambda: M.frechet_distance(real, fake)),
        ("kid (100 subsets of 1000)", lambda: M.kernel_inception_distance(real, fake, generator=g)),
        (
            "precision/recall/density/coverage",
            lambda: M.precision_recall_density_coverage(real, fake),
        ),
        ("inception score (10 splits)", lambda: M.inception_score(logits, generator=g)),
        ("class histogram + mode coverage", lambda: M.mode_coverage(M.class_histogram(logits, 10))),
        ("conditional accuracy", lambda: M.conditional_accuracy(logits, requested)),
        (
            f"memorisation, features ({args.n_train}x{d})",
            lambda: M.memorisation(fake, train_f, test_f),
        ),
    ]
    results = [(name, timed(fn)[0]) for name, fn in rows]
    subtotal = sum(t for _, t in results)
    all_s, _ = timed(
        lambda: M.all_metrics(
            real,
            fake,
            logits,
            num_classes=10,
            requested=requested,
            train_for_memorisation=train_f,
            test_for_memorisation=test_f,
            generator=g,
        )
    )
    px_s, _ = timed(lambda: M.memorisation(fake_px, train_px, test_px))
    extra = []
    if args.with_prdc_package:
        from prdc import compute_prdc

        with contextlib.redirect_stdout(io.StringIO()):
            extra.append(
                ("prdc.compute_prdc (package, for comparison)", timed(
                    lambda: compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
                )[0])
            )  # fmt: skip

    print(f"{n} real vs {n} generated, {d}-d features, torch threads {torch.get_num_threads()}")
    print(f"| {'metric':<44} | {'seconds':>7} |")
    print(f"|{'-' * 46}|{'-' * 9}|")
    for name, t in results:
        print(f"| {name:<44} | {t:7.2f} |")
    print(f"| {'sum of the above':<44} | {subtotal:7.2f} |")
    print(f"| {'all_metrics (features memorisation), one call':<44} | {all_s:7.2f} |")
    print(f"| {f'memorisation, pixels ({args.n_train}x784)':<44} | {px_s:7.2f} |")
    for name, t in extra:
        print(f"| {name:<44} | {t:7.2f} |")
    print(f"target: all_metrics < 60 s -> {'met' if all_s < 60 else 'MISSED'}")
    if not args.no_end_to_end:
        end_to_end(args.n)


def end_to_end(n: int) -> None:
    """Time `Evaluator.score` and `Evaluator.references` on the real Fashion-MNIST."""
    import tempfile
    from pathlib import Path

    from genlab.data.fashion_mnist import load_fashion_mnist
    from genlab.errors import GenlabError
    from genlab.evaluation import load_feature_network
    from genlab.evaluation.evaluate import EvalConfig, Evaluator, add_noise

    try:
        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    except GenlabError as e:
        print(f"end-to-end skipped: {e}")
        return
    net = load_feature_network()
    # stand-in samples: training images with light noise (not copies, not the test set)
    g = torch.Generator().manual_seed(0)
    samples = add_noise(train.images[torch.randperm(len(train), generator=g)[:n]], 0.05, g)
    with tempfile.TemporaryDirectory() as cache:
        ev = Evaluator(train, test, net, config=EvalConfig(n=n), cache=Path(cache))
        cold_nn, _ = timed(ev.test_nn_dist)
        embed_real, _ = timed(ev.real_features)
        ev._real = None  # score() embeds the real set again, as a fresh `genlab eval` does
        score_s, result = timed(lambda: ev.score(samples))
        refs_s, _ = timed(ev.references)
        refs_warm, _ = timed(ev.references)
    print(f"\nend to end on Fashion-MNIST: {n} samples vs {len(ev.real_index)} test images")
    print(f"| {'step':<58} | {'seconds':>7} |")
    print(f"|{'-' * 60}|{'-' * 9}|")
    rows = [
        (f"embed {len(ev.real_index)} real images (alone)", embed_real),
        ("score(): embed real + samples, all metrics, memorisation", score_s),
        ("test->train pixel distances (first eval only, then cached)", cold_nn),
        ("references: floor + 2 ceilings (first eval only)", refs_s),
        ("references from the cache", refs_warm),
    ]
    for name, t in rows:
        print(f"| {name:<58} | {t:7.2f} |")
    print(f"fd {result['fd']:.3f}, memorised {result['memorised_fraction']:.4f}")
    print(f"target: score() < 60 s -> {'met' if score_s < 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
