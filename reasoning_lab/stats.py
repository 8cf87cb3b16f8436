"""Statistics for numbers that have to hold up: intervals of rates and paired tests on the same examples.

- `wilson(successes, n)`: Wilson score 95% interval of a proportion.
- `bootstrap_ci(values, samples, seed)`: percentile bootstrap 95% interval of a mean.
- `paired_p_value(a, b, seed)`: one-sided sign-flip permutation test that mean(a - b) > 0 on paired
  values (the same examples measured twice). Exact under the null that each difference is symmetric
  around zero, so a rule "act when p < alpha" fires on pure noise at most alpha of the time.
- `mcnemar_p(a, b)`: exact two-sided McNemar test of paired right/wrong outcomes.
- `paired_bootstrap(a, b)`: 95% interval of the paired difference of two right/wrong lists.
- `holm(p_values)`: Holm's step-down correction for several comparisons.
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
