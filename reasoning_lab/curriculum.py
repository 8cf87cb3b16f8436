"""Curriculum pacing, replay and advancement: what transformers, TRL and peft do not provide.

- `competence(pacing, step, total_steps, c0)`: the share of a stage's examples, easiest first, that
  training may draw from at a step (Platanios et al., 2019, "Competence-based curriculum learning"):
    fixed:  1
    linear: min(1, t (1 - c0) / T + c0)
    root:   min(1, sqrt(t (1 - c0^2) / T + c0^2))
    step:   c0, then equal jumps to 1 over `levels` levels
- `CurriculumSampler`: the index order of one stage for the HF Trainer. At step t each batch draws
  uniformly, without replacement, from the examples whose difficulty CDF is <= c(t) (ties in
  difficulty broken by a seeded shuffle), and a `replay` share of every batch comes from earlier stages.
  The order depends only on the seed, so a resumed run sees the same batches. With a token budget
  (`curriculum.max_tokens_per_batch`, reasoning_lab.batching) each batch is drawn the same way until it is full.
- `decide`: advance / extend / raise replay from per-example validation losses, each change tested on
  the same examples (reasoning_lab.stats.paired_p_value) so that decisions do not follow noise.
- `StagedSchedule` (`curriculum=stages`: the design's stages, paced, with replay and extensions), `MixSchedule`
  (`curriculum=shuffled_mix`: every example in shuffled epochs) and `FadedSchedule` (`curriculum=faded`: the design's
  stages as the phases of one trainer, each batch a mixture over them by `faded_weights`): the schedules of
  reasoning_lab.schedules.
- `faded_weights(step, total_steps, phases, pacing, floor)`: the faded schedule's mixture weights over the phases
  (as E2H Reasoner keeps every task present and fades the easy ones). The position x = 1/2 + K g(t / T) (g: the
  pacing, linear t or root sqrt(t)) is clipped to [1, K]; phase floor(x) holds 1 - frac(x) and the next phase frac(x)
  of the weight, and every phase keeps a `floor`: w = (1 - K floor) w_raw + floor. Phase k ends, and its adapter is
  saved, where x passes k + 1/2: the next phase then holds the larger weight (`faded_boundaries`).
- `AccuracyCurve`: greedy accuracy on a fixed validation subset every `curriculum.curve_every` steps (the run's steps,
  counted across stages), what `compare --arms` turns into the steps an arm takes to reach the baseline's final
  accuracy (reasoning_lab.stats.steps_to_target); `plot_curve` draws it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from torch.utils.data import Sampler

from reasoning_lab.adaptive import BucketSampler, plot_weights
from reasoning_lab.batching import Filler, cut
from reasoning_lab.callbacks import CheckpointState
from reasoning_lab.config import FADED_PACINGS, PACINGS
from reasoning_lab.schedules import Round, StageData
from reasoning_lab.stats import paired_p_value
from reasoning_lab.timing import phase


def competence(pacing: str, step: int, total_steps: int, c0: float, levels: int = 4) -> float:
    """Share of the stage's examples (easiest first) available at `step` of `total_steps`."""
    if pacing not in PACINGS:
        raise ValueError(f"pacing must be one of {PACINGS}, not {pacing!r}")
    if pacing == "fixed" or total_steps <= 0:
        return 1.0
    t = max(0, step) / total_steps
    if pacing == "linear":
        return min(1.0, t * (1 - c0) + c0)
    if pacing == "root":
        return min(1.0, math.sqrt(t * (1 - c0**2) + c0**2))
    jumps = min(levels - 1, math.floor(t * levels))
    return min(1.0, c0 + (1 - c0) * jumps / (levels - 1))


class CurriculumSampler(Sampler[int]):
    """Indices for `total_steps` batches of `batch_size`: current-stage examples `0..n_current-1` by
    competence, replay examples `n_current..` uniformly for a `replay` share of each batch.

    With `lengths` (of all examples, replay included) and `length_window` > 1, each run of `length_window`
    batches is pooled, sorted by length, cut into batches again and shuffled: the same examples in the
    same window, with less padding.

    With `budget` (tokens, `lengths` required) a batch takes examples, drawn as above one at a time (the replay
    share by error diffusion over examples), until the next would pass the budget; a window is then cut by the
    budget, so the stage's batches (`total_batches`, what its Trainer runs) number about `total_steps`."""

    def __init__(self, difficulties: list[float], n_replay: int, batch_size: int, total_steps: int, pacing: str,
                 c0: float, replay: float, seed: int, levels: int = 4, lengths: list[int] | None = None,
                 length_window: int = 1, budget: int | None = None, padding_free: bool = False):
        self.n_current, self.n_replay = len(difficulties), n_replay
        self.batch_size, self.total_steps = batch_size, total_steps
        self.pacing, self.c0, self.levels = pacing, c0, levels
        self.replay = replay if n_replay else 0.0
        self.seed = seed
        self.lengths, self.length_window = lengths, length_window if lengths is not None else 1
        self.budget, self.padding_free = budget, padding_free
        rng = random.Random(seed)
        shuffled = list(range(self.n_current))
        rng.shuffle(shuffled)  # seeded tie-breaking among equal difficulties
        self.by_difficulty = sorted(shuffled, key=lambda i: difficulties[i])

    def __len__(self) -> int:
        return self.total_steps * self.batch_size if self.budget is None else sum(map(len, self.batches()))

    @property
    def total_batches(self) -> int:
        return self.total_steps if self.budget is None else sum(1 for _ in self.batches())

    def batches(self) -> Iterator[list[int]]:
        if self.length_window <= 1:
            yield from self.paced_batches()
            return
        rng, window = random.Random(self.seed + 2), []
        for batch in self.paced_batches():
            window.append(batch)
            if len(window) == self.length_window:
                yield from self.regrouped(window, rng)
                window = []
        yield from self.regrouped(window, rng)

    def regrouped(self, window: list[list[int]], rng: random.Random) -> list[list[int]]:
        pool = sorted((i for batch in window for i in batch), key=lambda i: self.lengths[i])
        if self.budget is not None:
            grouped = cut(pool, self.lengths, self.budget, self.padding_free)
        else:
            grouped = [pool[start : start + self.batch_size] for start in range(0, len(pool), self.batch_size)]
        rng.shuffle(grouped)
        return grouped

    def paced_batches(self) -> Iterator[list[int]]:
        if self.budget is not None:
            yield from self.filled_batches()
            return
        rng = random.Random(self.seed + 1)
        owed = 0.0  # error diffusion: the replay share is exact over the stage, not only on average
        epoch_order: list[int] = []
        for step in range(self.total_steps):
            owed += self.replay * self.batch_size
            n_replay = min(int(owed), self.batch_size)
            owed -= n_replay
            n_current = self.batch_size - n_replay
            if self.pacing == "fixed":
                batch = []
                while len(batch) < n_current:  # the whole data, epoch after epoch, each epoch shuffled
                    if not epoch_order:
                        epoch_order = rng.sample(range(self.n_current), self.n_current)
                    batch.append(epoch_order.pop())
            else:
                c = competence(self.pacing, step, self.total_steps, self.c0, self.levels)
                pool = self.by_difficulty[: max(min(n_current, self.n_current), math.ceil(c * self.n_current))]
                batch = rng.sample(pool, n_current) if n_current <= len(pool) else rng.choices(pool, k=n_current)
            batch += [self.n_current + rng.randrange(self.n_replay) for _ in range(n_replay)]
            rng.shuffle(batch)
            yield batch

    def filled_batches(self) -> Iterator[list[int]]:
        """`paced_batches` under a token budget: each step's pool as there, examples drawn one at a time."""
        rng, owed = random.Random(self.seed + 1), 0.0
        order: list[int] = []  # the current pool in a seeded order, drawn from the end

        def draw(step: int) -> int:
            nonlocal owed
            owed += self.replay
            if owed >= 1:
                owed -= 1
                return self.n_current + rng.randrange(self.n_replay)
            if not order:
                c = competence(self.pacing, step, self.total_steps, self.c0, self.levels)
                pool = self.by_difficulty[: max(1, math.ceil(c * self.n_current))]
                order.extend(rng.sample(pool, len(pool)))
            return order.pop()

        filler = Filler(self.lengths, self.budget, self.padding_free)
        for step in range(self.total_steps):
            if self.pacing != "fixed":
                order.clear()  # competence grows with the step: draw from this step's pool
            batch = filler.fill(lambda: draw(step))  # noqa: B023 (called before the next step)
            rng.shuffle(batch)
            yield batch

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch


@dataclass
class Decision:
    # advance | extend
    action: str
    # why, in words, with the numbers
    reason: str
    # replay share for the next stage (raised when an earlier stage was forgotten)
    next_replay: float
    # earlier stages whose validation loss rose by more than the tolerance, beyond its noise
    forgotten: list[str]
    # the round just trained raised the loss: undo it (put the previous round's adapter back)
    revert: bool = False


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def forgetting_check(earlier_now: dict[str, list[float]], earlier_before: dict[str, list[float]], replay: float,
                     settings) -> tuple[list[str], float, str]:
    """Earlier sets whose validation loss rose by more than `forgetting_tolerance` with p < `significance`, the
    replay share for the next stage, and the words that say so ("" when nothing was forgotten)."""
    forgotten, drops = [], []
    for name, values in earlier_now.items():
        rise = mean(values) - mean(earlier_before[name])
        p = paired_p_value(values, earlier_before[name])
        if rise > settings.forgetting_tolerance and p < settings.significance:
            forgotten.append(name)
            drops.append(f"{name}: loss {mean(earlier_before[name]):.3f} -> {mean(values):.3f}, p={p:.3g}")
    next_replay = round(min(settings.max_replay, replay + settings.replay_boost), 4) if forgotten else replay
    words = f"; forgetting ({'; '.join(drops)}): replay {replay:.2f} -> {next_replay:.2f}" if forgotten else ""
    return forgotten, next_replay, words


def decide(now: list[float], previous: list[float], extensions_left: bool, earlier_now: dict[str, list[float]],
           earlier_before: dict[str, list[float]], replay: float, settings, extended_round: int | None = None,
           earlier_previous: dict[str, list[float]] | None = None) -> Decision:
    """Decisions on per-example validation losses (completion NLL), each change tested on the same examples
    before and after (`paired_p_value`, one-sided sign flips) so that noise does not drive them.

    Extend while the stage's loss still falls by more than `min_delta` with p < `significance` and the extension
    budget lasts; otherwise advance. An earlier stage counts as forgotten when its loss rose by more than
    `forgetting_tolerance` with p < `significance`: replay for the next stage rises by `replay_boost` (up to
    `max_replay`). On pure noise each rule fires at most `significance` of the time.

    An extension of round `extended_round` whose mean loss rose is undone (`revert`): the stage advances
    with that round's adapter, and forgetting is judged on its losses (`earlier_previous`)."""
    if extended_round is not None and mean(now) > mean(previous):
        forgotten, next_replay, forgetting = forgetting_check(earlier_previous, earlier_before, replay, settings)
        return Decision("advance", f"validation loss {mean(previous):.3f} -> {mean(now):.3f} in the extension: kept "
                        f"round {extended_round}'s adapter{forgetting}", next_replay, forgotten, revert=True)
    forgotten, next_replay, forgetting = forgetting_check(earlier_now, earlier_before, replay, settings)
    gain, p = mean(previous) - mean(now), paired_p_value(previous, now)
    change = f"validation loss {mean(previous):.3f} -> {mean(now):.3f} (p={p:.3g})"
    if gain <= settings.min_delta or p >= settings.significance:
        return Decision("advance", f"{change}: stopped improving (needs a fall > min_delta {settings.min_delta} "
                        f"with p < {settings.significance}){forgetting}", next_replay, forgotten)
    if not extensions_left:
        return Decision("advance", f"{change}: still improving, extension budget spent{forgetting}", next_replay,
                        forgotten)
    return Decision("extend", f"{change}: still improving{forgetting}", next_replay, forgotten)


class StagedSchedule:
    """`curriculum=stages`: each stage's examples paced by competence (`curriculum.pacing`, easiest first), a
    `replay` share of every batch from the earlier stages' sets; extension rounds draw in shuffled epochs."""

    name, extends = "stages", True

    def __init__(self, settings, tokenizer=None, log=None):
        self.c = settings

    def plan(self, stages: list) -> list:
        return list(stages)

    def training_examples(self, examples, seed: int):
        return examples, {}

    def round(self, data: StageData, steps: int, seed: int, replay: float, batching: dict, wandb_run=None,
              extending: bool = False) -> Round:
        pacing = "fixed" if extending else self.c.pacing
        return Round(self.sampler(data, steps, seed, replay, batching, pacing), pacing)

    def sampler(self, data: StageData, steps: int, seed: int, replay: float, batching: dict,
                pacing: str) -> CurriculumSampler:
        c = self.c
        return CurriculumSampler(data.difficulties, data.n_replay, c.batch_size, steps * c.grad_accum, pacing, c.c0,
                                 replay, seed, c.step_levels, length_window=c.length_window, **batching)

    def chart(self, summary: dict, target):
        return None


class MixSchedule(StagedSchedule):
    """`curriculum=shuffled_mix`: every example of the stage in shuffled epochs, no pacing, no extension rounds (the
    baseline a curriculum has to beat)."""

    name, extends = "mix", False

    def round(self, data: StageData, steps: int, seed: int, replay: float, batching: dict, wandb_run=None,
              extending: bool = False) -> Round:
        return Round(self.sampler(data, steps, seed, replay, batching, "fixed"), "fixed")


def faded_position(step: int, total_steps: int, phases: int, pacing: str) -> float:
    """x = 1/2 + K g(t / T), g the pacing (linear: t; root: sqrt(t)); phase k leads while x < k + 1/2."""
    if pacing not in FADED_PACINGS:
        raise ValueError(f"the faded schedule's pacing must be one of {FADED_PACINGS}, not {pacing!r}")
    t = min(1.0, max(0, step) / total_steps) if total_steps > 0 else 1.0
    return 0.5 + phases * (t if pacing == "linear" else math.sqrt(t))


def faded_weights(step: int, total_steps: int, phases: int, pacing: str, floor: float) -> list[float]:
    """The mixture weights over the phases at `step`: the leading phase's weight moves to the next along the pacing,
    and every phase keeps at least `floor` (the phases before fade to it, the ones after are present from step 0)."""
    x = min(max(faded_position(step, total_steps, phases, pacing), 1.0), float(phases))
    j = min(int(x), phases)
    f = x - j
    raw = [0.0] * phases
    raw[j - 1] = 1 - f
    if j < phases:
        raw[j] = f
    return [(1 - phases * floor) * w + floor for w in raw]


def faded_boundaries(total_steps: int, phases: int, pacing: str) -> list[int]:
    """The step at which each phase ends (x passes k + 1/2; the last at total_steps)."""
    inverse = (lambda u: u) if pacing == "linear" else (lambda u: u * u)
    return [math.ceil(total_steps * inverse(k / phases) - 1e-9) for k in range(1, phases)] + [total_steps]


class FadedSchedule:
    """`curriculum=faded`: the design's stages (`curriculum.stages`) become the phases of one trainer over all their
    sets (`plan`): each batch draws from the phases' data by `faded_weights` (every batch gives each phase its weight
    to within one example), a phase's examples in seeded shuffled epochs, and the adapter is saved at every phase's
    end (`curriculum/phase_<k>/`; the last phase's is the stage's own). No extension rounds."""

    name, extends = "faded", False

    def __init__(self, settings, tokenizer=None, log=None):
        self.c = settings
        self.phases = list(settings.stages)
        self.sets: list[str] = []

    def plan(self, stages: list) -> list:
        """One stage holding every phase's sets."""
        return [SimpleNamespace(name="faded", data=list(dict.fromkeys(n for st in stages for n in st.data)))]

    def training_examples(self, examples, seed: int):
        self.sets = list(examples["set"])
        return examples, {}

    def weights(self, step: int, total_steps: int) -> list[float]:
        return faded_weights(step, total_steps, len(self.phases), self.c.pacing, self.c.faded.floor)

    def round(self, data: StageData, steps: int, seed: int, replay: float, batching: dict, wandb_run=None,
              extending: bool = False) -> Round:
        c, k = self.c, len(self.phases)
        members = [[i for i, name in enumerate(self.sets) if name in phase.data] for phase in self.phases]
        total = steps * c.grad_accum
        sampler = BucketSampler(None, k, c.batch_size, total, seed, members=members, groups=list(range(k)),
                                **batching)
        sampler.schedule = [[b, self.weights(b // c.grad_accum, steps)] for b in range(total)]
        ends = faded_boundaries(steps, k, c.pacing)
        history = [{"step": t, "weights": [round(w, 4) for w in self.weights(t, steps)]}
                   for t in sorted({*range(0, steps + 1, max(1, steps // 48)), *ends})]
        summary = {"buckets": [p.name for p in self.phases], "history": history,
                   "boundaries": {p.name: end for p, end in zip(self.phases, ends)}}
        return Round(sampler, f"faded ({c.pacing})", summary=lambda: summary,
                     saves=[(end, f"phase_{i}") for i, end in enumerate(ends[:-1], 1)])

    def chart(self, summary: dict, target: Path) -> Path:
        """The phases' weights over the steps, as a stacked area chart."""
        return plot_weights(summary["history"], summary["buckets"], target, "faded curriculum: weights over phases")


class AccuracyCurve(CheckpointState):
    """Greedy accuracy on the curve's validation problems (`measure(model)` -> each set's per-problem correctness)
    at the run's step 0, every `every` steps of the run (its steps counted across stages: `offset` were trained
    before this round) and at the round's last step; each point logged, sent to W&B and saved with every trainer
    checkpoint, so a resumed round keeps the points it had."""

    filename = "accuracy_curve.json"

    def __init__(self, measure, every: int, offset: int, log, wandb_run=None):
        self.measure, self.every, self.offset = measure, every, offset
        self.log, self.wandb_run = log, wandb_run
        self.points: list[dict] = []
        if wandb_run is not None:  # W&B draws the curve over the run's steps
            wandb_run.define_metric("curriculum/curve_step")
            wandb_run.define_metric("curriculum/val_accuracy*", step_metric="curriculum/curve_step")

    def saved(self) -> list[dict]:
        return self.points

    def restore(self, saved: list[dict]) -> None:
        self.points = saved

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.offset == 0 and state.global_step == 0 and not self.points:
            self.point(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = self.offset + state.global_step
        if step % self.every == 0 or state.global_step == state.max_steps:
            self.point(step, model)

    @phase("evaluation")
    def point(self, step: int, model) -> None:
        was_training = model.training
        correct = self.measure(model)
        model.train(was_training)
        flat = [v for values in correct.values() for v in values]
        point = {"step": step, "accuracy": round(sum(flat) / len(flat), 4),
                 "per_set": {n: round(sum(v) / len(v), 4) for n, v in correct.items() if v},
                 "correct": {n: [int(x) for x in v] for n, v in correct.items()}}
        self.points.append(point)
        self.log.info("validation accuracy at step %d: %.3f (%d problems)", step, point["accuracy"], len(flat))
        if self.wandb_run is not None:
            self.wandb_run.log({"curriculum/val_accuracy": point["accuracy"], "curriculum/curve_step": step,
                                **{f"curriculum/val_accuracy/{n}": v for n, v in point["per_set"].items()}})


def plot_curve(points: list[dict], target: Path) -> Path:
    """Validation accuracy over the run's steps: all problems, and each set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in points[0]["per_set"]:
        ax.plot(steps, [p["per_set"].get(name) for p in points], lw=1, alpha=0.6, label=name)
    ax.plot(steps, [p["accuracy"] for p in points], "k-o", lw=2, label="all problems")
    ax.set(xlabel="optimizer step (the run's)", ylabel="greedy validation accuracy", ylim=(0, 1),
           title="curriculum: validation accuracy over the steps")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
