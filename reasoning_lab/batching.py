"""Batches sized by tokens (`warmup.max_tokens_per_batch`, `curriculum.max_tokens_per_batch`): what the HF Trainer's
fixed count of examples per step lacks.

A step's batch takes examples while its cost stays within the budget: padded, the count times the longest example
(what the padded matrices hold); padding-free (`*.padding_free`, TRL's collator: one row, position ids restarting
at each example), the sum of the lengths. An example longer than the budget forms a batch alone, whole: nothing is
cut. An example that does not fit is not dropped: it opens the next batch.

- `Filler`: fills one batch at a time from a stream of indices (the stage's sampler decides what comes next).
- `LengthBatches`: the warm-up's batch sampler: the examples cut into budget-filled batches once (seeded shuffle,
  then sorted by length within windows, so a batch holds similar lengths), the batches' order shuffled anew every
  epoch. The same batches every epoch, so a resumed run skips exactly the batches it trained.
- `StepBatches`: a batch sampler over a stage sampler's `batches()` (the curriculum's pacing, the adaptive bandit),
  for the Trainer's DataLoader when batches vary in size.
- `probed_budget`: the budget that fills a GPU (`*.max_tokens_per_batch=0`), from the peak memory of a training
  step measured at two budgets (reasoning_lab.sft.gpu_budget takes the measurements).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from torch.utils.data import Sampler


def batch_cost(lengths: list[int], padding_free: bool) -> int:
    """Tokens the batch's tensors hold: the sum of the lengths (padding-free), else count x longest."""
    if not lengths:
        return 0
    return sum(lengths) if padding_free else len(lengths) * max(lengths)


def fits(batch: list[int], i: int, lengths: list[int], budget: int, padding_free: bool) -> bool:
    """Whether example `i` joins `batch` within the budget (an empty batch takes any example, however long)."""
    return not batch or batch_cost([lengths[j] for j in batch] + [lengths[i]], padding_free) <= budget


class Filler:
    """Batches of at most `budget` tokens (`batch_cost`) from `draw()`, which gives the next index."""

    def __init__(self, lengths: list[int], budget: int, padding_free: bool):
        self.lengths, self.budget, self.padding_free = lengths, budget, padding_free
        self.waiting: int | None = None  # drawn, did not fit: opens the next batch

    def fill(self, draw: Callable[[], int]) -> list[int]:
        batch = [self.waiting if self.waiting is not None else draw()]
        self.waiting = None
        while True:
            i = draw()
            if not fits(batch, i, self.lengths, self.budget, self.padding_free):
                self.waiting = i
                return batch
            batch.append(i)


def cut(order: list[int], lengths: list[int], budget: int, padding_free: bool) -> list[list[int]]:
    """`order` cut, in order, into consecutive batches within the budget (every index kept)."""
    batches, batch = [], []
    for i in order:
        if not fits(batch, i, lengths, budget, padding_free):
            batches.append(batch)
            batch = []
        batch.append(i)
    return batches + ([batch] if batch else [])


class LengthBatches(Sampler[list[int]]):
    """Every example once per epoch, in batches within `budget` tokens. Windows of `window` examples of a seeded
    shuffle are sorted by length before cutting (similar lengths share a batch; less padding)."""

    def __init__(self, lengths: list[int], budget: int, padding_free: bool, seed: int, window: int = 256):
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
        self.batches = []
        for start in range(0, len(order), window):
            part = sorted(order[start : start + window], key=lambda i: lengths[i])
            self.batches += cut(part, lengths, budget, padding_free)
        self.seed, self.epoch, self.budget = seed, 0, budget

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.batches)))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        for b in order:
            yield list(self.batches[b])


class StepBatches(Sampler[list[int]]):
    """The batches a stage sampler draws (`sampler.batches()`, `sampler.total_batches` of them), one per step."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __len__(self) -> int:
        return self.sampler.total_batches

    def __iter__(self) -> Iterator[list[int]]:
        return self.sampler.batches()


def probed_budget(peak_at: Callable[[int], float], low: int, high: int, capacity: float, share: float = 0.85,
                  multiple: int = 256) -> tuple[int, dict]:
    """The budget at which the line through two measured peaks (`peak_at(low)`, `peak_at(high)`, bytes) reaches
    `share` of `capacity` bytes, rounded down to a multiple of `multiple` and at least `low`; with what was
    measured."""
    peaks = {low: peak_at(low), high: peak_at(high)}
    slope = (peaks[high] - peaks[low]) / (high - low)
    budget = high if slope <= 0 else low + (share * capacity - peaks[low]) / slope
    return max(low, int(budget // multiple) * multiple), {"peaks": peaks, "capacity": capacity, "share": share}
