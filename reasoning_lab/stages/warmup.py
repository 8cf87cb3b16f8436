"""Warm-up stage: supervised fine-tuning of the LoRA adapters on generic reasoning.

Recipe: load the model and data -> contamination guard -> tokenize with a loss mask on the completion
-> train with TRL's SFTTrainer (batches by count or by a token budget), validation loss before, during and after
-> save the adapter -> evaluate in memory (greedy, self-consistency, with and without the reasoning prompt).
Writes `<run_dir>/warmup/{metrics.json, checkpoint/, eval_results.json, predictions/}` and `report.md`.
Resume: re-running with the same hydra.run.dir continues from the newest complete trainer checkpoint
(`warmup.save_steps`; optimizer, scheduler, RNG and data position restored by the Trainer), and a finished
warm-up is not trained again.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig
from transformers import set_seed

from reasoning_lab.callbacks import MarkComplete
from reasoning_lab.checkpoints import save_adapter, train_resuming, training_record
from reasoning_lab.contamination import contamination_report
from reasoning_lab.data import build_examples, tokenize
from reasoning_lab.evaluation import evaluate, record_evaluation
from reasoning_lab.model import load_model, load_tokenizer, quantized_layers, trainable_parameters
from reasoning_lab.readers import SKIPPED
from reasoning_lab.sft import sft_arguments, token_batches
from reasoning_lab.tracking import adapter_digest, finished_stage, stage_run
from reasoning_lab.trl_trainers import OrderedSFTTrainer

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str) -> dict:
    finished = finished_stage(run_dir, "warmup")
    if finished:
        log.info("warm-up in %s already finished; skipping", run_dir)
        return finished
    with stage_run(cfg, run_dir, "warmup") as (stage_dir, metrics, wandb_run):
        set_seed(cfg.seed)
        tokenizer = load_tokenizer(cfg.model)
        model = load_model(cfg.model, init_from=cfg.checkpoint.init_from)
        trainable, total = trainable_parameters(model)
        metrics["parameters"] = {"trainable": trainable, "total": total, "quantized_layers": quantized_layers(model)}

        contamination = contamination_report(cfg.data, list(cfg.data.train), list(cfg.eval.datasets))
        dropped = frozenset(contamination.pop("dropped_questions"))
        metrics["contamination"] = contamination
        train_examples = build_examples(cfg.data, list(cfg.data.train), "train", exclude=dropped)
        val_examples = build_examples(cfg.data, list(cfg.data.train), "val")
        metrics["malformed_rows_skipped"] = dict(SKIPPED)
        train_set, metrics["train_data"] = tokenize(train_examples, tokenizer, cfg.data.max_length, cfg.data.overflow)
        val_set, metrics["val_data"] = tokenize(val_examples, tokenizer, cfg.data.max_length, cfg.data.overflow)

        w = cfg.warmup
        batches = token_batches(w, [len(ids) for ids in train_set["input_ids"]], cfg.seed, model)
        trainer = OrderedSFTTrainer(
            model=model,
            args=sft_arguments(
                stage_dir / "trainer", w, max_steps=w.max_steps, num_epochs=w.num_epochs, eval_steps=w.eval_steps,
                eval_on_start=True, group_by_length=w.group_by_length, seed=cfg.seed,
                report_to="wandb" if wandb_run is not None else "none",
            ),
            train_dataset=train_set,
            eval_dataset=val_set,
            processing_class=tokenizer,
            batches=batches,
            callbacks=[MarkComplete()],
        )
        result, resume = train_resuming(trainer, stage_dir / "trainer")
        metrics["resumed_from"] = str(resume or "")
        history = trainer.state.log_history
        evals = [h["eval_loss"] for h in history if "eval_loss" in h]
        metrics["train"] = {"steps": result.global_step, "train_loss": result.training_loss, "eval_loss_before": evals[0],
                            "eval_loss_after": trainer.evaluate()["eval_loss"], "history": history,
                            "max_tokens_per_batch": batches.budget if batches else None}

        checkpoint = save_adapter(trainer.model, tokenizer, stage_dir / "checkpoint", cfg.model,
                                  {"stage": "warmup", "trained_on": training_record(cfg.checkpoint.init_from, cfg.data,
                                                                                    list(cfg.data.train))})
        metrics["checkpoint"] = str(checkpoint)
        if trainer.args.world_size > 1:  # data parallel: every rank holds the same adapter
            log.info("rank %d of %d: adapter digest %s", trainer.args.process_index, trainer.args.world_size,
                     adapter_digest(trainer.model))

        if cfg.warmup.eval_sets:
            results = evaluate(trainer.model, tokenizer, cfg, cfg.eval.during_training, "warmup", stage_dir,
                               datasets=list(cfg.warmup.eval_sets))
            record_evaluation(results, run_dir, wandb_run, "warmup/eval", stage_dir)
            metrics["eval"] = results["datasets"]
        log.info("warm-up done: eval loss %.3f -> %.3f, adapter in %s",
                 metrics["train"]["eval_loss_before"], metrics["train"]["eval_loss_after"], checkpoint)
    return metrics
