"""The curriculum's schedules (reasoning_lab.schedules): each option of conf/curriculum/ names a schedule of the
stage's table, and each schedule has the interface the stage calls."""

import inspect

import pytest

from reasoning_lab.curriculum import FadedSchedule, faded_boundaries, faded_weights
from reasoning_lab.stages.curriculum import SCHEDULES
from tests.helpers import make_config


@pytest.mark.parametrize("option, schedule", [("adaptive", "adaptive"), ("stages", "stages"), ("shuffled_mix", "mix"),
                                              ("faded", "faded")])
def test_each_curriculum_option_picks_its_schedule(option, schedule):
    assert make_config(f"curriculum={option}").curriculum.schedule == schedule


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_has_the_interface_the_stage_calls(name):
    cls = SCHEDULES[name]
    assert cls.name == name and isinstance(cls.extends, bool)
    for method, params in (("plan", ["stages"]), ("training_examples", ["examples", "seed"]),
                           ("round", ["data", "steps", "seed", "replay", "batching", "wandb_run", "extending"]),
                           ("chart", ["summary", "target"])):
        assert list(inspect.signature(getattr(cls, method)).parameters)[1:] == params, (name, method)


def test_only_the_design_stages_extend():
    assert {name for name, cls in SCHEDULES.items() if cls.extends} == {"stages"}


def test_faded_weights_at_chosen_steps_computed_by_hand():
    """Four phases over 144 steps, linear, floor 0.05: x = 1/2 + 4 t / 144 clipped to [1, 4]; w = 0.8 w_raw + 0.05."""
    assert faded_weights(0, 144, 4, "linear", 0.05) == pytest.approx([0.85, 0.05, 0.05, 0.05])  # x 0.5 -> 1
    assert faded_weights(36, 144, 4, "linear", 0.05) == pytest.approx([0.45, 0.45, 0.05, 0.05])  # x 1.5: half-way
    assert faded_weights(54, 144, 4, "linear", 0.05) == pytest.approx([0.05, 0.85, 0.05, 0.05])  # x 2.0
    assert faded_weights(81, 144, 4, "linear", 0.05) == pytest.approx([0.05, 0.25, 0.65, 0.05])  # x 2.75
    assert faded_weights(144, 144, 4, "linear", 0.05) == pytest.approx([0.05, 0.05, 0.05, 0.85])  # x 4.5 -> 4
    # root: x = 1/2 + 4 sqrt(t / 144); at t = 36, x = 2.5
    assert faded_weights(36, 144, 4, "root", 0.0) == pytest.approx([0.0, 0.5, 0.5, 0.0])
    assert faded_boundaries(144, 4, "linear") == [36, 72, 108, 144]
    assert faded_boundaries(144, 4, "root") == [9, 36, 81, 144]
    assert all(sum(faded_weights(t, 144, 4, "root", 0.05)) == pytest.approx(1) for t in range(145))


def test_the_faded_schedule_plans_one_trainer_and_draws_each_phase_by_its_weight():
    import logging

    cfg = make_config("curriculum=faded")
    schedule = FadedSchedule(cfg.curriculum, None, logging.getLogger(__name__))
    (stage,) = schedule.plan(cfg.curriculum.stages)
    assert stage.data == ["generic", "gsm8k_simple", "gsm8k_medium", "aqua", "gsm8k", "strategyqa"]
    sets = [name for name in stage.data for _ in range(20)]  # 20 examples a set, in the plan's order
    schedule.training_examples({"set": sets}, seed=0)
    drawn = schedule.round(None, steps=144, seed=3, replay=0.0, batching={})
    assert drawn.saves == [(36, "phase_1"), (72, "phase_2"), (108, "phase_3")]
    phases = [set(p.data) for p in cfg.curriculum.stages]
    for b, batch in enumerate(drawn.sampler.batches()):
        assert len(batch) == 4
        if b in (0, 54, 143):  # the leading phase holds 0.85 x 4 = 3.4 examples: 3 or 4 of the batch
            lead = {0: 0, 54: 1, 143: 3}[b]
            assert sum(sets[i] in phases[lead] for i in batch) >= 3
    assert drawn.sampler.weights_at(36) == pytest.approx([0.45, 0.45, 0.05, 0.05])


def test_faded_needs_a_pacing_that_moves_and_two_stages():
    from reasoning_lab.config import validate
    from reasoning_lab.errors import ReasoningLabError

    with pytest.raises(ReasoningLabError, match="pacing linear or root"):
        validate(make_config("curriculum=faded", "curriculum.pacing=step"))
