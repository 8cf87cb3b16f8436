"""Which prompts the RL stage trains on, and in what order (TRL's GRPO/RLOO trainers and reasoning_lab.ppo alike).

- `AdaptiveDifficulty`: AdaRFT (Shi et al. 2025). After each step the target difficulty moves by
  T' = clip(T + eta * tanh(alpha * (mean_reward - beta)), d_min, d_max), and the next prompts are the
  unused problems nearest T, so the batch's mean reward stays near beta. Difficulties are taken as
  quantiles of the prompt pool (0 the easiest, 1 the hardest), so T means the same on every data set.
- `PromptSampler`: TRL's prompt order (each prompt index repeated `num_generations` times in a row,
  the chunk repeated `repeat` times), from a seeded shuffle or from `AdaptiveDifficulty`.
"""

from __future__ import annotations

import math
import random

from torch.utils.data import Sampler


class AdaptiveDifficulty:
    def __init__(self, difficulties: list[float], target: float, eta: float, alpha: float, beta: float, seed: int):
        self.difficulties = quantiles(difficulties)
        self.d_min, self.d_max = min(self.difficulties), max(self.difficulties)
        self.target = min(max(target, self.d_min), self.d_max)
        self.eta, self.alpha, self.beta = eta, alpha, beta
        self.rng = random.Random(seed)
        self.unused = set(range(len(difficulties)))
        self.history: list[dict] = []

    def update(self, mean_reward: float) -> float:
        step = self.eta * math.tanh(self.alpha * (mean_reward - self.beta))
        self.target = min(max(self.target + step, self.d_min), self.d_max)
        self.history.append({"reward": mean_reward, "target": self.target})
        return self.target

    def pick(self, n: int) -> list[int]:
        """The `n` unused problems nearest the target (ties broken at random); all are reused once spent."""
        if len(self.unused) < n:
            self.unused = set(range(len(self.difficulties)))
        ranked = sorted(self.unused, key=lambda i: (abs(self.difficulties[i] - self.target), self.rng.random()))
        chosen = ranked[:n]
        self.unused.difference_update(chosen)
        return chosen


def quantiles(values: list[float]) -> list[float]:
    """Each value's rank in [0, 1] (ties share their mean rank)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks, start = [0.0] * len(values), 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 / max(len(values) - 1, 1)
        start = end + 1
    return ranks


class PromptSampler(Sampler[int]):
    """Indices in TRL's GRPO/RLOO order: for each chunk of `batch_size` prompts, `repeat` times, each
    prompt `num_generations` times in a row. Prompts come from `adaptive` when given, else a seeded shuffle."""

    def __init__(self, size: int, batch_size: int, num_generations: int, repeat: int, seed: int,
                 adaptive: AdaptiveDifficulty | None = None):
        self.size, self.batch_size, self.num_generations, self.repeat = size, batch_size, num_generations, repeat
        self.seed, self.rng, self.adaptive = seed, random.Random(seed), adaptive

    def __len__(self) -> int:
        return (self.size // self.batch_size) * self.batch_size * self.num_generations * self.repeat

    def chunks(self):
        if self.adaptive is not None:
            for _ in range(self.size // self.batch_size):
                yield self.adaptive.pick(self.batch_size)
            return
        order = list(range(self.size))
        self.rng.shuffle(order)
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            yield order[start : start + self.batch_size]

    def __iter__(self):
        for chunk in self.chunks():
            for _ in range(self.repeat):
                for index in chunk:
                    yield from [index] * self.num_generations
