"""Pipeline: several stages in one run directory, each starting from the previous stage's checkpoint.

Recipe: for each name in `stage.stages` (default: warmup, curriculum, rl, eval), run that stage module with
`checkpoint.init_from` (training stages) or `checkpoint.eval` (evaluation) set to the checkpoint the stage before
left. All stages write into the same run directory, so `report.md` shows them side by side. When the
curriculum's final evaluation and a later `eval` both ran, their paired comparison (reasoning_lab.compare)
goes to `compare/` and the log: what the stages after the curriculum changed, beyond noise or not.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reasoning_lab.compare import compare_runs, write_outputs
from reasoning_lab.stages import STAGES, runner

log = logging.getLogger(__name__)

def run(cfg: DictConfig, run_dir: str) -> dict:
    checkpoint, results = cfg.checkpoint.init_from, {}
    for i, name in enumerate(cfg.stage.stages):
        stage_cfg = OmegaConf.merge(cfg, {"stage": {"name": name}})
        if STAGES[name].trains:
            stage_cfg.checkpoint.init_from = checkpoint
            if name == "curriculum" and cfg.stage.stages[i + 1 : i + 2] == ["eval"]:
                stage_cfg.curriculum.final_eval = False  # the next stage evaluates the same checkpoint
        else:
            stage_cfg.checkpoint.eval = checkpoint or "base"
        log.info("pipeline: %s (from %s)", name, checkpoint or "the base model")
        metrics = runner(name)(stage_cfg, run_dir)
        results[name] = {"status": metrics.get("status", "completed"), "checkpoint": metrics.get("checkpoint")}
        if STAGES[name].trains:
            checkpoint = str(Path(metrics["checkpoint"]))
    before, after = Path(run_dir) / "curriculum" / "final", Path(run_dir) / "eval"
    if (before / "predictions").is_dir() and (after / "predictions").is_dir():  # e.g. experiment=ablation_rl
        comparison = compare_runs([before, after])
        write_outputs(comparison, Path(run_dir) / "compare")
        log.info("paired comparison of the curriculum's final evaluation and the last one:\n%s",
                 (Path(run_dir) / "compare" / "compare.md").read_text())
        results["compare"] = comparison["comparisons"]
    return results
