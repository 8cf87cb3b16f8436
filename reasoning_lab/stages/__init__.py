"""The stage registry: what `stage=<name>` runs. `__main__`, the pipeline and the model card read this table.

A new stage is one entry here, its module (a `run(cfg, run_dir) -> dict` function) and `conf/stage/<name>.yaml`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    # the module whose `run(cfg, run_dir)` runs the stage
    module: str
    # trains an adapter: the pipeline hands it to the next stage as checkpoint.init_from, the model card lists it
    trains: bool
    # may be a step of stage=pipeline (stage.stages)
    in_pipeline: bool
    # leaves an adapter that the run's model_card.md describes (and export.push_to_hub uploads)
    model_card: bool


STAGES = {
    "warmup": Stage("reasoning_lab.stages.warmup", trains=True, in_pipeline=True, model_card=True),
    "curriculum": Stage("reasoning_lab.stages.curriculum", trains=True, in_pipeline=True, model_card=True),
    "rl": Stage("reasoning_lab.stages.rl", trains=True, in_pipeline=True, model_card=True),
    "eval": Stage("reasoning_lab.stages.eval", trains=False, in_pipeline=True, model_card=False),
    "answer": Stage("reasoning_lab.stages.answer", trains=False, in_pipeline=False, model_card=False),
    "pipeline": Stage("reasoning_lab.stages.pipeline", trains=False, in_pipeline=False, model_card=True),
}

TRAINING = tuple(name for name, stage in STAGES.items() if stage.trains)


def runner(name: str):
    """The `run(cfg, run_dir)` function of the stage `name`."""
    return importlib.import_module(STAGES[name].module).run
