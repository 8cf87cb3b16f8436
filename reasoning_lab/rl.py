"""What the RL stage adds around TRL's GRPO/RLOO trainers and reasoning_lab.ppo.

- `AdaptiveDifficulty`: AdaRFT (Shi et al. 2025). After each step the target difficulty moves by
  T' = clip(T + eta * tanh(alpha * (mean_reward - beta)), d_min, d_max), and the next prompts are the
  unused problems nearest T, so the batch's mean reward stays near beta. Difficulties are taken as
  quantiles of the prompt pool (0 the easiest, 1 the hardest), so T means the same on every data set.
- `PromptSampler`: TRL's prompt order (each prompt index repeated `num_generations` times in a row,
  the chunk repeated `repeat` times), from a seeded shuffle or from `AdaptiveDifficulty`.
- `GRPO` / `RLOO`: TRL's trainers with that sampler and the option to leave completions with zero
  advantage (their group's rewards all equal: no signal) out of the loss.
- `GenerationTimer`: seconds spent in `model.generate`, for the generate/update split.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import contextmanager

from torch.utils.data import Sampler
from transformers import TrainerCallback
from trl import GRPOTrainer, RLOOTrainer


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
        self.rng, self.adaptive = random.Random(seed), adaptive

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


class RewardFeedback(TrainerCallback):
    """Feeds each logged mean correctness reward to AdaptiveDifficulty."""

    def __init__(self, adaptive: AdaptiveDifficulty, key: str = "rewards/correctness/mean"):
        self.adaptive, self.key = adaptive, key

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs:
            logs["difficulty_target"] = self.adaptive.update(logs.get(self.key, logs["reward"]))


class AtSteps(TrainerCallback):
    """Calls `hook(step, model)` every `every` optimizer steps (e.g. a held-out evaluation)."""

    def __init__(self, every: int, hook):
        self.every, self.hook = every, hook

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.hook(state.global_step, model)


class _Selection:
    """Mixin: our prompt sampler, and completions with zero advantage left out of the loss."""

    def __init__(self, *args, prompt_sampler: PromptSampler, drop_uniform_groups: bool = False, **kwargs):
        self.prompt_sampler, self.drop_uniform_groups = prompt_sampler, drop_uniform_groups
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, dataset=None):
        return self.prompt_sampler

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.drop_uniform_groups:
            zero = output["advantages"] == 0
            if zero.dim() > 1:
                zero = zero.all(dim=-1)
            if not zero.all():  # a batch without any signal is left as it is
                output["completion_mask"] = output["completion_mask"] * (~zero).unsqueeze(-1)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["dropped_uniform_share"].append(zero.float().mean().item())
        return output


class GRPO(_Selection, GRPOTrainer):
    pass


class RLOO(_Selection, RLOOTrainer):
    pass


class GenerationTimer:
    """Wraps `model.generate` to add up the seconds spent in it; time inside `excluded()` (held-out
    evaluations during training) is counted apart, in `excluded_seconds`."""

    def __init__(self, model):
        self.seconds, self.calls, self.excluded_seconds, self.paused = 0.0, 0, 0.0, False
        inner = model.generate

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                if not self.paused:
                    self.seconds += time.perf_counter() - began
                    self.calls += 1

        model.generate = timed

    @contextmanager
    def excluded(self):
        self.paused, began = True, time.perf_counter()
        try:
            yield
        finally:
            self.paused = False
            self.excluded_seconds += time.perf_counter() - began
