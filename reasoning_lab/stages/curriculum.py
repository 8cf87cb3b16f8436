"""Curriculum stage: four SFT stages of rising difficulty, paced by competence, with replay and
validation-driven advancement.

Recipe, per stage k (one fresh trainer per round, so data order, optimizer and schedule are each
round's own; `curriculum=default` is the design's four stages, `shuffled_mix` and `adaptive` one stage of them all):
  load the model from the previous stage's adapter (or checkpoint.init_from) -> tokenize the stage's data and the
  replay pool (earlier stages' data) -> per-example validation losses of the stage's and every earlier
  stage's sets (baseline) -> train `max_steps` steps with the curriculum sampler (pacing: adaptive -> the bucket bandit of
  reasoning_lab.adaptive, its weights updated from held-back losses every `adaptive.update_every` steps) -> losses again
  -> decide on paired tests (reasoning_lab.curriculum.decide): advance, or extend by `extend_steps` (at
  `extend_lr_scale` x the learning rate) while the loss still falls beyond its noise, within
  `max_extra_epochs` and `max_extensions`, undoing an extension that raised the loss; raise replay on
  forgetting -> greedy validation accuracy (if `val_limit` > 0) -> save `curriculum/stage_k/` (adapter +
  metrics.json) -> evaluate in memory (eval.during_training; `stage_evals`).
After stage 4: the final evaluation (the full `eval` budget) of the last adapter beside the base model's
under the same settings (`curriculum.final_eval`).
Resume: re-running with the same hydra.run.dir skips finished stages and rounds and continues an
interrupted round from its newest complete trainer checkpoint (optimizer, scheduler, RNG and data
position restored by the Trainer; the sampler's order depends only on the seed, and the adaptive sampler's on the
seed and its weight schedule, saved with every trainer checkpoint).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from datasets import concatenate_datasets
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed

from reasoning_lab.adaptive import (
    BanditUpdates,
    BucketBandit,
    BucketSampler,
    bucket_names,
    held_back_split,
    plot_weights,
)
from reasoning_lab.batching import StepBatches
from reasoning_lab.checkpoints import (
    restore_adapter,
    save_adapter,
    train_resuming,
    training_record,
)
from reasoning_lab.curriculum import CurriculumSampler, decide, mean
from reasoning_lab.data import SKIPPED, build_examples, contamination_report, tokenize
from reasoning_lab.evaluation import base_results, evaluate, record_evaluation
from reasoning_lab.files import read_json, write_json
from reasoning_lab.model import export_merged, load_model, load_tokenizer
from reasoning_lab.report import EVAL_RESULTS, publish_report
from reasoning_lab.sft import MarkComplete, sft_arguments, token_budget
from reasoning_lab.tracking import stage_run
from reasoning_lab.trl_trainers import OrderedSFTTrainer
from reasoning_lab.validation import example_losses, validation_accuracy, validation_losses

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str) -> dict:
    with stage_run(cfg, run_dir, "curriculum") as (cur_dir, metrics, wandb_run):
        c = cfg.curriculum
        set_seed(cfg.seed)
        tokenizer = load_tokenizer(cfg.model)
        all_sets = list(dict.fromkeys(n for stage in c.stages for n in stage.data))
        contamination = contamination_report(cfg.data, all_sets, list(cfg.eval.datasets))
        dropped = frozenset(contamination.pop("dropped_questions"))
        metrics.update(contamination=contamination, pacing=c.pacing, init_from=cfg.checkpoint.init_from,
                       settings=OmegaConf.to_container(c, resolve=True))

        done = read_json(cur_dir / "progress.json", {"stages": []})["stages"]
        adapter, replay, model = cfg.checkpoint.init_from, c.replay, None
        for k, stage in enumerate(c.stages, 1):
            stage_dir = cur_dir / f"stage_{k}"
            if k <= len(done) and (stage_dir / "adapter_config.json").exists():
                log.info("curriculum stage %d (%s) already finished; skipping", k, stage.name)
                adapter, replay = str(stage_dir), done[k - 1]["next_replay"]
                continue
            set_seed(cfg.seed + k)
            record, model = run_stage(k, stage, done, adapter, replay, cfg, tokenizer, dropped, cur_dir, wandb_run)
            trained_on = training_record(cfg.checkpoint.init_from, cfg.data,
                                         list(dict.fromkeys(n for st in c.stages[:k] for n in st.data)))
            save_adapter(model, tokenizer, stage_dir, cfg.model, {"stage": f"curriculum/stage_{k}",
                                                                  "trained_on": trained_on})
            write_json(stage_dir / "metrics.json", record)
            last = k == len(c.stages)  # the last stage's evaluation is the final one, unless final_eval is off
            if (c.stage_evals and not last) or (last and not c.final_eval):
                results = evaluate(model, tokenizer, cfg, cfg.eval.during_training, f"curriculum/stage_{k}", stage_dir)
                record_evaluation(results, run_dir, wandb_run, f"curriculum/stage_{k}/eval", stage_dir)
                record["eval"] = results["datasets"]
                write_json(stage_dir / "metrics.json", record)
            done.append({key: value for key, value in record.items() if key != "rounds"})
            write_json(cur_dir / "progress.json", {"stages": done})
            adapter, replay = str(stage_dir), record["next_replay"]

        metrics.update(stages=done, final_val_loss=mean([done[-1]["val_loss"][n] for n in done[-1]["data"]]),
                       final_val_accuracy=done[-1]["val_accuracy"], checkpoint=adapter,  # what searches minimise: the loss
                       malformed_rows_skipped=dict(SKIPPED))
        if c.final_eval:  # the full eval budget on the last adapter, beside the base model's numbers
            final_evaluation(cfg, tokenizer, model, adapter, cur_dir, run_dir, wandb_run, metrics)
        if cfg.export.merge:
            metrics["merged"] = str(export_merged(cfg.model, adapter, cur_dir / "merged"))
        publish_report(run_dir, wandb_run)
    return metrics


def run_stage(k: int, stage: DictConfig, earlier: list[dict], adapter: str | None, replay: float, cfg: DictConfig,
              tokenizer, dropped: frozenset, cur_dir: Path, wandb_run) -> tuple[dict, object]:
    """Train stage k to its advancement decision; returns its record and the trained model."""
    work = cur_dir / f"stage_{k}.work"
    state = read_json(work / "rounds.json", {"rounds": []})
    if state["rounds"]:  # resume after the last finished round
        adapter = str(work / f"round_{len(state['rounds']) - 1}")
    model = load_model(cfg.model, init_from=adapter)
    names = list(stage.data)
    earlier_names = list(dict.fromkeys(n for record in earlier for n in record["data"]))
    data = stage_data(cfg, tokenizer, names, earlier_names, dropped)
    val_names = data["val_names"]
    if "baseline" not in state:  # per-example validation losses of every set before the stage trains
        state["baseline"] = validation_losses(model, tokenizer, cfg, val_names)
        write_json(work / "rounds.json", state)
    train_rounds(k, stage.name, model, tokenizer, cfg, data, state, work, replay, wandb_run)

    c = cfg.curriculum
    accuracies = (validation_accuracy(model, tokenizer, cfg, val_names, c.val_limit, c.val_max_new_tokens)
                  if c.val_limit > 0 else {})
    rounds = state["rounds"]
    last = rounds[-1]
    adaptive = rounds[0].get("adaptive")
    if adaptive:  # the weights' history: in metrics.json, and as a stacked chart (a file, and an image in W&B)
        chart = plot_weights(adaptive["history"], adaptive["buckets"], cur_dir / f"stage_{k}_weights.png")
        if wandb_run is not None:
            import wandb

            wandb_run.log({f"curriculum/stage_{k}/weights": wandb.Image(str(chart))})
    record = {"stage": k, "name": stage.name, "data": names, "examples": data["stats"],
              "replay_pool": data["replay_stats"], "replay": replay, "steps": sum(x["steps"] for x in rounds),
              "baseline_val_loss": {n: round(mean(v), 4) for n, v in state["baseline"].items()},
              "val_loss": last["val_loss"], "val_limit": c.val_limit,
              "val_accuracy": mean([accuracies[n] for n in names]) if accuracies else None,
              "val_accuracy_per_set": {n: accuracies[n] for n in names if n in accuracies},
              "earlier_val_accuracy": {n: accuracies[n] for n in earlier_names if n in accuracies},
              "decision": last["reason"], "extensions": len(rounds) - 1, "next_replay": last["next_replay"],
              "forgotten": last["forgotten"], "adaptive": adaptive, "rounds": rounds}
    return record, model


def stage_data(cfg: DictConfig, tokenizer, names: list[str], earlier_names: list[str], dropped: frozenset) -> dict:
    """A stage's sets (its own, the earlier stages', and the validation sets: both), its tokenized training examples
    (its own sets, then the replay pool of earlier stages' sets) and the step counts they give. With adaptive
    pacing: each example's bucket (set x difficulty) and the held-back examples of every bucket."""
    c = cfg.curriculum
    current, stats = tokenize(build_examples(cfg.data, names, "train", exclude=dropped), tokenizer,
                              cfg.data.max_length, cfg.data.overflow, keep=("difficulty", "set"))
    adaptive = {}
    if c.pacing == "adaptive":
        bucket_list, buckets = bucket_names(current["set"], current["difficulty"])
        kept, held = held_back_split(buckets, c.adaptive.held_back, cfg.seed)
        adaptive = {"bucket_names": bucket_list, "buckets": [buckets[i] for i in kept],
                    "held_back": current.select(held).remove_columns(["difficulty", "set"]),
                    "held_back_buckets": [buckets[i] for i in held]}
        stats = {**stats, "held_back": len(held)}
        current = current.select(kept)
    difficulties = current["difficulty"]
    datasets, n_replay, replay_stats = [current.remove_columns(["difficulty", "set"])], 0, None
    if earlier_names:
        pool, replay_stats = tokenize(build_examples(cfg.data, earlier_names, "train", exclude=dropped), tokenizer,
                                      cfg.data.max_length, cfg.data.overflow)
        datasets.append(pool)
        n_replay = len(pool)
    steps_per_epoch = math.ceil(len(difficulties) / (c.batch_size * c.grad_accum))
    return {"names": names, "earlier_names": earlier_names,
            "val_names": names + [n for n in earlier_names if n not in names],
            "dataset": concatenate_datasets(datasets), "difficulties": difficulties, "n_replay": n_replay,
            "stats": stats, "replay_stats": replay_stats, **adaptive,
            "steps": c.max_steps if c.max_steps > 0 else math.ceil(c.num_epochs * steps_per_epoch),
            "extra_budget": math.floor(c.max_extra_epochs * steps_per_epoch)}


def train_rounds(k: int, stage_name: str, model, tokenizer, cfg: DictConfig, data: dict, state: dict, work: Path,
                 replay: float, wandb_run) -> None:
    """The main round, then extensions while `decide` says so; each round is saved (adapter and rounds.json)
    so that a killed stage continues after its last finished round."""
    c, rounds = cfg.curriculum, state["rounds"]
    names, earlier_names, val_names = data["names"], data["earlier_names"], data["val_names"]
    previous = rounds[-1]["val_losses"] if rounds else state["baseline"]
    while not rounds or rounds[-1]["decision"] == "extend":
        r = len(rounds)
        extending = r > 0
        steps, pacing = (c.extend_steps, "fixed") if extending else (data["steps"], c.pacing)
        learning_rate = c.learning_rate * (c.extend_lr_scale if extending else 1.0)
        train = train_round(model, tokenizer, cfg, work / f"round_{r}.work", data, steps, pacing, replay,
                            cfg.seed + 1000 * k + r, learning_rate, "wandb" if wandb_run is not None else "none",
                            wandb_run)
        now = validation_losses(model, tokenizer, cfg, val_names)
        spent = sum(x["steps"] for x in rounds[1:]) + (steps if extending else 0)
        extensions_left = spent + c.extend_steps <= data["extra_budget"] and len(rounds) < c.max_extensions
        decision = decide(own(now, names), own(previous, names), extensions_left,
                          {n: now[n] for n in earlier_names}, {n: state["baseline"][n] for n in earlier_names},
                          replay, c, extended_round=r - 1 if extending else None,
                          earlier_previous={n: previous[n] for n in earlier_names})
        rejected = None
        if decision.revert:  # a round that raised the loss is undone
            restore_adapter(model, work / f"round_{r - 1}")
            rejected, now = now, previous
        val_loss = {n: round(mean(v), 4) for n, v in now.items()}
        rounds.append({"round": r, "kind": "extension" if extending else "main", "steps": steps, "pacing": pacing,
                       "learning_rate": learning_rate, **train, "val_loss": val_loss, "val_losses": now,
                       "reverted": decision.revert,
                       "rejected_val_loss": None if rejected is None else {n: round(mean(v), 4) for n, v in rejected.items()},
                       "decision": decision.action, "reason": decision.reason,
                       "next_replay": decision.next_replay, "forgotten": decision.forgotten})
        log.info("curriculum stage %d (%s) round %d: %s: %s", k, stage_name, r, decision.action, decision.reason)
        if wandb_run is not None:
            wandb_run.log({"curriculum/stage": k, "curriculum/val_loss": mean(own(now, names)),
                           "curriculum/extended": int(decision.action == "extend"), "curriculum/replay": replay,
                           **{f"curriculum/val_loss/{n}": v for n, v in val_loss.items()}})
        save_adapter(model, tokenizer, work / f"round_{r}", cfg.model, {"stage": f"curriculum/stage_{k}", "round": r})
        write_json(work / "rounds.json", state)
        previous = now


def own(losses: dict[str, list[float]], names: list[str]) -> list[float]:
    """The per-example losses of the stage's own sets, in one paired list."""
    return [v for n in names for v in losses[n]]


def train_round(model, tokenizer, cfg: DictConfig, work: Path, data: dict, steps: int, pacing: str, replay: float,
                seed: int, learning_rate: float, report_to: str, wandb_run=None) -> dict:
    """One trainer over `steps` optimizer steps, resumed from its newest complete checkpoint if any."""
    c = cfg.curriculum
    dataset, callbacks, bandit = data["dataset"], [], None
    lengths = [len(ids) for ids in dataset["input_ids"]]
    budget = dict(lengths=lengths, budget=token_budget(c, lengths, model), padding_free=c.padding_free)
    if pacing == "adaptive":
        bandit = BucketBandit(data["bucket_names"], c.adaptive.signal, c.adaptive.smoothing, c.adaptive.temperature,
                              c.adaptive.explore)
        sampler = BucketSampler(data["buckets"], len(data["bucket_names"]), c.batch_size, steps * c.grad_accum, seed,
                                **budget)
        updates = BanditUpdates(bandit, sampler, c.adaptive.update_every * c.grad_accum,
                                lambda m: bucket_losses(m, tokenizer, data), log, wandb_run)
        callbacks.append(updates)
    else:
        sampler = CurriculumSampler(data["difficulties"], data["n_replay"], c.batch_size, steps * c.grad_accum, pacing,
                                    c.c0, replay, seed, c.step_levels, length_window=c.length_window, **budget)
    batches = StepBatches(sampler) if budget["budget"] is not None else None
    if batches is not None:  # windows cut by tokens: the round runs the batches they make
        steps = math.ceil(len(batches) / c.grad_accum)
    trainer = OrderedSFTTrainer(
        model=model,
        args=sft_arguments(work / "trainer", c, max_steps=steps, learning_rate=learning_rate, seed=seed,
                           report_to=report_to),
        train_dataset=dataset,
        processing_class=tokenizer,
        sampler=None if batches else sampler,
        batches=batches,
        callbacks=callbacks + [MarkComplete()],
    )
    result, resume = train_resuming(trainer, work / "trainer")
    record = {"steps": result.global_step, "train_loss": result.training_loss, "resumed_from": str(resume or "")}
    if bandit is not None:
        record["adaptive"] = {"buckets": bandit.names, "history": bandit.history, "schedule": sampler.schedule}
    return record


def bucket_losses(model, tokenizer, data: dict) -> list[float]:
    """Each bucket's mean completion loss on its held-back examples."""
    losses = example_losses(model, tokenizer, data["held_back"])
    per_bucket = [[v for v, b in zip(losses, data["held_back_buckets"]) if b == k]
                  for k in range(len(data["bucket_names"]))]
    return [mean(values) if values else 0.0 for values in per_bucket]


def final_evaluation(cfg: DictConfig, tokenizer, model, adapter: str, cur_dir: Path, run_dir: str, wandb_run,
                     metrics: dict) -> None:
    """The full `eval` budget on the last adapter (`curriculum/final/`), beside the base model's numbers under the
    same settings (`curriculum/base/`, cached)."""
    metrics["base_eval"] = base_results(cfg, tokenizer, cfg.eval, cur_dir / "base")["datasets"]
    final_dir = cur_dir / "final"
    if not (final_dir / EVAL_RESULTS).exists():
        model = model if model is not None else load_model(cfg.model, init_from=adapter, trainable=False)
        final = evaluate(model, tokenizer, cfg, cfg.eval, f"final (stage_{len(cfg.curriculum.stages)})", final_dir)
        final["checkpoint"] = adapter
        record_evaluation(final, run_dir, wandb_run, "curriculum/final", final_dir)
    metrics["final_eval"] = read_json(final_dir / EVAL_RESULTS, {})["datasets"]
