"""Prompt selection and trainer extensions of the RL stage, around TRL's GRPO/RLOO trainers and reasoning_lab.ppo.

- `AdaptiveDifficulty`: AdaRFT (Shi et al. 2025). After each step the target difficulty moves by
  T' = clip(T + eta * tanh(alpha * (mean_reward - beta)), d_min, d_max), and the next prompts are the
  unused problems nearest T, so the batch's mean reward stays near beta. Difficulties are taken as
  quantiles of the prompt pool (0 the easiest, 1 the hardest), so T means the same on every data set.
- `PromptSampler`: TRL's prompt order (each prompt index repeated `num_generations` times in a row,
  the chunk repeated `repeat` times), from a seeded shuffle or from `AdaptiveDifficulty`.
- `GRPO` / `RLOO`: TRL's trainers with that sampler, the option to leave completions with zero
  advantage (their group's rewards all equal: no signal) out of the loss, and DAPO's dynamic sampling
  (Yu et al. 2025): such groups are replaced by groups of fresh prompts, generated in at most
  `max_refill_rounds` extra rounds, so the batch holds `batch_size` groups with signal.
- `GenerationTimer`: seconds spent in `model.generate`, for the generate/update split.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import contextmanager

import torch
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
    """Mixin: our prompt sampler; completions with zero advantage left out of the loss; DAPO's dynamic
    sampling (groups whose rewards are all equal replaced by groups of fresh prompts)."""

    def __init__(self, *args, prompt_sampler: PromptSampler, drop_uniform_groups: bool = False,
                 dynamic_sampling: bool = False, max_refill_rounds: int = 2, **kwargs):
        self.prompt_sampler, self.drop_uniform_groups = prompt_sampler, drop_uniform_groups
        self.dynamic_sampling, self.max_refill_rounds = dynamic_sampling, max_refill_rounds
        super().__init__(*args, **kwargs)
        self._fresh = fresh_prompts(prompt_sampler)

    def _get_train_sampler(self, dataset=None):
        return self.prompt_sampler

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        if self.dynamic_sampling and mode == "train":
            output = self._refill(output, len(inputs) // self.num_generations, mode)
        if self.drop_uniform_groups or self.dynamic_sampling:
            zero = ~informative(output["advantages"], 1)
            if not zero.all():  # a batch without any signal is left as it is
                output["completion_mask"] = output["completion_mask"] * (~zero).unsqueeze(-1)
                if "num_items_in_batch" in output:  # GRPO's token normaliser counts what is left in the loss
                    output["num_items_in_batch"] = output["completion_mask"].sum()
            self._metrics[mode]["dropped_uniform_share"].append(zero.float().mean().item())
        return output

    def _refill(self, output: dict, groups: int, mode: str) -> dict:
        """Generate groups of fresh prompts until `groups` groups carry signal or `max_refill_rounds` extra
        rounds are spent; the batch keeps its size (uniform groups fill what is still missing)."""
        n = self.num_generations
        parts, keep = [output], [informative(output["advantages"], n)]
        found, rounds = int(keep[0].sum()), 0
        while found < groups and rounds < self.max_refill_rounds:
            rows = [self.train_dataset[next(self._fresh)] for _ in range(groups - found)]
            more = super()._generate_and_score_completions([row for row in rows for _ in range(n)])
            parts.append(more)
            keep.append(informative(more["advantages"], n))
            found, rounds = found + int(keep[-1].sum()), rounds + 1
        generated = sum(len(k) for k in keep)
        chosen = [(p, g) for p, k in enumerate(keep) for g in range(len(k)) if k[g]][:groups]
        chosen += [(0, g) for g in range(groups) if not keep[0][g]][: groups - len(chosen)]
        self._metrics[mode]["dynamic_sampling/filtered_share"].append(1 - found / generated)
        self._metrics[mode]["dynamic_sampling/extra_rounds"].append(rounds)
        self._metrics[mode]["dynamic_sampling/generations"].append(generated * n)
        return merge_groups(parts, chosen, n, self.processing_class.pad_token_id)


def informative(advantages, n: int):
    """Per group of `n` completions: whether any advantage is non-zero (n=1: per completion)."""
    nonzero = advantages != 0
    if nonzero.dim() > 1:  # per-token advantages
        nonzero = nonzero.any(dim=-1)
    return nonzero.view(-1, n).any(dim=1)


def fresh_prompts(sampler: PromptSampler):
    """Endless prompt indices for refills: seeded passes of the same sampler kind, apart from its own order."""
    passes = 1
    while True:
        extra = PromptSampler(sampler.size, sampler.batch_size, 1, 1, sampler.seed + 1000 * passes, sampler.adaptive)
        for chunk in extra.chunks():
            yield from chunk
        passes += 1


def merge_groups(parts: list[dict], chosen: list[tuple[int, int]], n: int, pad_id: int) -> dict:
    """One batch from the groups `chosen` ((part, group) pairs) of several generate-and-score outputs:
    prompts re-padded on the left, completions and per-token values on the right."""
    merged = {}
    for key, first in parts[0].items():
        if not isinstance(first, torch.Tensor) or first.dim() == 0 or len(first) != len(parts[0]["advantages"]):
            merged[key] = first
            continue
        width = max(part[key].shape[-1] for part in parts) if first.dim() > 1 else 0
        rows = []
        for p, g in chosen:
            value = parts[p][key][g * n : (g + 1) * n]
            if first.dim() > 1 and value.shape[-1] < width:
                pad = torch.full((*value.shape[:-1], width - value.shape[-1]), pad_id if key.endswith("_ids") else 0,
                                 dtype=value.dtype, device=value.device)
                value = torch.cat([pad, value] if key.startswith("prompt_") else [value, pad], dim=-1)
            rows.append(value)
        merged[key] = torch.cat(rows)
    if "num_items_in_batch" in merged:
        merged["num_items_in_batch"] = merged["completion_mask"].sum()
    return merged


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
