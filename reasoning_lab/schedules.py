"""The curriculum stage's one interface to its schedules: how a stage's examples become the Trainer's batches.

A schedule (`curriculum.schedule`) is a class with
  `name`, `extends`: whether the stage may add extension rounds after the main one (and so judges forgetting);
  `plan(stages) -> stages`: the stages the curriculum trains, one trainer each (the faded schedule: one for all);
  `training_examples(examples, seed) -> (examples, stats)`: what the stage trains on (a schedule may hold some back);
  `round(data, steps, seed, replay, batching, wandb_run) -> Round`: the sampler of one trainer and its callbacks;
  `chart(summary, target) -> Path | None`: a picture of what a round's summary recorded, if it has one.

The schedules: `stages`, `mix` and `faded` (reasoning_lab.curriculum), `adaptive` (reasoning_lab.adaptive); the stage
(reasoning_lab.stages.curriculum) picks one by name and never branches on which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StageData:
    """One curriculum stage's data, as its rounds train on it."""

    # the stage's number (1-based), name and work folder (rounds, trainer checkpoints)
    k: int
    name: str
    work: Path
    # the stage's own sets, the earlier stages' sets, and the sets whose validation losses are measured (both)
    names: list[str]
    earlier_names: list[str]
    val_names: list[str]
    # tokenized examples: the stage's own first (with `difficulties`), then the replay pool (`n_replay` of them)
    dataset: object
    difficulties: list[float]
    n_replay: int
    # counts of the tokenized examples (own, replay pool)
    stats: dict
    replay_stats: dict | None
    # optimizer steps of the main round, and the extension rounds' budget in steps
    steps: int
    extra_budget: int


@dataclass
class Round:
    """What one trainer of a stage draws from: a sampler of example indices (`batches()` for token budgets), the
    Trainer callbacks that go with it, and what the round's record keeps of the schedule (None: nothing)."""

    sampler: object
    # the pacing that drew it, as the round's record names it
    pacing: str
    callbacks: list = field(default_factory=list)
    summary: Callable[[], dict] | None = None
    # sees every training batch with its logits (reasoning_lab.trl_trainers.OrderedSFTTrainer's `observe`)
    observe: Callable | None = None
    # (optimizer step, name): the stage saves the adapter there, as curriculum/<name>/ (the faded schedule's phases)
    saves: list[tuple[int, str]] = field(default_factory=list)
