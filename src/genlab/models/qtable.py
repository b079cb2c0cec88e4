"""Tabular Q-learning (Watkins 1989): one number Q(s, a) per state and action, updated after
every step towards the one-step target

    Q(s, a) <- Q(s, a) + alpha (r + gamma (1 - terminated) max_a' Q(s', a') - Q(s, a)),

with an epsilon-greedy policy. It needs a finite, enumerable state space (FrozenLake's 16
squares, CliffWalking's 48): the lecture's point is that the table works there and cannot even
be built for CartPole's continuous state, where the network of `genlab.models.dqn` does.
The interaction loop is `genlab.training.dqn.QTableStep`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.family import Configured, Family, pick
from genlab.models.dqn import AGENT, ENV, RL_TRAIN_DEFAULTS, RL_TRAIN_IGNORES
from genlab.options import field_options


@dataclass(frozen=True)
class QTableConfig:
    """A Q-table and how it learns (stored in config.json)."""

    n_states: int = 16
    """Number of discrete states."""
    n_actions: int = 4
    """Number of discrete actions."""
    alpha: float = 0.1
    """Step size of the update."""
    gamma: float = 0.99
    """Discount factor."""
    eps_start: float = 1.0
    """Epsilon of the epsilon-greedy policy at step 0."""
    eps_end: float = 0.05
    """Epsilon after the decay."""
    eps_steps: int = 50_000
    """Environment steps of the linear epsilon decay."""
    eval_every: int = 10_000
    """Environment steps between greedy evaluations during training (0: none)."""
    eval_episodes: int = 100
    """Episodes of each evaluation during training."""

    def __post_init__(self):
        if self.eps_end > self.eps_start:
            raise GenlabError(
                f"--eps-end {self.eps_end} must not exceed --eps-start {self.eps_start}: epsilon "
                "decays from the start value to the end value"
            )


def q_learning_update(
    q: torch.Tensor, s: int, a: int, r: float, s_next: int, terminated: bool, alpha, gamma
) -> float:
    """One Q-learning update of the table `q` (n_states, n_actions) in place; returns the TD
    error. Time-limit truncation is not termination: it still bootstraps from max Q(s', .)."""
    bootstrap = 0.0 if terminated else gamma * float(q[s_next].max())
    td = r + bootstrap - float(q[s, a])
    q[s, a] += alpha * td
    return td


class QTable(nn.Module):
    """Q(s, a) as a table (a buffer, saved with the weights; no gradients)."""

    def __init__(self, config: QTableConfig):
        super().__init__()
        self.config = config
        self.register_buffer("q", torch.zeros(config.n_states, config.n_actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The rows of a batch of states: (B,) -> (B, n_actions)."""
        return self.q[obs.long()]

    @torch.inference_mode()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy actions argmax_a Q(s, a) (ties: the lowest action); the states are moved to
        the table's device."""
        return self(obs.to(self.q.device)).argmax(dim=-1)


def configure(options: dict, info) -> Configured:
    """A table of the environment's states x actions; a one-line error where there is none."""
    if info.n_states is None:
        shape = "x".join(str(d) for d in info.observation_shape)
        raise GenlabError(
            f"qtable needs a finite set of states; {info.spec.env} observes a continuous "
            f"state of shape ({shape}) that a table cannot enumerate: train dqn on it "
            "(a network generalises between states), or qtable on FrozenLake-v1 or CliffWalking-v1"
        )
    return Configured(pick(QTableConfig, options, n_states=info.n_states, n_actions=info.n_actions))


FAMILY = Family(
    name="qtable",
    summary="Tabular Q-learning on a small discrete environment (FrozenLake, CliffWalking).",
    config=QTableConfig,
    model=QTable,
    configure=configure,
    options=(
        dataclasses.replace(ENV, default="FrozenLake-v1"),
        *field_options(
            QTableConfig,
            exclude=("n_states", "n_actions"),
            alpha={"min_open": True, "max": 1.0},
            gamma={"max": 1.0},
            eps_start={"max": 1.0},
            eps_end={"max": 1.0},
            eval_episodes={"min": 1, "max": 100_000},
        ),
    ),
    train_defaults={
        "max_steps": 200_000,
        "log_every": 5_000,
        "checkpoint_every": 50_000,
        **RL_TRAIN_DEFAULTS,
        "lr_schedule": "constant",
        "batch_size": 1,
        "grad_clip": None,
    },
    train_ignores=(
        *RL_TRAIN_IGNORES,
        "lr",
        "lr_schedule",
        "min_lr_ratio",
        "grad_clip",
        "batch_size",
        "precision",
    ),  # fmt: skip
    **AGENT,
)
