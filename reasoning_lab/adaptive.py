"""The adaptive curriculum (`curriculum=adaptive`): sampling weights over buckets of examples, read from the model
as it learns. What transformers, TRL and peft do not provide.

- Buckets: a stage's examples grouped by (set, difficulty level). A bucket's signal is a completion loss, from one of
  two sources (`adaptive.source`): `held_back`, a few examples of each bucket held back from training
  (`held_back_split`) and measured by a no-grad forward pass at each update (`HeldBack`); or `training`, the losses
  of the bucket's examples in the training batches since the last update, read from the training step's own
  logits (`TrainingLosses`: no extra forward pass, nothing held back, but other examples at each update).
- `BucketBandit`: a non-stationary bandit over the buckets (Graves et al. 2017; Matiisen et al., "Teacher-Student
  Curriculum Learning"). Every `update_every` steps each bucket's score is updated from its held-back losses:
    progress: s <- smoothing * s + (1 - smoothing) * |L_prev - L_now|   (learning progress, either way: a bucket
              being forgotten draws weight back)
    loss:     s <- L_now                                                   (the buckets the model is worst at)
  and the weights become w = (1 - explore) * softmax(s / (temperature * mean(s))) + explore / K. The explore floor
  is the replay: every bucket keeps at least explore / K of each batch. A bucket with no loss at an update (no
  example of it trained since the last) keeps its score. Stratified (`adaptive.stratified`), each set
  keeps a fixed share of the weight (its share of the stage's training examples, as in the shuffled mix) and the
  same rule runs over the set's own buckets (its difficulty levels) within that share: no set can be starved.
- `BucketSampler`: batches for the Trainer, each example's bucket drawn by the current weights, the examples of a
  bucket in seeded shuffled epochs (stratified: every batch gives each set its share to within one example). A new set of weights applies from the next batch not yet drawn; the schedule
  (which weights from which batch) is saved with every trainer checkpoint, so a resumed run draws the same batches.
- `BanditUpdates`: the Trainer callback that measures, updates, logs and saves.
- `AdaptiveSchedule`: `curriculum=adaptive` behind the curriculum stage's schedule interface
  (reasoning_lab.schedules): it holds back each bucket's examples, and each round draws by a fresh bandit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Sampler

from reasoning_lab.batching import Filler
from reasoning_lab.callbacks import CheckpointState
from reasoning_lab.schedules import Round, StageData
from reasoning_lab.signals import example_losses, token_nll
from reasoning_lab.timing import phase

SIGNALS = ("progress", "loss")
STATE = "adaptive_curriculum.json"  # in every trainer checkpoint: the bandit and the sampler's schedule


def bucket_names(sets: list[str], difficulties: list[float]) -> tuple[list[str], list[int]]:
    """The bucket of each example (`<set>/<difficulty>`), as the list of names and an index per example."""
    labels = [f"{name}/{difficulty:g}" for name, difficulty in zip(sets, difficulties)]
    names = sorted(set(labels))
    return names, [names.index(label) for label in labels]


def held_back_split(buckets: list[int], per_bucket: int, seed: int) -> tuple[list[int], list[int]]:
    """Indices to train on and indices held back: `per_bucket` of each bucket (at most a quarter of it), seeded."""
    rng = random.Random(seed)
    members: dict[int, list[int]] = {}
    for i, b in enumerate(buckets):
        members.setdefault(b, []).append(i)
    held = sorted(i for rows in members.values() for i in rng.sample(rows, min(per_bucket, len(rows) // 4)))
    kept = sorted(set(range(len(buckets))) - set(held))
    return kept, held


class BucketBandit:
    def __init__(self, names: list[str], signal: str, smoothing: float, temperature: float, explore: float,
                 shares: dict[str, float] | None = None):
        """`shares`: each set's fixed share of the weight (stratified; None: one pool over every bucket)."""
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, not {signal!r}")
        self.names, self.signal, self.shares = names, signal, shares
        self.smoothing, self.temperature, self.explore = smoothing, temperature, explore
        self.scores = [0.0] * len(names)
        self.last: list[float] | None = None
        self.weights = self.weigh(self.scores)
        self.history: list[dict] = []

    def weigh(self, scores: list[float]) -> list[float]:
        """`mixed` over every bucket, or (stratified) over each set's buckets within the set's share."""
        if self.shares is None:
            return mixed(scores, self.temperature, self.explore)
        weights = [0.0] * len(scores)
        for name, share in self.shares.items():
            mine = [k for k, bucket in enumerate(self.names) if bucket_set(bucket) == name]
            for k, w in zip(mine, mixed([scores[k] for k in mine], self.temperature, self.explore)):
                weights[k] = share * w
        return weights

    def update(self, step: int, losses: list[float | None]) -> list[float]:
        """New weights from each bucket's mean loss at `step` (None: not measured; the bucket keeps its score)."""
        last = self.last or [None] * len(losses)
        if self.signal == "loss":
            self.scores = [s if now is None else now for s, now in zip(self.scores, losses)]
        else:
            self.scores = [s if now is None or before is None else
                           self.smoothing * s + (1 - self.smoothing) * abs(before - now)
                           for s, before, now in zip(self.scores, last, losses)]
        self.last = [before if now is None else now for before, now in zip(last, losses)]
        if self.signal == "loss" or len(self.history) > 0:  # progress needs two measurements
            self.weights = self.weigh(self.scores)
        self.history.append({"step": step, "loss": rounded(losses), "score": rounded(self.scores),
                             "weights": rounded(self.weights)})
        return self.weights

    def state(self) -> dict:
        return {"scores": self.scores, "last": self.last, "weights": self.weights, "history": self.history}

    def load(self, state: dict) -> None:
        self.scores, self.last, self.weights, self.history = (state["scores"], state["last"], state["weights"],
                                                              state["history"])


def mixed(scores: list[float], temperature: float, explore: float) -> list[float]:
    """(1 - explore) * softmax(scores / (temperature * mean score)) + explore / K."""
    scale = temperature * (sum(abs(s) for s in scores) / len(scores))
    if scale <= 0:
        return [1 / len(scores)] * len(scores)
    top = max(scores)
    exps = [math.exp((s - top) / scale) for s in scores]
    total = sum(exps)
    return [(1 - explore) * e / total + explore / len(scores) for e in exps]


def bucket_set(bucket: str) -> str:
    """The set of a bucket named `<set>/<difficulty>`."""
    return bucket.rsplit("/", 1)[0]


def mix_shares(names: list[str], buckets: list[int]) -> dict[str, float]:
    """Each set's share of the training examples (`buckets`: each example's bucket index into `names`), as the
    shuffled mix draws them."""
    counts: dict[str, int] = {}
    for b in buckets:
        counts[bucket_set(names[b])] = counts.get(bucket_set(names[b]), 0) + 1
    return {name: count / len(buckets) for name, count in counts.items()}


def rounded(values: list[float | None]) -> list[float | None]:
    return [None if v is None else round(v, 5) for v in values]


class BucketSampler(Sampler[int]):
    """Indices for `total_batches` batches of `batch_size`: each example's bucket drawn by the weights in force,
    then the bucket's next example (seeded shuffled epochs per bucket). `schedule`: [batch index, weights] pairs,
    the weights in force from that batch on. With `budget` (tokens; `lengths` required) a batch takes examples so
    drawn until the next would pass the budget (reasoning_lab.batching).

    `members` gives each bucket's examples directly (they may overlap) instead of `buckets`, each example's one
    bucket. With `groups` (each bucket's group, e.g. its set) every batch of `batch_size` gives each group its share
    of the weight to within one example (`apportion`), and the buckets within a group are drawn by their weights."""

    def __init__(self, buckets: list[int] | None, n_buckets: int, batch_size: int, total_batches: int, seed: int,
                 lengths: list[int] | None = None, budget: int | None = None, padding_free: bool = False,
                 members: list[list[int]] | None = None, groups: list[int] | None = None):
        self.members = members if members is not None else \
            [[i for i, b in enumerate(buckets) if b == k] for k in range(n_buckets)]
        self.groups = groups
        self.batch_size, self.total_batches, self.seed = batch_size, total_batches, seed
        self.lengths, self.budget, self.padding_free = lengths, budget, padding_free
        self.schedule: list[list] = [[0, [1 / n_buckets] * n_buckets]]
        self.drawn = 0  # batches drawn so far by the live iterator

    def __len__(self) -> int:
        return self.total_batches * self.batch_size

    def set_weights(self, weights: list[float]) -> None:
        """`weights` apply from the next batch not drawn yet."""
        self.schedule.append([self.drawn, list(weights)])

    def weights_at(self, batch: int) -> list[float]:
        return [w for start, w in self.schedule if start <= batch][-1]

    def batches(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed)
        queues: list[list[int]] = [[] for _ in self.members]
        owed: dict[int, float] = {}  # per group: examples owed by its share so far (apportion)

        def take(k: int) -> int:
            if not queues[k]:
                queues[k] = rng.sample(self.members[k], len(self.members[k]))
            return queues[k].pop()

        def draw(weights: list[float]) -> int:
            return rng.choices(range(len(weights)), weights=weights)[0]

        filler = Filler(self.lengths, self.budget, self.padding_free) if self.budget is not None else None
        for b in range(self.total_batches):
            self.drawn = b + 1  # from its first index on, batch b counts as drawn
            weights = [w if self.members[k] else 0.0 for k, w in enumerate(self.weights_at(b))]
            if filler is not None:
                yield filler.fill(lambda w=weights: take(draw(w)))
            elif self.groups is None:
                yield [take(k) for k in rng.choices(range(len(weights)), weights=weights, k=self.batch_size)]
            else:
                shares: dict[int, float] = {}
                for k, w in enumerate(weights):
                    shares[self.groups[k]] = shares.get(self.groups[k], 0.0) + w
                total = sum(shares.values())
                counts = apportion({g: v / total for g, v in shares.items()}, self.batch_size, owed)
                batch = [take(draw([w if self.groups[k] == g else 0.0 for k, w in enumerate(weights)]))
                         for g, n in counts.items() for _ in range(n)]
                rng.shuffle(batch)
                yield batch

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch


def apportion(shares: dict, n: int, owed: dict) -> dict:
    """`n` examples over groups by `shares` (summing to 1): each group floor(share x n) or one more, the extra ones to
    the groups `owed` most (what their shares were due over the batches so far, less what they got), so that over many
    batches each group gets its share; `owed` is updated in place."""
    counts = {g: math.floor(s * n + 1e-9) for g, s in shares.items()}
    due = {g: owed.get(g, 0.0) + s * n - counts[g] for g, s in shares.items()}
    extra = sorted((g for g in shares if shares[g] * n - counts[g] > 1e-9), key=lambda g: -due[g])
    for g in extra[: n - sum(counts.values())]:
        counts[g] += 1
    for g, s in shares.items():
        owed[g] = owed.get(g, 0.0) + s * n - counts[g]
    return counts


class BanditUpdates(CheckpointState):
    """Every `every` steps (and before the first, when the source can measure then): each bucket's mean completion
    loss from `source` (HeldBack or TrainingLosses), new weights for the sampler, a log line and W&B scalars; the
    bandit and the schedule saved with every trainer checkpoint and put back when the Trainer resumes from one."""

    def __init__(self, bandit: BucketBandit, sampler: BucketSampler, every: int, source: HeldBack | TrainingLosses,
                 log, wandb_run=None):
        self.bandit, self.sampler, self.every, self.source = bandit, sampler, every, source
        self.log, self.wandb_run = log, wandb_run

    filename = STATE

    def saved(self) -> dict:
        return {"bandit": self.bandit.state(), "schedule": self.sampler.schedule}

    def restore(self, saved: dict) -> None:
        self.bandit.load(saved["bandit"])
        self.sampler.schedule = saved["schedule"]

    def summary(self) -> dict:
        """What the round's record keeps: the buckets, the bandit's history and which weights drew which batches."""
        return {"buckets": self.bandit.names, "history": self.bandit.history, "schedule": self.sampler.schedule}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self.bandit.history and self.source.before_training:  # the first measurement, before any step
            self.update(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.update(state.global_step, model)

    def update(self, step: int, model) -> None:
        losses = self.source.bucket_losses(model)  # example_losses puts the model's mode back
        weights = self.bandit.update(step, losses)
        self.sampler.set_weights(weights)
        top = sorted(zip(weights, self.bandit.names), reverse=True)[:3]
        self.log.info("adaptive curriculum, step %d: weights %s", step,
                      ", ".join(f"{name} {w:.2f}" for w, name in top) + " (largest three)")
        if self.wandb_run is not None:
            self.wandb_run.log({**{f"curriculum/weight/{n}": w for n, w in zip(self.bandit.names, weights)},
                                **{f"curriculum/bucket_loss/{n}": v for n, v in zip(self.bandit.names, losses)
                                   if v is not None},
                                "curriculum/adaptive_step": step})


@dataclass
class HeldBack:
    """A stage's held-back examples (tokenized) with the bucket of each: the bandit's signal."""

    names: list[str]
    examples: object
    buckets: list[int]
    tokenizer: object
    before_training = True

    def bucket_losses(self, model) -> list[float]:
        """Each bucket's mean completion loss on its held-back examples."""
        losses = example_losses(model, self.tokenizer, self.examples)
        per_bucket = [[v for v, b in zip(losses, self.buckets) if b == k] for k in range(len(self.names))]
        return [sum(values) / len(values) if values else 0.0 for values in per_bucket]


class TrainingLosses:
    """The training batches as the bandit's signal: `observe` (OrderedSFTTrainer's hook) takes each trained row's
    completion loss from the step's own logits and files it under the row's bucket, found by its tokens;
    `bucket_losses` gives each bucket's mean since the last call (None where no example of it was trained) and
    starts anew. The window is not saved with trainer checkpoints: after a resume it starts empty."""

    before_training = False

    def __init__(self, names: list[str], input_ids: list[list[int]], buckets: list[int]):
        self.names = names
        self.bucket_of = {tuple(ids): b for ids, b in zip(input_ids, buckets)}
        self.window: list[list[float]] = [[] for _ in names]

    @phase("signal")
    def observe(self, inputs: dict, logits) -> None:
        nll, target = token_nll(logits, inputs["labels"])
        for r, start, end in examples_in(inputs):
            tokens = tuple(inputs["input_ids"][r, start:end].tolist())
            if tokens not in self.bucket_of:
                raise KeyError(f"a trained row of {len(tokens)} tokens is no example of the stage; the training "
                               "signal needs the stage's examples unchanged (curriculum.adaptive.source=held_back "
                               "does not)")
            # the labels at start..end-1 are predicted at nll positions start-1..end-2
            span = slice(max(start - 1, 0), end - 1)
            loss = (nll[r, span].sum() / target[r, span].sum().clamp(min=1)).item()
            self.window[self.bucket_of[tokens]].append(loss)

    def bucket_losses(self, model=None) -> list[float | None]:
        """Each bucket's mean since the last call (None: not trained since); starts a new window."""
        means = [sum(values) / len(values) if values else None for values in self.window]
        self.window = [[] for _ in self.names]
        return means


def examples_in(inputs: dict) -> list[tuple[int, int, int]]:
    """(row, start, end) of each example in a collated batch: padded rows (the attention mask's ones), or one
    padding-free row whose examples restart the position ids at 0."""
    ids, attention = inputs["input_ids"], inputs.get("attention_mask")
    if "position_ids" in inputs and len(ids) == 1:  # padding-free (or a single example)
        starts = (inputs["position_ids"][0] == 0).nonzero().flatten().tolist()
        return [(0, a, b) for a, b in zip(starts, starts[1:] + [ids.shape[1]])]
    if attention is None:
        return [(r, 0, ids.shape[1]) for r in range(len(ids))]
    spans = []
    for r, row in enumerate(attention):
        kept = row.nonzero().flatten()
        spans.append((r, int(kept[0]), int(kept[-1]) + 1))
    return spans


class AdaptiveSchedule:
    """`curriculum=adaptive`: every round draws its batches over buckets (set x difficulty) by a bandit that follows
    the buckets' losses (settings: `curriculum.adaptive`). No extension rounds."""

    name, extends = "adaptive", False

    def __init__(self, settings, tokenizer, log):
        self.c, self.tokenizer, self.log = settings, tokenizer, log
        self.held_back: HeldBack | None = None
        self.names: list[str] = []
        self.buckets: list[int] = []

    def plan(self, stages: list) -> list:
        return list(stages)

    def training_examples(self, examples, seed: int):
        """The stage's examples less `adaptive.held_back` of each bucket (source held_back), and the count held
        back."""
        self.names, buckets = bucket_names(examples["set"], examples["difficulty"])
        if self.c.adaptive.source == "training":
            self.buckets = buckets
            return examples, {"held_back": 0}
        kept, held = held_back_split(buckets, self.c.adaptive.held_back, seed)
        self.held_back = HeldBack(self.names, examples.select(held).remove_columns(["difficulty", "set"]),
                                  [buckets[i] for i in held], self.tokenizer)
        self.buckets = [buckets[i] for i in kept]
        return examples.select(kept), {"held_back": len(held)}

    def round(self, data: StageData, steps: int, seed: int, replay: float, batching: dict, wandb_run=None,
              extending: bool = False) -> Round:
        c, a = self.c, self.c.adaptive
        names = self.names
        source = self.held_back or TrainingLosses(names, data.dataset["input_ids"][:len(self.buckets)], self.buckets)
        bandit = BucketBandit(names, a.signal, a.smoothing, a.temperature, a.explore,
                              mix_shares(names, self.buckets) if a.stratified else None)
        sampler = BucketSampler(self.buckets, len(names), c.batch_size, steps * c.grad_accum, seed,
                                groups=[bucket_set(n) for n in names] if a.stratified else None, **batching)
        if a.stratified:  # from the first batch: the sets' shares, uniform over each set's buckets
            sampler.schedule = [[0, bandit.weights]]
        updates = BanditUpdates(bandit, sampler, a.update_every * c.grad_accum, source, self.log, wandb_run)
        return Round(sampler, "adaptive", [updates], updates.summary,
                     observe=source.observe if isinstance(source, TrainingLosses) else None)

    def chart(self, summary: dict, target: Path) -> Path:
        """The weights over the steps, as a stacked area chart."""
        return plot_weights(summary["history"], summary["buckets"], target)


def plot_weights(history: list[dict], names: list[str], target: Path,
                 title: str = "adaptive curriculum: weights over buckets") -> Path:
    """A stacked area chart of the weights over the steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.stackplot(steps, [[h["weights"][k] for h in history] for k in range(len(names))], labels=names, step="post")
    ax.set(xlabel="optimizer step", ylabel="sampling weight", title=title, ylim=(0, 1))
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
