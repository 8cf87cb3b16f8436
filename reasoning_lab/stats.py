"""Statistics for numbers that have to hold up: intervals of rates and paired tests on the same examples.

- `wilson(successes, n)`: Wilson score 95% interval of a proportion.
- `bootstrap_ci(values, samples, seed)`: percentile bootstrap 95% interval of a mean.
- `paired_p_value(a, b, seed)`: one-sided sign-flip permutation test that mean(a - b) > 0 on paired
  values (the same examples measured twice). Exact under the null that each difference is symmetric
  around zero, so a rule "act when p < alpha" fires on pure noise at most alpha of the time.
- `mcnemar_p(a, b)`: exact two-sided McNemar test of paired right/wrong outcomes.
- `paired_bootstrap(a, b)`: 95% interval of the paired difference of two right/wrong lists.
- `holm(p_values)`: Holm's step-down correction for several comparisons.

Two recipes trained with several seeds each, evaluated on the same problems (the runs of one seed paired):
- `pooled_paired(a, b)`: the per-seed deltas, their mean, a two-level bootstrap interval, the stratified
  permutation p-value and the minimal detectable effect of the design.
- `minimal_detectable_effect(within_var, between_var, n, seeds)`: the smallest true delta that a design of
  `seeds` x `n` problems detects with 80% power at two-sided alpha 0.05.
- `steps_to_target(pairs)`: how soon an arm's validation accuracy curve reaches the baseline's final accuracy, as a
  share of the baseline's steps, pooled over seeds with a two-level bootstrap interval.
"""

from __future__ import annotations

import math
from math import comb

import numpy as np


def wilson(successes: float, n: int) -> list[float]:
    """Wilson score 95% interval of a proportion (sensible at 0 and 1, unlike the normal approximation)."""
    if n == 0:
        return [0.0, 0.0]
    z, p = 1.959964, successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def bootstrap_ci(values: list[float], samples: int, seed: int) -> list[float]:
    """95% percentile bootstrap interval of the mean, resampling problems."""
    if not values:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def paired_p_value(a: list[float], b: list[float], seed: int = 0, resamples: int = 20000) -> float:
    """One-sided p-value that mean(a - b) > 0, from random sign flips of the paired differences."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) == 0 or not np.any(d):
        return 1.0
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(resamples, len(d)))
    null = (signs * np.abs(d)).mean(axis=1)
    return float((1 + np.sum(null >= d.mean() - 1e-12)) / (resamples + 1))


def mcnemar_p(a: list[bool], b: list[bool]) -> float:
    """Exact two-sided McNemar p-value of paired outcomes: binomial test of the discordant pairs at 1/2."""
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(a: list[bool], b: list[bool], samples: int = 10000, seed: int = 0) -> list[float]:
    """95% percentile interval of mean(b) - mean(a), resampling problems with their pairs kept together."""
    return bootstrap_ci([float(y) - float(x) for x, y in zip(a, b)], samples, seed)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error rate over all the comparisons."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# z quantiles of a two-sided test at alpha 0.05 and of 80% power
Z_ALPHA, Z_POWER = 1.959964, 0.841621
POOLED_TEST = ("stratified paired permutation test: each problem's pair of outcomes swapped at random within its "
               "seed, seeds as strata; two-sided")


def minimal_detectable_effect(within_var: float, between_var: float, n: float, seeds: int) -> float:
    """Smallest true delta found with 80% power at two-sided alpha 0.05 when the pooled delta is the mean of
    `seeds` per-seed deltas on `n` problems each: its variance is (between_var + within_var / n) / seeds, where
    within_var is the variance of one problem's paired difference (right/wrong B minus right/wrong A) and
    between_var that of the per-seed true deltas (training noise)."""
    return (Z_ALPHA + Z_POWER) * math.sqrt((between_var + within_var / n) / seeds)


def pooled_paired(a: list[list[bool]], b: list[list[bool]], samples: int = 10000, resamples: int = 20000,
                  seed: int = 0) -> dict:
    """Arm B against arm A over seeds: `a[s]` and `b[s]` are the right/wrong outcomes of seed s's two runs on the
    same problems. The interval resamples seeds, then problems within each drawn seed, so it holds both training
    and evaluation noise; the p-value is the stratified permutation test `POOLED_TEST`."""
    if len(a) != len(b) or not a:
        raise ValueError(f"pooled comparison needs the same number of seeds in both arms, got {len(a)} and {len(b)}")
    if any(len(x) != len(y) or len(x) == 0 for x, y in zip(a, b)):
        raise ValueError("each seed's two runs need the same, non-empty problems")
    diffs = [np.asarray(y, dtype=float) - np.asarray(x, dtype=float) for x, y in zip(a, b)]
    per_seed = np.array([d.mean() for d in diffs])
    rng = np.random.default_rng(seed)
    n_seeds = len(diffs)
    # two levels: a seed drawn for each of the n_seeds slots, then that seed's problems resampled
    drawn = rng.integers(0, n_seeds, size=(samples, n_seeds))
    pooled = np.zeros(samples)
    for slot in range(n_seeds):
        for s, d in enumerate(diffs):
            chosen = drawn[:, slot] == s
            if chosen.any():
                pooled[chosen] += d[rng.integers(0, len(d), size=(int(chosen.sum()), len(d)))].mean(axis=1)
    pooled /= n_seeds
    # sign flips of each problem's difference within its seed; the statistic is the mean of per-seed means
    observed = per_seed.mean()
    null = np.zeros(resamples)
    for d in diffs:
        if np.any(d):
            null += (rng.choice([-1.0, 1.0], size=(resamples, len(d))) * d).mean(axis=1)
    null /= n_seeds
    p_value = 1.0 if not any(np.any(d) for d in diffs) else \
        float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (resamples + 1))
    within = float(np.mean([d.var() for d in diffs]))
    n = float(np.mean([len(d) for d in diffs]))
    between = max(0.0, float(per_seed.var(ddof=1)) - within / n) if n_seeds > 1 else 0.0
    return {"seeds": n_seeds, "n": [len(d) for d in diffs],
            "accuracy_a": [round(float(np.mean(x)), 4) for x in a], "accuracy_b": [round(float(np.mean(y)), 4) for y in b],
            "per_seed_delta": [round(float(x), 4) for x in per_seed], "delta": round(float(observed), 4),
            "ci95": [round(float(np.percentile(pooled, 2.5)), 4), round(float(np.percentile(pooled, 97.5)), 4)],
            "p_value": min(1.0, p_value), "test": POOLED_TEST,
            "within_var": round(within, 5), "between_var": round(between, 5),
            "mde": round(minimal_detectable_effect(within, between, n, n_seeds), 4)}


def rounded_mean(values: list[float]) -> float:
    """A mean rounded to 4 digits for metrics.json (0.0 for no values)."""
    return round(sum(values) / len(values), 4) if values else 0.0


def first_step_at(steps: list[int], accuracies, target: float) -> int | None:
    """The first measured step whose accuracy is at least `target` (None: never)."""
    return next((s for s, a in zip(steps, accuracies) if a >= target - 1e-12), None)


def steps_to_target(pairs: list[tuple[list, list]], samples: int = 2000, seed: int = 0) -> dict:
    """How soon an arm reaches the baseline's final accuracy, pooled over seeds. Each pair is one seed's (baseline
    curve, arm curve), a curve a list of (step, per-problem correctness) on the same validation problems. The target:
    the baseline's accuracy at its last point; the arm's steps: its first point at or above it; the ratio: those steps
    over the baseline's (its last point's step), infinite (None in the result) when the arm never gets there. Pooled: the mean ratio; the
    95% interval from a two-level bootstrap (seeds drawn, then the problems, redrawn alike at every point of both
    curves, so the target moves with them)."""
    runs = []
    for base, arm in pairs:
        base_final = np.asarray(base[-1][1], dtype=float)
        points = np.asarray([c for _, c in arm], dtype=float)
        if points.shape[1] != len(base_final):
            raise ValueError("each seed's two curves need the same validation problems")
        runs.append((base_final, [s for s, _ in arm], points, base[-1][0]))

    def ratio(run, idx) -> float:
        base_final, steps, points, total = run
        reached = first_step_at(steps, points[:, idx].mean(axis=1), base_final[idx].mean())
        return math.inf if reached is None else reached / total

    everything = [np.arange(len(run[0])) for run in runs]
    per_seed = [ratio(run, idx) for run, idx in zip(runs, everything)]
    rng = np.random.default_rng(seed)
    pooled = np.empty(samples)
    for k in range(samples):
        drawn = rng.integers(0, len(runs), size=len(runs))
        pooled[k] = np.mean([ratio(runs[s], rng.integers(0, len(runs[s][0]), size=len(runs[s][0]))) for s in drawn])
    finite = lambda x: None if math.isinf(x) else round(float(x), 4)  # noqa: E731 (None: never reached)
    return {"seeds": len(runs), "target": [round(float(r[0].mean()), 4) for r in runs],
            "steps": [None if math.isinf(x) else round(x * r[3]) for x, r in zip(per_seed, runs)],
            "baseline_steps": [r[3] for r in runs], "per_seed_ratio": [finite(x) for x in per_seed],
            "ratio": finite(np.mean(per_seed)),
            "ci95": [finite(np.percentile(pooled, 2.5, method="lower")),
                     finite(np.percentile(pooled, 97.5, method="higher"))]}
