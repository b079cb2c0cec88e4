"""What bench/dqn_cartpole.py (genlab) and bench/sb3_dqn.py (the peer, in its own venv) report
the same way: the first evaluation at the threshold, whether the later ones stay there, one line
per seed and the summary over seeds. Standard library only, so that both venvs import it."""

from __future__ import annotations

import statistics


def first_and_stays(points: list[tuple[int, float]], threshold: float) -> tuple[int | None, bool]:
    """The step of the first evaluation >= threshold, and whether every later one is too."""
    first = next((s for s, r in points if r >= threshold), None)
    return first, first is not None and all(r >= threshold for s, r in points if s >= first)


def print_seed(seed: int, first, stays: bool, points, threshold: float, wall: float,
               eval_s: float) -> None:  # fmt: skip
    line = " ".join(f"{s / 1000:g}k:{r:.0f}" for s, r in points)
    print(f"seed {seed}: first >= {threshold:g} at {first}, stays {stays}, "
          f"final {points[-1][1]:.1f}, wall {wall:.1f} s "
          f"(evaluation {eval_s:.1f} s)\n  {line}", flush=True)  # fmt: skip


def print_summary(label: str, results: list[dict], threshold: float, within: int) -> None:
    reached = [r["first"] for r in results if r["first"] is not None and r["first"] <= within]
    print(
        f"\n{label}: {len(reached)}/{len(results)} seeds reach {threshold:g} within "
        f"{within} steps; stay there: {sum(r['stays'] for r in results)}/{len(results)}"
    )
    if reached:
        print(f"steps to threshold: median {statistics.median(reached):.0f}, worst {max(reached)}")
    print(
        f"wall per run: {statistics.mean(r['wall_s'] for r in results):.1f} s "
        f"(without evaluation {statistics.mean(r['train_s'] for r in results):.1f} s)"
    )
