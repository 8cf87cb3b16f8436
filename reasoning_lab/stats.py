"""Statistics for numbers that have to hold up: intervals of rates and paired tests on the same examples.

- `wilson(successes, n)`: Wilson score 95% interval of a proportion.
- `bootstrap_ci(values, samples, seed)`: percentile bootstrap 95% interval of a mean.
- `paired_p_value(a, b, seed)`: one-sided sign-flip permutation test that mean(a - b) > 0 on paired
  values (the same examples measured twice). Exact under the null that each difference is symmetric
  around zero, so a rule "act when p < alpha" fires on pure noise at most alpha of the time.
"""

from __future__ import annotations

import math

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
