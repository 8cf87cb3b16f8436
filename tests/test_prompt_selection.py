"""Which prompts RL trains on (reasoning_lab.prompt_selection): AdaRFT's arithmetic and TRL's prompt order."""

import math

import pytest

from reasoning_lab.prompt_selection import AdaptiveDifficulty, PromptSampler, quantiles


def test_difficulties_become_quantiles():
    assert quantiles([3, 1, 2, 2, 5]) == [0.75, 0.0, 0.375, 0.375, 1.0]


def test_adarft_target_follows_the_formula():
    adaptive = AdaptiveDifficulty([1, 2, 3, 4, 5], target=0.5, eta=0.1, alpha=2.0, beta=0.5, seed=0)
    assert adaptive.update(0.9) == pytest.approx(0.5 + 0.1 * math.tanh(2.0 * 0.4))  # too easy: harder
    assert adaptive.update(0.0) == pytest.approx(0.5 + 0.1 * math.tanh(0.8) + 0.1 * math.tanh(-1.0))
    for _ in range(100):
        adaptive.update(0.0)
    assert adaptive.target == 0.0  # clipped at d_min


def test_adarft_picks_the_unused_problems_nearest_the_target():
    # quantiles 0.2, 1.0, 0.6, 0.4, 0.0, 0.8: pairs at distance 0.1, 0.3, 0.5 from the target 0.5
    adaptive = AdaptiveDifficulty([0.2, 0.9, 0.5, 0.45, 0.0, 0.6], target=0.5, eta=0.1, alpha=2.0, beta=0.5, seed=0)
    assert sorted(adaptive.pick(2)) == [2, 3]
    assert sorted(adaptive.pick(2)) == [0, 5]  # the nearest two are spent
    assert sorted(adaptive.pick(2)) == [1, 4]
    assert len(adaptive.pick(2)) == 2  # all spent: starts over


def test_prompt_sampler_uses_trl_group_order():
    order = list(PromptSampler(6, batch_size=2, num_generations=3, repeat=2, seed=0))
    assert len(order) == len(PromptSampler(6, 2, 3, 2, 0)) == 36
    for start in range(0, 36, 12):  # per step: 2 prompts x 3 generations, the chunk repeated twice
        chunk = order[start:start + 12]
        assert chunk[:6] == chunk[6:] and chunk[0] == chunk[1] == chunk[2] and chunk[3] == chunk[4] == chunk[5]
    assert sorted(set(order)) == list(range(6))
