"""The curriculum's schedules (reasoning_lab.schedules): each option of conf/curriculum/ names a schedule of the
stage's table, and each schedule has the interface the stage calls."""

import inspect

import pytest

from reasoning_lab.stages.curriculum import SCHEDULES
from tests.helpers import make_config


@pytest.mark.parametrize("option, schedule", [("adaptive", "adaptive"), ("stages", "stages"), ("shuffled_mix", "mix")])
def test_each_curriculum_option_picks_its_schedule(option, schedule):
    assert make_config(f"curriculum={option}").curriculum.schedule == schedule


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_has_the_interface_the_stage_calls(name):
    cls = SCHEDULES[name]
    assert cls.name == name and isinstance(cls.extends, bool)
    for method, params in (("training_examples", ["examples", "seed"]),
                           ("round", ["data", "steps", "seed", "replay", "batching", "wandb_run", "extending"]),
                           ("chart", ["summary", "target"])):
        assert list(inspect.signature(getattr(cls, method)).parameters)[1:] == params, (name, method)


def test_only_the_design_stages_extend():
    assert {name for name, cls in SCHEDULES.items() if cls.extends} == {"stages"}
