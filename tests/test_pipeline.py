"""The pipeline stage (reasoning_lab.stages.pipeline): the stages it runs, each from the adapter the one before
left."""

import yaml

from reasoning_lab.stages import STAGES, TRAINING
from tests.helpers import CONF


def test_the_pipeline_runs_the_stages_that_say_so_and_hands_on_the_trained_adapters():
    assert TRAINING == ("warmup", "curriculum", "rl")
    default = yaml.safe_load((CONF / "stage" / "pipeline.yaml").read_text())["stages"]
    assert all(STAGES[name].in_pipeline for name in default)
    assert not STAGES["answer"].in_pipeline and not STAGES["pipeline"].in_pipeline
