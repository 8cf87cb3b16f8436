"""Which prompts the RL stage trains on, and in what order (TRL's GRPO/RLOO trainers and reasoning_lab.ppo alike):
`rl.prompt_sampling`.

- uniform: a seeded shuffle of the prompts.
- adarft (`AdaptiveDifficulty`): AdaRFT (Shi et al. 2025). After each step the target difficulty moves by
  T' = clip(T + eta * tanh(alpha * (mean correctness - beta)), d_min, d_max), and the next prompts are the
  unused problems nearest T, so the batch's mean correctness stays near beta. Difficulties are taken as
  quantiles of the prompt pool (0 the easiest, 1 the hardest), so T means the same on every data set.
- learnability (`Learnability`): prompts drawn without replacement by weight s (1 - s), s a running estimate of
  the prompt's pass rate from its own groups, shrunk toward its bucket's (set x difficulty); a prompt whose group
  was all right or all wrong (known pass rate 1 or 0) is not drawn again while others remain (Bae et al. 2025,
  balanced online difficulty filtering; Kimi k1.5's prioritised sampling). The groups of GRPO/RLOO then carry
  signal without extra rollouts.
- `PromptSampler`: TRL's prompt order (each prompt index repeated `num_generations` times in a row, the chunk
  repeated `repeat` times). It takes the pass/fail of every completion (`observe`, from the correctness reward)
  and feeds it to the selector before the next chunk is drawn; the observations, with the chunk they arrived
  before, are its state (`state`/`load`): a resumed run replays them and draws the same chunks (within the first
  pass, which the Trainer's resume replays; PPO's replays them all).
"""

from __future__ import annotations

import math
import random

from torch.utils.data import Sampler


class AdaptiveDifficulty:
    def __init__(self, difficulties: list[float], target: float, eta: float, alpha: float, beta: float, seed: int):
        self.difficulties = quantiles(difficulties)
        self.d_min, self.d_max = min(self.difficulties), max(self.difficulties)
        self.start, self.seed = min(max(target, self.d_min), self.d_max), seed
        self.eta, self.alpha, self.beta = eta, alpha, beta
        self.reset()

    def reset(self) -> None:
        self.target, self.rng = self.start, random.Random(self.seed)
        self.unused = set(range(len(self.difficulties)))
        self.history: list[dict] = []

    def observe(self, prompts: list[int], correct: list[float]) -> None:
        self.update(sum(correct) / len(correct))

    def update(self, mean_reward: float) -> float:
        step = self.eta * math.tanh(self.alpha * (mean_reward - self.beta))
        self.target = min(max(self.target + step, self.d_min), self.d_max)
        self.history.append({"correctness": round(mean_reward, 4), "target": round(self.target, 4)})
        return self.target

    def pick(self, n: int) -> list[int]:
        """The `n` unused problems nearest the target (ties broken at random); all are reused once spent."""
        if len(self.unused) < n:
            self.unused = set(range(len(self.difficulties)))
        ranked = sorted(self.unused, key=lambda i: (abs(self.difficulties[i] - self.target), self.rng.random()))
        chosen = ranked[:n]
        self.unused.difference_update(chosen)
        return chosen


class Learnability:
    """Weights s (1 - s) per prompt; s = (right + prior * s_bucket) / (seen + prior), s_bucket the bucket's pass rate
    with one right and one wrong answer as its prior. Prompts whose every answer so far was right, or every one
    wrong, are drawn only when fewer than a chunk of the others remain."""

    def __init__(self, buckets: list[str], prior: float, seed: int):
        self.buckets, self.prior, self.seed = buckets, prior, seed
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.seed)
        self.right, self.seen = [0.0] * len(self.buckets), [0] * len(self.buckets)
        self.bucket_right: dict[str, float] = {}
        self.bucket_seen: dict[str, int] = {}
        self.history: list[dict] = []

    def pass_rate(self, i: int) -> float:
        b = self.buckets[i]
        s_bucket = (self.bucket_right.get(b, 0.0) + 1) / (self.bucket_seen.get(b, 0) + 2)
        return (self.right[i] + self.prior * s_bucket) / (self.seen[i] + self.prior)

    def known(self, i: int) -> bool:
        """Every answer to prompt i so far was right, or every one wrong."""
        return self.seen[i] > 0 and self.right[i] in (0, self.seen[i])

    def observe(self, prompts: list[int], correct: list[float]) -> None:
        groups = verdicts(prompts, correct)
        for i, values in groups.items():
            self.right[i] += sum(values)
            self.seen[i] += len(values)
            b = self.buckets[i]
            self.bucket_right[b] = self.bucket_right.get(b, 0.0) + sum(values)
            self.bucket_seen[b] = self.bucket_seen.get(b, 0) + len(values)
        self.history.append({"pass_rate": round(sum(sum(v) for v in groups.values()) / len(prompts), 4),
                             "known": sum(map(self.known, range(len(self.buckets))))})

    def pick(self, n: int) -> list[int]:
        """`n` distinct prompts, drawn one by one with probability proportional to s (1 - s) among those not known;
        the known ones (at random) only when fewer than `n` others remain."""
        open_ = [i for i in range(len(self.buckets)) if not self.known(i)]
        weights = [self.pass_rate(i) * (1 - self.pass_rate(i)) for i in open_]
        chosen = []
        while open_ and len(chosen) < n:
            k = self.rng.choices(range(len(open_)), weights=weights)[0]
            chosen.append(open_.pop(k))
            weights.pop(k)
        rest = [i for i in range(len(self.buckets)) if i not in chosen]
        return chosen + self.rng.sample(rest, n - len(chosen))


def verdicts(prompts: list[int], correct: list[float]) -> dict[int, list[float]]:
    """Each prompt's answers as right (1.0: the correctness reward paid in full) or wrong (0.0), in order."""
    groups: dict[int, list[float]] = {}
    for i, c in zip(prompts, correct):
        groups.setdefault(i, []).append(float(c >= 1.0))
    return groups


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
    prompt `num_generations` times in a row. Prompts come from `selector` (AdaptiveDifficulty, Learnability)
    when given, else a seeded shuffle."""

    def __init__(self, size: int, batch_size: int, num_generations: int, repeat: int, seed: int, selector=None):
        self.size, self.batch_size, self.num_generations, self.repeat = size, batch_size, num_generations, repeat
        self.seed, self.rng, self.selector = seed, random.Random(seed), selector
        self.observations: list[list] = []  # [chunks drawn when it arrived, prompt indices, correctness]
        self.drawn, self.applied = 0, 0  # chunks drawn over all passes; observations the selector has seen

    def __len__(self) -> int:
        return (self.size // self.batch_size) * self.batch_size * self.num_generations * self.repeat

    def observe(self, prompts: list[int], correct: list[float]) -> None:
        """The correctness of completions of these prompts; the selector sees it before the next chunk is drawn."""
        self.observations.append([self.drawn, list(prompts), list(correct)])

    def state(self) -> list[list]:
        return self.observations

    def load(self, observations: list[list]) -> None:
        self.observations = observations

    def chunks(self):
        """One pass: `size // batch_size` chunks of prompt indices."""
        if self.selector is None:
            order = list(range(self.size))
            self.rng.shuffle(order)
            for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                yield order[start : start + self.batch_size]
            return
        if self.drawn == 0:  # replayed from the observations: the same chunks after a resume
            self.selector.reset()
            self.applied = 0
        for chunk in range(self.drawn, self.drawn + self.size // self.batch_size):
            self.catch_up(chunk)
            self.drawn = chunk + 1
            yield self.selector.pick(self.batch_size)

    def catch_up(self, chunk: int | None = None) -> None:
        """Hand the selector the observations that arrived before `chunk` was drawn (None: all of them)."""
        while self.applied < len(self.observations) and (chunk is None or self.observations[self.applied][0] <= chunk):
            self.selector.observe(*self.observations[self.applied][1:])
            self.applied += 1

    def __iter__(self):
        for chunk in self.chunks():
            for _ in range(self.repeat):
                for index in chunk:
                    yield from [index] * self.num_generations


def step_numbers(observations: list[list]) -> dict:
    """Of the observations of one step (`PromptSampler.observations` since the step before): the mean pass rate of
    its prompts and the share of its groups (the completions of one prompt) that were all right or all wrong (zero
    variance: no signal for GRPO/RLOO)."""
    groups = [values for _, prompts, correct in observations for values in verdicts(prompts, correct).values()]
    answers = [c for values in groups for c in values]
    return {"prompt_sampling/pass_rate": round(sum(answers) / len(answers), 4),
            "prompt_sampling/zero_variance_share": round(sum(len(set(v)) == 1 for v in groups) / len(groups), 4)}


class CorrectnessObserver:
    """The correctness reward (TRL's signature), also handing its verdicts to the prompt sampler
    (`PromptSampler.observe`): the one way rewards reach the sampler, wired by the RL stage. The sampler's selector
    (AdaRFT, learnability) follows them, and each step logs their pass rate (`step_numbers`)."""

    def __init__(self, reward, sampler: PromptSampler):
        self.reward, self.sampler, self.__name__ = reward, sampler, reward.__name__

    def __call__(self, prompts=None, completions=(), prompt_id=None, **kwargs):
        values = self.reward(prompts=prompts, completions=completions, **kwargs)
        if prompt_id is not None:
            self.sampler.observe(list(prompt_id), [float(v) for v in values])
        return values
