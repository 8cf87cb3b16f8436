"""The stage registry (reasoning_lab.stages): one entry per stage, each with its module and its YAML."""

import importlib

import yaml

from reasoning_lab.stages import STAGES, runner
from tests.helpers import CONF, ROOT


def test_every_registered_stage_has_a_module_with_run_and_a_yaml_of_its_name():
    assert set(STAGES) == {p.stem for p in (CONF / "stage").glob("*.yaml")}
    for name, stage in STAGES.items():
        assert yaml.safe_load((CONF / "stage" / f"{name}.yaml").read_text())["name"] == name
        assert callable(runner(name)) and importlib.import_module(stage.module).run is runner(name)


def test_a_stage_module_path_is_written_in_the_registry_only():
    """__main__, the pipeline and the model card read the registry; none of them names a stage module."""
    for name, stage in STAGES.items():
        holders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "reasoning_lab").rglob("*.py")
                   if f'"{stage.module}"' in p.read_text()]
        assert holders == ["reasoning_lab/stages/__init__.py"], (name, holders)


