"""Which prompts RL trains on (reasoning_lab.prompt_selection): AdaRFT's arithmetic and TRL's prompt order."""

import json
import math
from collections import Counter

import pytest

from reasoning_lab.prompt_selection import (
    AdaptiveDifficulty,
    Learnability,
    PromptSampler,
    quantiles,
    step_numbers,
)


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


def test_learnability_never_draws_a_prompt_known_always_right_or_always_wrong():
    # prompts 0-5 in two buckets; 0 answered right every time, 1 wrong every time, 2 both ways
    learn = Learnability(["a/1"] * 3 + ["a/2"] * 3, prior=4.0, seed=0)
    learn.observe([0, 0, 1, 1, 2, 2], [1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    assert learn.known(0) and learn.known(1) and not learn.known(2)
    for _ in range(200):
        assert not {0, 1} & set(learn.pick(4))  # four prompts are still open: 2, 3, 4, 5
    picks = [learn.pick(5) for _ in range(50)]  # one short: a known prompt fills the chunk
    assert all(len(set(p)) == 5 and set(p[:4]) == {2, 3, 4, 5} for p in picks)


def test_learnability_prefers_prompts_whose_pass_rate_is_near_one_half():
    learn = Learnability(["easy/1"] * 10 + ["even/2"] * 10, prior=4.0, seed=0)
    # groups of four answers: the easy bucket right 7 times in 8, the other 4 in 8
    learn.observe([0] * 4 + [1] * 4 + [10] * 4 + [11] * 4, [1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1])
    drawn = Counter(i for _ in range(1000) for i in learn.pick(1))
    assert drawn[0] == 0  # always right: left alone
    easy = sum(drawn[i] for i in range(2, 10))  # unseen prompts of the mostly right bucket: s = 0.8, weight 0.16
    even = sum(drawn[i] for i in range(12, 20))  # unseen prompts of the even bucket: s = 0.5, weight 0.25
    assert even > 1.3 * easy


@pytest.mark.parametrize("selector", ["learnability", "adarft"])
def test_prompt_sampler_replays_its_observations_after_a_resume(selector):
    """A sampler built anew with the observations of a killed run draws the chunks the killed run drew, and then
    those of a run never killed."""

    def make():
        chooser = (Learnability([f"s/{i % 3}" for i in range(24)], 4.0, seed=1) if selector == "learnability"
                   else AdaptiveDifficulty([i % 5 for i in range(24)], 0.5, 0.1, 2.0, 0.5, seed=1))
        return PromptSampler(24, 4, 1, 1, seed=1, selector=chooser)

    def run(sampler, chunks, stop=None, trained=0):
        """Draw `chunks` chunks (or stop after `stop`), observing each chunk's answers when the next one is drawn
        (as the Trainer's prefetch does); the first `trained` chunks were trained before a resume: skipped."""
        drawn = []
        for n, chunk in enumerate(sampler.chunks()):
            drawn.append(chunk)
            if n >= 1 and n - 1 >= trained:
                right = (lambda i: i % 2) if n == 1 else (lambda i: i % 3 == 0)
                sampler.observe(drawn[n - 1], [float(right(i)) for i in drawn[n - 1]])
            if len(drawn) == (stop or chunks):
                return drawn

    clean = make()
    whole = run(clean, 6)
    killed = make()
    run(killed, 6, stop=3)  # chunks 0 and 1 trained and observed, chunk 2 drawn: killed
    resumed = make()
    resumed.load(json.loads(json.dumps(killed.state())))  # through JSON, as in a checkpoint
    assert run(resumed, 6, trained=2) == whole
    assert resumed.observations == clean.observations


def test_step_numbers_count_groups_without_signal():
    observations = [[1, [0, 0, 1, 1], [1.0, 0.0, 1.0, 1.0]], [1, [2, 2], [0.0, 0.0]]]
    assert step_numbers(observations) == {"prompt_sampling/pass_rate": 0.5,
                                          "prompt_sampling/zero_variance_share": round(2 / 3, 4)}
