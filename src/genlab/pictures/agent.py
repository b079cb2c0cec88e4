"""Pictures of agents: the training curves (`genlab plot`), the learned action values
Q(s, a) over two state dimensions (`genlab q-values`) and greedy episodes as a GIF
(`genlab play`)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from genlab.errors import GenlabError

STATE_NAMES = {  # names of the dimensions of known vector observations (for axis labels)
    "CartPole": ("cart position", "cart velocity", "pole angle (rad)", "pole angular velocity"),
    "LunarLander": (
        "x",
        "y",
        "x velocity",
        "y velocity",
        "angle",
        "angular velocity",
        "left leg contact",
        "right leg contact",
    ),  # fmt: skip
    "Acrobot": (
        "cos theta1",
        "sin theta1",
        "cos theta2",
        "sin theta2",
        "theta1 velocity",
        "theta2 velocity",
    ),  # fmt: skip
    "MountainCar": ("position", "velocity"),
}
ACTION_NAMES = {
    "CartPole": ("push left", "push right"),
    "FrozenLake": ("left", "down", "right", "up"),
    "CliffWalking": ("up", "right", "down", "left"),
    "LunarLander": ("nothing", "left engine", "main engine", "right engine"),
    "MountainCar": ("left", "none", "right"),
}
ARROWS = {"FrozenLake": ("←", "↓", "→", "↑"), "CliffWalking": ("↑", "→", "↓", "←")}


def _names(table: dict[str, tuple], env: str) -> tuple | None:
    base = env.split("/")[-1].split("-")[0]
    return table.get(base)


def plot_agent(run: str | os.PathLike, out: str | os.PathLike, metadata: dict[str, str]) -> Path:
    """Training return, greedy evaluation return (mean +- std), loss, mean max-Q and epsilon
    against environment steps, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genlab.plots import numeric_column, read_metrics_rows, save_figure
    from genlab.runs import Run

    run = Run.of(run)
    path = run.path / "metrics.csv"
    rows = read_metrics_rows(path, f"{path}: missing; the run has not logged any step yet")
    env = run.config.get("data", {}).get("env", "?")
    step = numeric_column(rows, "step")

    def col(name: str) -> np.ndarray:
        return numeric_column(rows, name)

    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    panels = [
        ("train_return", "training return (episodes ended in the window)", None),
        ("eval_return", "greedy evaluation return", "eval_std"),
        ("loss", "TD loss (Huber; table: squared TD error)", None),
        ("q", "mean Q(s, a) of the updates", None),
        ("epsilon", "epsilon (exploration)", None),
    ]
    for ax, (name, title, spread) in zip(axes, panels, strict=True):
        y = col(name)
        ok = ~np.isnan(y)
        ax.plot(step[ok], y[ok], marker="o" if name == "eval_return" else None, ms=3)
        if spread is not None and ok.any():
            s = col(spread)[ok]
            ax.fill_between(step[ok], y[ok] - s, y[ok] + s, alpha=0.25)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{env}: {run.name}", fontsize=10)
    fig.tight_layout()
    path = save_figure(fig, out, metadata)
    plt.close(fig)
    return path


def q_values(
    run: str | os.PathLike,
    out: str | os.PathLike,
    dims: tuple[int, int] | None = None,
    resolution: int = 101,
    metadata: dict[str, str] | None = None,
) -> Path:
    """The learned Q(s, a) as pictures: for a vector state, max_a Q and the greedy action over
    two state dimensions (the others at 0; CartPole: cart position and pole angle); for a
    discrete grid world, max_a Q per square with the greedy action's arrow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genlab.evaluation.agent import load_agent
    from genlab.plots import save_figure

    model, info = load_agent(run, "genlab q-values")
    env = info.spec.env
    actions = _names(ACTION_NAMES, env) or tuple(f"action {a}" for a in range(info.n_actions))
    meta = {"run": str(run), **(metadata or {})}
    if info.n_states is not None:
        fig = _grid_world(model, info, actions, plt)
    elif len(info.observation_shape) == 1 and info.observation_shape[0] >= 2:
        fig = _two_dims(model, info, actions, dims, resolution, plt)
    else:
        shape = "x".join(str(d) for d in info.observation_shape)
        raise GenlabError(
            f"genlab q-values {run}: {env} observes {shape} frames, not a state of a few "
            "named dimensions to sweep two of; q-values draws vector and grid-world states"
        )
    path = save_figure(fig, out, meta)
    plt.close(fig)
    return path


def _span(info, d: int) -> tuple[float, float]:
    """The range swept along state dimension d: the observation bounds where finite and
    small, CartPole's termination limits, else [-3, 3]."""
    env = info.spec.env
    if env.startswith("CartPole"):
        return {0: (-2.4, 2.4), 2: (-0.2095, 0.2095)}.get(d, (-2.0, 2.0))
    lo, hi = info.low[d], info.high[d]
    if math.isfinite(lo) and math.isfinite(hi) and hi - lo <= 20:
        return lo, hi
    return -3.0, 3.0


def _two_dims(model, info, actions, dims, resolution, plt):
    from matplotlib.colors import ListedColormap

    from genlab.latent import model_device

    n = info.observation_shape[0]
    if dims is None:
        dims = (0, 2) if n >= 3 else (0, 1)
    i, j = dims
    if not (0 <= i < n and 0 <= j < n and i != j):
        raise GenlabError(f"--dims {i},{j}: give two different state dimensions in 0..{n - 1}")
    (x0, x1), (y0, y1) = _span(info, i), _span(info, j)
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    gx, gy = np.meshgrid(xs, ys)
    states = np.zeros((resolution * resolution, n), dtype=np.float32)
    states[:, i], states[:, j] = gx.ravel(), gy.ravel()
    device = model_device(model)
    with torch.inference_mode():
        q = model(torch.from_numpy(states).to(device)).float().cpu().numpy()
    best = q.max(axis=1).reshape(resolution, resolution)
    greedy = q.argmax(axis=1).reshape(resolution, resolution)
    names = _names(STATE_NAMES, info.spec.env) or tuple(f"s[{d}]" for d in range(n))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    extent = (x0, x1, y0, y1)
    im = axes[0].imshow(best, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=axes[0], label="max_a Q(s, a)")
    axes[0].set_title("value of the best action, max_a Q(s, a)", fontsize=10)
    colours = plt.get_cmap("tab10")(np.arange(info.n_actions))
    axes[1].imshow(greedy, origin="lower", extent=extent, aspect="auto",
                   cmap=ListedColormap(colours), vmin=-0.5, vmax=info.n_actions - 0.5)  # fmt: skip
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[a]) for a in range(info.n_actions)]
    axes[1].legend(handles, actions, loc="upper right", fontsize=8)
    axes[1].set_title("greedy action, argmax_a Q(s, a)", fontsize=10)
    others = [names[d] for d in range(n) if d not in (i, j)]
    for ax in axes:
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
    fig.suptitle(f"{info.spec.env}: Q over {names[i]} and {names[j]} "
                 f"({', '.join(others)} at 0)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def _grid_world(model, info, actions, plt):
    from genlab.latent import model_device
    from genlab.rl.env import make_env

    env = make_env(info.spec.env)
    desc = getattr(env.unwrapped, "desc", None)
    shape = getattr(env.unwrapped, "shape", None)
    env.close()
    if desc is not None:
        rows, cols = desc.shape
    elif shape is not None:
        rows, cols = shape
    else:
        side = int(math.isqrt(info.n_states))
        rows, cols = (side, side) if side * side == info.n_states else (1, info.n_states)
    device = model_device(model)
    q = model(torch.arange(info.n_states, device=device)).float().detach().cpu().numpy()
    best, greedy = q.max(axis=1).reshape(rows, cols), q.argmax(axis=1).reshape(rows, cols)
    arrows = _names(ARROWS, info.spec.env)
    fig, ax = plt.subplots(figsize=(1.0 * cols + 2, 1.0 * rows + 1))
    im = ax.imshow(best, cmap="viridis")
    fig.colorbar(im, ax=ax, label="max_a Q(s, a)")
    for r in range(rows):
        for c in range(cols):
            label = arrows[greedy[r, c]] if arrows else str(greedy[r, c])
            if desc is not None:
                label = f"{desc[r, c].decode()}\n{label}"
            ax.text(c, r, label, ha="center", va="center", color="white", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{info.spec.env}: max_a Q(s, a) per state, arrow = greedy action", fontsize=10)
    fig.tight_layout()
    return fig


def play(
    run: str | os.PathLike, out: str | os.PathLike, episodes: int = 3, width: int = 320,
    every: int = 1, first_episode: int = 0,
) -> tuple[Path, list[float], int]:  # fmt: skip
    """An animated GIF of greedy episodes (seeded like the evaluation's episodes, from its
    `first_episode`-th).

    Returns:
        The GIF's path, each episode's return and the number of frames.
    """
    from PIL import Image

    from genlab.evaluation.agent import load_agent
    from genlab.images import save_gif
    from genlab.rl.env import EVAL_SEED
    from genlab.rl.episodes import rendered_episodes

    if episodes <= 0:
        raise GenlabError(f"--episodes {episodes}: give a positive number of episodes")
    model, info = load_agent(run, "genlab play")
    frames, returns = rendered_episodes(
        model.act, info, episodes, first_seed=EVAL_SEED + first_episode, every=every
    )
    h, w = frames[0].shape[:2]
    size = (width, max(1, round(h * width / w)))
    resample = Image.NEAREST if w < width else Image.BILINEAR  # MinAtar's 10x10 stays crisp
    small = [np.asarray(Image.fromarray(f).resize(size, resample)) for f in frames]
    return save_gif(out, small, duration_ms=20 * every), returns, len(small)
