"""Evaluation stage: the base model or an adapter on every evaluation set.

Recipe: pick the checkpoint (checkpoint.eval, else the newest one under `checkpoint.search` or this run
directory, else the base model) -> check that the evaluation sets were held out from what the checkpoint
records it was trained on -> load -> evaluate (reasoning_lab.evaluation) -> write `eval/eval_results.json`,
`eval/predictions/<set>.jsonl`, the base model's numbers under the same settings (`base/`, cached),
`report.md` and `report.png` -> log to W&B.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from transformers import set_seed

from reasoning_lab.checkpoints import resolve_checkpoint
from reasoning_lab.contamination import held_out_check
from reasoning_lab.evaluation import base_results, evaluate, record_evaluation
from reasoning_lab.model import load_base_model, load_model, load_tokenizer
from reasoning_lab.readers import SKIPPED
from reasoning_lab.tracking import stage_run

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str) -> dict:
    with stage_run(cfg, run_dir, "eval") as (stage_dir, metrics, wandb_run):
        set_seed(cfg.seed)
        checkpoint = resolve_checkpoint(cfg.checkpoint, cfg.model, default_root=run_dir)
        held_out = held_out_check(cfg.data, list(cfg.eval.datasets), checkpoint) if checkpoint is not None else []
        tokenizer = load_tokenizer(cfg.model)
        if checkpoint is None:
            model = load_base_model(cfg.model)
        else:
            model = load_model(cfg.model, init_from=str(checkpoint), trainable=False)
            if cfg.model.quantization == "none":
                model = model.merge_and_unload()  # same function, about 25% faster generation on the CPU
        label = "eval: " + ("base" if checkpoint is None else checkpoint_label(checkpoint))
        log.info("evaluating %s", checkpoint or f"the base model {cfg.model.name}")
        results = evaluate(model, tokenizer, cfg, cfg.eval, label, out_dir=stage_dir)
        results["checkpoint"] = str(checkpoint) if checkpoint else "base"
        results["contamination"] = held_out
        if checkpoint is not None and cfg.eval.with_base:  # "before" beside "after", under the same settings
            base_results(cfg, tokenizer, cfg.eval, Path(run_dir) / "base")
        record_evaluation(results, run_dir, wandb_run, "eval", stage_dir)
        metrics.update(checkpoint=results["checkpoint"], datasets=results["datasets"], skipped=results["skipped"],
                       malformed_rows_skipped=dict(SKIPPED))
    return metrics


def checkpoint_label(checkpoint: Path) -> str:
    """`.../warmup/checkpoint` -> "warmup", `.../curriculum/stage_2` -> "curriculum/stage_2"."""
    parts = checkpoint.resolve().parts
    if parts[-1] == "checkpoint":
        return parts[-2]
    return "/".join(parts[-2:])
