"""Hydra search-path plugin: makes the presets in `experiments/presets/experiment/` selectable from any working
directory with `python -m reasoning_lab experiment=<name>`."""

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments" / "presets"


class ReasoningLabExperiments(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="reasoning_lab-experiments", path=f"file://{EXPERIMENTS}")
