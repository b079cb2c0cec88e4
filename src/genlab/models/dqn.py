"""Deep Q-Network (Mnih et al. 2015, "Human-level control through deep reinforcement
learning"): a network approximates the action values

    Q(s, a; theta) ~ r + gamma max_a' Q(s', a'; theta^-),

learned from a replay buffer of past transitions against a target network theta^- that follows
theta slowly (hard copies every C steps, or Polyak averaging theta^- <- tau theta + (1 - tau)
theta^-), with the Huber loss, an epsilon-greedy policy whose epsilon decays linearly, and
gradient clipping. The improvements that matter for sample efficiency are options:

- Double DQN (van Hasselt et al. 2016): the online network chooses a' = argmax Q(s', a'; theta),
  the target network values it, Q(s', a'; theta^-), which removes max's upward bias;
- dueling heads (Wang et al. 2016): Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a');
- n-step returns (`genlab.rl.replay.NStep`);
- prioritized replay (Schaul et al. 2016, `genlab.rl.replay.ReplayBuffer`).

The network (`QNetwork`, configured by `DQNConfig`) reads a vector (an MLP), a discrete state
(one-hot, then the MLP) or an image (H, W, C) of a MinAtar game (a 3x3 convolution, then the MLP,
as in Young & Tian 2019). How the agent learns with it (targets, replay, exploration, evaluation)
is `AgentConfig`, stored apart in config.json ("agent"). The learning rule is the pure functions
below; the interaction loop is `genlab.training.dqn.DQNStep`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError
from genlab.family import Configured, Family, pick
from genlab.options import Option, field_options
from genlab.rl.env import EnvSpec


@dataclass(frozen=True)
class DQNConfig:
    """The Q-network (config.json's "model")."""

    observation_shape: tuple[int, ...] = (4,)
    """Shape of one observation: (d,) a vector, (H, W, C) an image, () a discrete state."""
    n_states: int | None = None
    """Number of discrete states (one-hot input), None for vectors and images."""
    n_actions: int = 2
    """Number of discrete actions."""
    width: int = 256
    """Units of each hidden layer."""
    depth: int = 2
    """Hidden layers of the MLP."""
    channels: int = 16
    """Channels of the 3x3 convolution for image observations."""
    layer_norm: bool = True
    """LayerNorm after each hidden linear layer (steadier targets, as in Ball et al. 2023)."""
    dueling: bool = False
    """Dueling heads: Q(s, a) = V(s) + A(s, a) - mean_a A(s, a) (Wang et al. 2016)."""

    def __post_init__(self):
        object.__setattr__(self, "observation_shape", tuple(self.observation_shape))


@dataclass(frozen=True)
class AgentConfig:
    """How the agent learns with its Q-network: targets, replay, exploration and evaluation
    (config.json's "agent")."""

    double: bool = True
    """Double DQN: the online network picks argmax_a' Q(s', a'), the target network values it."""
    n_step: int = 3
    """Steps of reward summed before bootstrapping (n-step returns)."""
    gamma: float = 0.99
    """Discount factor."""
    buffer_size: int = 100_000
    """Transitions the replay buffer keeps (the oldest are overwritten)."""
    learning_starts: int = 1_000
    """Environment steps of experience collected before the first update."""
    train_every: int = 2
    """Environment steps per gradient update."""
    target_every: int = 1
    """Updates between target-network updates."""
    tau: float = 0.005
    """Polyak weight of a target update (1: a hard copy)."""
    eps_start: float = 1.0
    """Epsilon of the epsilon-greedy policy at step 0."""
    eps_end: float = 0.02
    """Epsilon after the decay."""
    eps_steps: int = 10_000
    """Environment steps of the linear epsilon decay."""
    prioritized: bool = False
    """Prioritized replay (Schaul et al. 2016, proportional)."""
    alpha: float = 0.6
    """Prioritized replay: how strongly priorities shape sampling (0: uniform)."""
    beta: float = 0.4
    """Prioritized replay: importance-sampling exponent at the start (annealed to 1)."""
    eval_every: int = 2_500
    """Environment steps between greedy evaluations during training (0: none)."""
    eval_episodes: int = 20
    """Episodes of each evaluation during training."""
    stop_when_solved: bool = True
    """Stop training once the agent has solved the environment: an evaluation during training
    reaches the solved return and `solved_episodes` validation episodes confirm it."""
    solved_return: float | None = None
    """Mean greedy return that counts as solved (None: the environment's reward_threshold,
    475 for CartPole-v1; without one, training never stops early)."""
    solved_episodes: int = 100
    """Validation episodes (seeds apart from the evaluation's) that confirm a solved agent."""

    def __post_init__(self):
        if not 0 < self.tau <= 1:
            raise GenlabError(f"--tau {self.tau}: must be in (0, 1]")
        if self.eps_end > self.eps_start:
            raise GenlabError(
                f"--eps-end {self.eps_end} must not exceed --eps-start {self.eps_start}: epsilon "
                "decays from the start value to the end value"
            )


# ------------------------------------------------------------------------------ the learning rule


def epsilon_at(step: int, config: AgentConfig) -> float:
    """Epsilon of the policy at environment step `step`: linear from eps_start to eps_end over
    eps_steps, then flat (pure)."""
    if config.eps_steps <= 0:
        return config.eps_end
    fraction = min(step / config.eps_steps, 1.0)
    return config.eps_start + fraction * (config.eps_end - config.eps_start)


def dueling_q(value: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'): (B, 1) and (B, A) -> (B, A)."""
    return value + advantage - advantage.mean(dim=-1, keepdim=True)


def bellman_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    q_next_online: torch.Tensor,
    q_next_target: torch.Tensor,
    double: bool,
) -> torch.Tensor:
    """y = R + gamma_t Q(s', a*; theta^-), with a* = argmax_a Q(s', a; theta) (Double DQN) or
    argmax_a Q(s', a; theta^-) (DQN, i.e. the max). `discount` is gamma^k, or 0 after a
    termination (`genlab.rl.replay`). Shapes: (B,), (B,), (B, A), (B, A) -> (B,)."""
    chooser = q_next_online if double else q_next_target
    best = chooser.argmax(dim=-1, keepdim=True)
    return reward + discount * q_next_target.gather(-1, best).squeeze(-1)


def polyak_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta^- <- tau theta + (1 - tau) theta^- (tau = 1: a hard copy)."""
    with torch.no_grad():
        t = list(target.parameters())
        o = list(online.parameters())
        if tau >= 1.0:
            torch._foreach_copy_(t, o)
        else:
            torch._foreach_lerp_(t, o, tau)


# ------------------------------------------------------------------------------ the network


class QNetwork(nn.Module):
    """Q(s, .; theta): an observation batch -> (B, n_actions) action values."""

    def __init__(self, config: DQNConfig):
        super().__init__()
        self.config = c = config
        shape = c.observation_shape
        if c.n_states is not None:
            self.encoder, features = nn.Identity(), c.n_states
        elif len(shape) == 3:  # (H, W, C) frames
            h, w, ch = shape
            self.encoder = nn.Sequential(nn.Conv2d(ch, c.channels, 3), nn.ReLU(), nn.Flatten())
            features = c.channels * (h - 2) * (w - 2)
        elif len(shape) == 1:
            self.encoder, features = nn.Identity(), shape[0]
        else:
            raise ValueError(f"observations of shape {shape}: expected (d,), (H, W, C) or ()")
        layers: list[nn.Module] = []
        for _ in range(c.depth):
            norm = [nn.LayerNorm(c.width)] if c.layer_norm else []
            layers += [nn.Linear(features, c.width), *norm, nn.ReLU()]
            features = c.width
        self.body = nn.Sequential(*layers)
        if c.dueling:
            self.value, self.advantage = nn.Linear(features, 1), nn.Linear(features, c.n_actions)
        else:
            self.head = nn.Linear(features, c.n_actions)

    def inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations as the network reads them: one-hot states, (B, C, H, W) float frames."""
        c = self.config
        if c.n_states is not None:
            return F.one_hot(obs.long(), c.n_states).float()
        if len(c.observation_shape) == 3:
            return obs.permute(0, 3, 1, 2).float()
        return obs.float()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.body(self.encoder(self.inputs(obs)))
        if self.config.dueling:
            return dueling_q(self.value(h), self.advantage(h))
        return self.head(h)

    @torch.inference_mode()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy actions argmax_a Q(s, a) of a batch of observations (moved to the network's
        device): (B,) int64 on that device."""
        return self(obs.to(next(self.parameters()).device)).argmax(dim=-1)

    def td_loss(
        self, sample, target: nn.Module, double: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The Huber loss of Q(s, a) against the Bellman target (Double DQN's where `double`),
        weighted by the sample's importance weights; returns (loss, TD errors (B,), logs)."""
        n = sample.obs.shape[0]
        both = torch.cat([sample.obs, sample.next_obs]) if double else sample.obs
        q_all = self(both)
        q = q_all[:n].gather(-1, sample.action[:, None]).squeeze(-1)
        with torch.no_grad():
            q_next_target = target(sample.next_obs).float()
            q_next_online = q_all[n:].detach().float() if double else q_next_target
            y = bellman_target(sample.reward, sample.discount, q_next_online, q_next_target, double)
        td = y - q.float()
        loss = (sample.weights * F.huber_loss(q.float(), y, reduction="none")).mean()
        return loss, td.detach(), {"q": q.detach().float().mean()}


# ------------------------------------------------------------------------------ the family


def env_specs(options: dict) -> dict:
    """The run's "data": the environment (`genlab.rl.env.EnvSpec`)."""
    return {"data": EnvSpec(env=options["env"])}


def read_env(specs: dict, split: str):
    """The environment's spaces (`genlab.rl.env.EnvInfo`), checked for discrete actions."""
    from genlab.rl.env import describe

    return describe(specs["data"])


def configure(options: dict, info) -> Configured:
    """A Q-network for the environment's observations and actions, and how the agent learns."""
    spaces = {"observation_shape": info.observation_shape, "n_states": info.n_states,
              "n_actions": info.n_actions}  # fmt: skip
    agent = pick(AgentConfig, options)
    return Configured(pick(DQNConfig, options, **spaces), extra={"agent": asdict(agent)})


def upgrade(config: dict) -> dict:
    """A config.json of an older layout: the agent's settings moved from "model" to their own
    entry "agent"; a run made before training could stop once solved keeps training its whole
    budget (stop_when_solved false), as it was created to."""
    if "agent" not in config and isinstance(config.get("model"), dict):
        own = {f.name for f in fields(AgentConfig)}
        model = {k: v for k, v in config["model"].items() if k not in own}
        agent = {k: v for k, v in config["model"].items() if k in own}
        config = {**config, "model": model, "agent": agent}
    agent = config.get("agent")
    if isinstance(agent, dict) and "stop_when_solved" not in agent:
        config = {**config, "agent": {**agent, "stop_when_solved": False}}
    return config


ENV = Option("env", "str", "CartPole-v1", "Gymnasium environment id (discrete actions).")

RL_TRAIN_IGNORES = (
    "ema_decay",
    "channels_last",
    "sample_every",
    "betas",
    "weight_decay",
    "warmup_steps",
)
"""TrainConfig fields that do not apply to the RL families (no EMA, no images, plain Adam)."""

RL_TRAIN_DEFAULTS = {
    "precision": "fp32",
    "warmup_steps": 0,
    "channels_last": False,  # 10x10 frames at most: nothing to gain, and fused Adam's
    # moments must keep the parameters' layout across a resume
}
"""TrainConfig values of every RL family (among them fields it ignores, which keep these)."""

AGENT = {
    "specs": env_specs,
    "read": read_env,
    "data_options": False,
    "agent": True,
    "spec_type": EnvSpec,
}
"""The Family record fields every agent family shares: an environment for data."""

FAMILY = Family(
    name="dqn",
    summary="Deep Q-Network on a gymnasium environment (Double, dueling, n-step, prioritized).",
    config=DQNConfig,
    model=QNetwork,
    configure=configure,
    options=(
        ENV,
        *field_options(
            DQNConfig,
            exclude=("observation_shape", "n_states", "n_actions"),
            width={"min": 1, "max": 65_536},
            depth={"min": 1, "max": 64},
            channels={"min": 1, "max": 1024},
        ),
        *field_options(
            AgentConfig,
            n_step={"min": 1, "max": 1000},
            gamma={"max": 1.0},
            buffer_size={"min": 1, "max": 10**8},
            train_every={"min": 1, "max": 10**6},
            target_every={"min": 1, "max": 10**9},
            tau={"min_open": True, "max": 1.0},
            eps_start={"max": 1.0},
            eps_end={"max": 1.0},
            alpha={"max": 1.0},
            beta={"max": 1.0},
            eval_episodes={"min": 1, "max": 100_000},
            solved_return={"min": None},  # returns can be negative (LunarLander's crashes)
            solved_episodes={"min": 1, "max": 100_000},
        ),
    ),
    train_defaults={
        **RL_TRAIN_DEFAULTS,
        "batch_size": 128,
        "lr": 1e-3,
        "lr_schedule": "cosine",
        "grad_clip": 10.0,
        "max_steps": 30_000,
        "log_every": 1_000,
        "checkpoint_every": 10_000,
    },
    train_ignores=RL_TRAIN_IGNORES,
    upgrade=upgrade,
    **AGENT,
)
