"""The replay buffer (Mnih et al. 2015), n-step returns, and prioritized sampling (Schaul et
al. 2016), held in numpy arrays and saved as tensors with the checkpoint (no pickle).

A stored transition is (s_t, a_t, R_t, gamma_t, s_{t+k}): with n-step returns,

    R_t = sum_{j<k} gamma^j r_{t+j},   gamma_t = gamma^k if the episode did not terminate, else 0,

where k = n, or fewer when the episode ended within n steps. The target of Q(s_t, a_t) is then
R_t + gamma_t max_a Q'(s_{t+k}, a). Termination (the pole fell, the lander crashed) has no value
after it, so gamma_t = 0; time-limit truncation is not an end of the task, so it bootstraps from
the last observation with gamma^k.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np
import torch


class Transition(NamedTuple):
    """One stored transition: the n-step return `reward` and its bootstrap `discount`."""

    obs: np.ndarray
    action: int
    reward: float
    discount: float
    next_obs: np.ndarray


class NStep:
    """Turns one-step experience into n-step transitions, per episode.

    `push` takes (s_t, a_t, r_t, s_{t+1}, terminated, truncated) and returns the transitions
    that are complete: the oldest pending one once n steps are pending, and every pending one
    when the episode ends (terminated: no bootstrap; truncated: bootstrap from s_{t+1}).
    """

    def __init__(self, n: int, gamma: float):
        self.n, self.gamma = n, gamma
        self.pending: deque[tuple[np.ndarray, int, float]] = deque()

    def _emit(self, next_obs: np.ndarray, terminated: bool) -> Transition:
        rewards = [r for _, _, r in self.pending]
        ret = sum(self.gamma**j * r for j, r in enumerate(rewards))
        discount = 0.0 if terminated else self.gamma ** len(rewards)
        obs, action, _ = self.pending.popleft()
        return Transition(obs, action, ret, discount, next_obs)

    def push(self, obs, action, reward, next_obs, terminated, truncated) -> list[Transition]:
        self.pending.append((obs, int(action), float(reward)))
        if terminated or truncated:
            out = []
            while self.pending:
                out.append(self._emit(next_obs, terminated))
            return out
        if len(self.pending) == self.n:
            return [self._emit(next_obs, False)]
        return []

    def state(self) -> dict[str, torch.Tensor]:
        """The pending steps as tensors (for the checkpoint)."""
        if not self.pending:
            return {}
        obs = np.stack([o for o, _, _ in self.pending])
        return {
            "obs": torch.from_numpy(obs.copy()),
            "action": torch.tensor([a for _, a, _ in self.pending], dtype=torch.int64),
            "reward": torch.tensor([r for _, _, r in self.pending], dtype=torch.float64),
        }

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.pending.clear()
        if state:
            for o, a, r in zip(state["obs"], state["action"], state["reward"], strict=True):
                self.pending.append((o.numpy().copy(), int(a), float(r)))


class Sample(NamedTuple):
    """A batch drawn from the buffer, as tensors; `weights` are the importance-sampling weights
    of prioritized replay (ones otherwise) and `index` the rows drawn (to update priorities)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    next_obs: torch.Tensor
    weights: torch.Tensor
    index: torch.Tensor


class ReplayBuffer:
    """A ring of the last `capacity` transitions; uniform or prioritized sampling.

    Prioritized (proportional variant): transition i is drawn with probability
    p_i^alpha / sum_j p_j^alpha, p_i = |TD error| + eps (new ones get the largest p so far), and
    weighted by (N P(i))^-beta / max_j (N P(j))^-beta.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: Any,
        prioritized: bool = False,
        alpha: float = 0.6,
        eps: float = 1e-3,
    ):
        self.capacity, self.prioritized, self.alpha, self.eps = capacity, prioritized, alpha, eps
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.discount = np.zeros(capacity, dtype=np.float32)
        self.priority = np.zeros(capacity, dtype=np.float64) if prioritized else None
        self.max_priority = 1.0
        self.pos, self.size = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, t: Transition) -> None:
        """Store one transition, overwriting the oldest once full."""
        i = self.pos
        self.obs[i], self.next_obs[i] = t.obs, t.next_obs
        self.action[i], self.reward[i], self.discount[i] = t.action, t.reward, t.discount
        if self.priority is not None:
            self.priority[i] = self.max_priority
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, generator: torch.Generator, beta: float = 0.4) -> Sample:
        """A batch of `batch` transitions drawn with replacement (seeded by `generator`)."""
        if self.priority is None:
            index = torch.randint(self.size, (batch,), generator=generator)
            weights = torch.ones(batch)
        else:
            p = torch.from_numpy(self.priority[: self.size] ** self.alpha)
            probs = p / p.sum()
            index = torch.multinomial(probs, batch, replacement=True, generator=generator)
            w = (self.size * probs[index]) ** -beta
            weights = (w / ((self.size * probs.min()) ** -beta)).float()
        i = index.numpy()
        return Sample(
            torch.from_numpy(self.obs[i]),
            torch.from_numpy(self.action[i]),
            torch.from_numpy(self.reward[i]),
            torch.from_numpy(self.discount[i]),
            torch.from_numpy(self.next_obs[i]),
            weights,
            index,
        )

    def update_priorities(self, index: torch.Tensor, td_error: torch.Tensor) -> None:
        """Set the priorities of drawn transitions to |TD error| + eps."""
        if self.priority is None:
            return
        p = td_error.detach().abs().double().numpy() + self.eps
        self.priority[index.numpy()] = p
        self.max_priority = max(self.max_priority, float(p.max()))

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The filled rows as tensors, and the ring's position (for the checkpoint)."""
        n = self.size
        tensors = {
            "obs": torch.from_numpy(self.obs[:n].copy()),
            "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
            "action": torch.from_numpy(self.action[:n].copy()),
            "reward": torch.from_numpy(self.reward[:n].copy()),
            "discount": torch.from_numpy(self.discount[:n].copy()),
        }
        if self.priority is not None:
            tensors["priority"] = torch.from_numpy(self.priority[:n].copy())
        return tensors, {"pos": self.pos, "size": n, "max_priority": self.max_priority}

    def load(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Put back what `state` returned."""
        n = int(meta["size"])
        if n > self.capacity:
            raise ValueError(f"a buffer of {n} transitions does not fit capacity {self.capacity}")
        for name in ("obs", "next_obs", "action", "reward", "discount"):
            getattr(self, name)[:n] = tensors[name].numpy()
        if self.priority is not None and "priority" in tensors:
            self.priority[:n] = tensors["priority"].numpy()
        self.pos, self.size = int(meta["pos"]), n
        self.max_priority = float(meta.get("max_priority", 1.0))
