"""Curriculum stage: SFT over the stages of `curriculum.stages`, each drawn into batches by the chosen schedule.

Recipe, per stage k (one fresh trainer per round, so data order, optimizer and schedule are each round's own):
  load the model from the previous stage's adapter (or checkpoint.init_from) -> tokenize the stage's data (what the
  schedule trains on) and the replay pool (earlier stages' data) -> per-example validation losses of the stage's and
  every earlier stage's sets (baseline) -> train `max_steps` steps with the schedule's sampler -> losses again ->
  a schedule that extends (curriculum=stages) decides on paired tests (reasoning_lab.curriculum.decide): advance, or
  extend by `extend_steps` (at `extend_lr_scale` x the learning rate) while the loss still falls beyond its noise,
  within `max_extra_epochs` and `max_extensions`, undoing an extension that raised the loss; raise replay on
  forgetting -> greedy validation accuracy (if `val_limit` > 0) -> save `curriculum/stage_k/` (adapter +
  metrics.json) -> evaluate in memory (eval.during_training; `stage_evals`).
After the last stage: the final evaluation (the full `eval` budget) of the last adapter beside the base model's
under the same settings (`curriculum.final_eval`); `curriculum/metrics.json` names that adapter (`checkpoint`).
The schedules (reasoning_lab.schedules): `stages` (the design's four stages, paced, with replay), `adaptive` (one
stage drawn by a bandit over buckets), `mix` (one stage of shuffled batches), `faded` (the four stages as phases of
one trainer, mixed by weights that fade from each to the next, an adapter saved at each phase's end).
With `curriculum.curve_every` > 0 every run also records greedy accuracy on a fixed validation subset every that many
steps (`accuracy_curve` in metrics.json, accuracy_curve.png, W&B curriculum/val_accuracy).
Resume: re-running with the same hydra.run.dir skips finished stages and rounds and continues an
interrupted round from its newest complete trainer checkpoint (optimizer, scheduler, RNG and data
position restored by the Trainer; the sampler's order depends only on the seed, and the adaptive sampler's on the
seed and its weight schedule, saved with every trainer checkpoint).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from datasets import concatenate_datasets
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed

from reasoning_lab.adaptive import AdaptiveSchedule
from reasoning_lab.batching import StepBatches
from reasoning_lab.callbacks import AtSteps, MarkComplete
from reasoning_lab.checkpoints import restore_adapter, save_adapter, train_resuming, training_record
from reasoning_lab.contamination import contamination_report
from reasoning_lab.curriculum import (
    AccuracyCurve,
    Decision,
    FadedSchedule,
    MixSchedule,
    StagedSchedule,
    decide,
    mean,
    plot_curve,
)
from reasoning_lab.data import build_examples, tokenize
from reasoning_lab.evaluation import base_results, evaluate, record_evaluation
from reasoning_lab.files import read_json, write_json
from reasoning_lab.model import export_merged, load_model, load_tokenizer
from reasoning_lab.readers import SKIPPED
from reasoning_lab.report import EVAL_RESULTS, publish_report
from reasoning_lab.schedules import StageData
from reasoning_lab.sft import batch_token_budget, sft_arguments
from reasoning_lab.signals import validation_accuracy, validation_correct, validation_losses
from reasoning_lab.tracking import stage_run
from reasoning_lab.trl_trainers import OrderedSFTTrainer

log = logging.getLogger(__name__)

# curriculum.schedule -> the schedule class (reasoning_lab.schedules describes the interface)
SCHEDULES = {"stages": StagedSchedule, "adaptive": AdaptiveSchedule, "mix": MixSchedule, "faded": FadedSchedule}


@dataclass
class Curriculum:
    """What every stage of one curriculum run shares."""

    cfg: DictConfig
    tokenizer: object
    schedule: object
    # training questions the contamination guard dropped
    dropped: frozenset
    cur_dir: Path
    wandb_run: object
    # the stages trained, one trainer each (the schedule's plan of curriculum.stages), and every set they hold
    stages: list
    sets: list[str]


def run(cfg: DictConfig, run_dir: str) -> dict:
    with stage_run(cfg, run_dir, "curriculum") as (cur_dir, metrics, wandb_run):
        c = cfg.curriculum
        set_seed(cfg.seed)
        tokenizer = load_tokenizer(cfg.model)
        all_sets = list(dict.fromkeys(n for stage in c.stages for n in stage.data))
        contamination = contamination_report(cfg.data, all_sets, list(cfg.eval.datasets))
        dropped = frozenset(contamination.pop("dropped_questions"))
        metrics.update(contamination=contamination, schedule=c.schedule, pacing=c.pacing,
                       init_from=cfg.checkpoint.init_from, settings=OmegaConf.to_container(c, resolve=True))
        schedule = SCHEDULES[c.schedule](c, tokenizer, log)
        cur = Curriculum(cfg, tokenizer, schedule, dropped, cur_dir, wandb_run, schedule.plan(c.stages), all_sets)

        done = read_json(cur_dir / "progress.json", {"stages": []})["stages"]
        adapter, replay, model = cfg.checkpoint.init_from, c.replay, None
        for k, stage in enumerate(cur.stages, 1):
            stage_dir = cur_dir / f"stage_{k}"
            if k <= len(done) and (stage_dir / "adapter_config.json").exists():
                log.info("curriculum stage %d (%s) already finished; skipping", k, stage.name)
                adapter, replay = str(stage_dir), done[k - 1]["next_replay"]
                continue
            set_seed(cfg.seed + k)
            record, model = run_stage(cur, k, stage, done, adapter, replay)
            trained_on = training_record(cfg.checkpoint.init_from, cfg.data,
                                         list(dict.fromkeys(n for st in cur.stages[:k] for n in st.data)))
            save_adapter(model, tokenizer, stage_dir, cfg.model, {"stage": f"curriculum/stage_{k}",
                                                                  "trained_on": trained_on})
            write_json(stage_dir / "metrics.json", record)
            last = k == len(cur.stages)  # the last stage's evaluation is the final one, unless final_eval is off
            if (c.stage_evals and not last) or (last and not c.final_eval):
                results = evaluate(model, tokenizer, cfg, cfg.eval.during_training, f"curriculum/stage_{k}", stage_dir)
                record_evaluation(results, run_dir, wandb_run, f"curriculum/stage_{k}/eval", stage_dir)
                record["eval"] = results["datasets"]
                write_json(stage_dir / "metrics.json", record)
            done.append({key: value for key, value in record.items() if key != "rounds"})
            write_json(cur_dir / "progress.json", {"stages": done})
            adapter, replay = str(stage_dir), record["next_replay"]

        # `checkpoint`: the final adapter, what RL, eval and the benchmarks start from; the loss: what searches minimise
        curve = [point for record in done for point in record.get("curve", [])]
        metrics.update(stages=done, final_val_loss=mean([done[-1]["val_loss"][n] for n in done[-1]["data"]]),
                       final_val_accuracy=done[-1]["val_accuracy"], checkpoint=adapter,
                       malformed_rows_skipped=dict(SKIPPED), accuracy_curve=curve)
        if curve:
            plot_curve(curve, cur_dir / "accuracy_curve.png")
        if c.final_eval:  # the full eval budget on the last adapter, beside the base model's numbers
            final_evaluation(cur, model, adapter, run_dir, metrics)
        if cfg.export.merge:
            metrics["merged"] = str(export_merged(cfg.model, adapter, cur_dir / "merged"))
        publish_report(run_dir, wandb_run)
    return metrics


def run_stage(cur: Curriculum, k: int, stage: DictConfig, earlier: list[dict], adapter: str | None,
              replay: float) -> tuple[dict, object]:
    """Train stage k to its last round; returns its record and the trained model."""
    cfg, c = cur.cfg, cur.cfg.curriculum
    work = cur.cur_dir / f"stage_{k}.work"
    state = read_json(work / "rounds.json", {"rounds": []})
    if state["rounds"]:  # resume after the last finished round
        adapter = str(work / f"round_{len(state['rounds']) - 1}")
    model = load_model(cfg.model, init_from=adapter)
    earlier_names = list(dict.fromkeys(n for record in earlier for n in record["data"]))
    data = stage_data(cur, k, stage, earlier_names, work)
    if "baseline" not in state:  # per-example validation losses of every set before the stage trains
        state["baseline"] = validation_losses(model, cur.tokenizer, cfg.data, data.val_names)
        write_json(work / "rounds.json", state)
    train_rounds(cur, model, data, state, replay, sum(record["steps"] for record in earlier))

    accuracies = (validation_accuracy(model, cur.tokenizer, cfg, data.val_names, c.val_limit, c.val_max_new_tokens)
                  if c.val_limit > 0 else {})
    rounds = state["rounds"]
    last = rounds[-1]
    summary = rounds[0].get(cur.schedule.name)
    chart = cur.schedule.chart(summary, cur.cur_dir / f"stage_{k}_weights.png") if summary else None
    if chart is not None and cur.wandb_run is not None:  # a file, and an image in W&B
        import wandb

        cur.wandb_run.log({f"curriculum/stage_{k}/weights": wandb.Image(str(chart))})
    names = data.names
    record = {"stage": k, "name": stage.name, "data": names, "examples": data.stats,
              "replay_pool": data.replay_stats, "replay": replay, "steps": sum(x["steps"] for x in rounds),
              "baseline_val_loss": {n: round(mean(v), 4) for n, v in state["baseline"].items()},
              "val_loss": last["val_loss"], "val_limit": c.val_limit,
              "val_accuracy": mean([accuracies[n] for n in names]) if accuracies else None,
              "val_accuracy_per_set": {n: accuracies[n] for n in names if n in accuracies},
              "earlier_val_accuracy": {n: accuracies[n] for n in earlier_names if n in accuracies},
              "decision": last["reason"], "extensions": len(rounds) - 1, "next_replay": last["next_replay"],
              "forgotten": last["forgotten"], "adaptive": rounds[0].get("adaptive"), "rounds": rounds,
              "curve": [point for x in rounds for point in x.get("curve", [])]}
    return record, model


def stage_data(cur: Curriculum, k: int, stage: DictConfig, earlier_names: list[str], work: Path) -> StageData:
    """A stage's sets (its own, the earlier stages', and the validation sets: both), its tokenized training examples
    (what the schedule trains on of its own sets, then the replay pool of earlier stages' sets) and the step counts
    they give."""
    cfg, c, names = cur.cfg, cur.cfg.curriculum, list(stage.data)
    current, stats = tokenize(build_examples(cfg.data, names, "train", exclude=cur.dropped), cur.tokenizer,
                              cfg.data.max_length, cfg.data.overflow, keep=("difficulty", "set"))
    current, held = cur.schedule.training_examples(current, cfg.seed)
    stats = {**stats, **held}
    difficulties = current["difficulty"]
    datasets, n_replay, replay_stats = [current.remove_columns(["difficulty", "set"])], 0, None
    if earlier_names:
        pool, replay_stats = tokenize(build_examples(cfg.data, earlier_names, "train", exclude=cur.dropped),
                                      cur.tokenizer, cfg.data.max_length, cfg.data.overflow)
        datasets.append(pool)
        n_replay = len(pool)
    steps_per_epoch = math.ceil(len(difficulties) / (c.batch_size * c.grad_accum))
    return StageData(k, stage.name, work, names, earlier_names, names + [n for n in earlier_names if n not in names],
                     concatenate_datasets(datasets), difficulties, n_replay, stats, replay_stats,
                     steps=c.max_steps if c.max_steps > 0 else math.ceil(c.num_epochs * steps_per_epoch),
                     extra_budget=math.floor(c.max_extra_epochs * steps_per_epoch))


def train_rounds(cur: Curriculum, model, data: StageData, state: dict, replay: float, trained: int) -> None:
    """The main round, then (a schedule that extends) extensions while `decide` says so; each round is saved
    (adapter and rounds.json) so that a killed stage continues after its last finished round. `trained`: the run's
    steps before this stage."""
    cfg, rounds = cur.cfg, state["rounds"]
    previous = rounds[-1]["val_losses"] if rounds else state["baseline"]
    while not rounds or rounds[-1]["decision"] == "extend":
        r = len(rounds)
        train = train_round(cur, model, data, r, replay, trained + sum(x["steps"] for x in rounds))
        now = validation_losses(model, cur.tokenizer, cfg.data, data.val_names)
        decision = (judge(cur, data, state, now, previous, replay) if cur.schedule.extends
                    else Decision("advance", f"one round: curriculum.schedule={cur.schedule.name} has no extensions",
                                  replay, []))
        rejected = None
        if decision.revert:  # a round that raised the loss is undone
            restore_adapter(model, data.work / f"round_{r - 1}")
            rejected, now = now, previous
        val_loss = {n: round(mean(v), 4) for n, v in now.items()}
        rounds.append({"round": r, "kind": "extension" if r > 0 else "main", **train, "val_loss": val_loss,
                       "val_losses": now, "reverted": decision.revert,
                       "rejected_val_loss": None if rejected is None else {n: round(mean(v), 4) for n, v in rejected.items()},
                       "decision": decision.action, "reason": decision.reason,
                       "next_replay": decision.next_replay, "forgotten": decision.forgotten})
        log.info("curriculum stage %d (%s) round %d: %s: %s", data.k, data.name, r, decision.action, decision.reason)
        if cur.wandb_run is not None:
            cur.wandb_run.log({"curriculum/stage": data.k, "curriculum/val_loss": mean(own(now, data.names)),
                               "curriculum/extended": int(decision.action == "extend"), "curriculum/replay": replay,
                               **{f"curriculum/val_loss/{n}": v for n, v in val_loss.items()}})
        save_adapter(model, cur.tokenizer, data.work / f"round_{r}", cfg.model,
                     {"stage": f"curriculum/stage_{data.k}", "round": r})
        write_json(data.work / "rounds.json", state)
        previous = now


def judge(cur: Curriculum, data: StageData, state: dict, now: dict, previous: dict, replay: float) -> Decision:
    """`decide` on the validation losses of the round just trained (the next in `state["rounds"]`): advance, extend
    (within the budget), or undo an extension."""
    c, rounds, earlier = cur.cfg.curriculum, state["rounds"], data.earlier_names
    r = len(rounds)
    extending = r > 0
    spent = sum(x["steps"] for x in rounds[1:]) + (c.extend_steps if extending else 0)
    extensions_left = spent + c.extend_steps <= data.extra_budget and len(rounds) < c.max_extensions
    return decide(own(now, data.names), own(previous, data.names), extensions_left,
                  {n: now[n] for n in earlier}, {n: state["baseline"][n] for n in earlier}, replay, c,
                  extended_round=r - 1 if extending else None, earlier_previous={n: previous[n] for n in earlier})


def own(losses: dict[str, list[float]], names: list[str]) -> list[float]:
    """The per-example losses of the stage's own sets, in one paired list."""
    return [v for n in names for v in losses[n]]


def train_round(cur: Curriculum, model, data: StageData, r: int, replay: float, trained: int) -> dict:
    """Round r (0: the main round, then extensions): one trainer over its optimizer steps, drawing from the
    schedule's sampler, resumed from its newest complete checkpoint if any; the adapter saved where the schedule
    says (`saves`), and the validation accuracy curve measured (`curriculum.curve_every`; `trained`: the run's
    steps before this round)."""
    cfg, c = cur.cfg, cur.cfg.curriculum
    extending = r > 0
    steps = c.extend_steps if extending else data.steps
    learning_rate = c.learning_rate * (c.extend_lr_scale if extending else 1.0)
    seed, work = cfg.seed + 1000 * data.k + r, data.work / f"round_{r}.work"
    lengths = [len(ids) for ids in data.dataset["input_ids"]]
    batching = dict(lengths=lengths, budget=batch_token_budget(c, lengths, model), padding_free=c.padding_free)
    drawn = cur.schedule.round(data, steps, seed, replay, batching, cur.wandb_run, extending=extending)
    callbacks = list(drawn.callbacks)
    if drawn.saves:  # the schedule's boundaries: curriculum/<name>/
        names = dict(drawn.saves)
        callbacks.append(AtSteps(lambda step: save_adapter(
            model, cur.tokenizer, cur.cur_dir / names[step], cfg.model,
            {"stage": f"curriculum/{names[step]}", "step": step}), steps=names))
    curve = None
    if c.curve_every > 0:
        curve = AccuracyCurve(lambda m: validation_correct(m, cur.tokenizer, cfg, cur.sets, c.curve_limit,
                                                           c.val_max_new_tokens),
                              c.curve_every, trained, log, cur.wandb_run)
        callbacks.append(curve)
    batches = StepBatches(drawn.sampler) if batching["budget"] is not None else None
    if batches is not None:  # windows cut by tokens: the round runs the batches they make
        steps = math.ceil(len(batches) / c.grad_accum)
    trainer = OrderedSFTTrainer(
        model=model,
        args=sft_arguments(work / "trainer", c, max_steps=steps, learning_rate=learning_rate, seed=seed,
                           report_to="wandb" if cur.wandb_run is not None else "none"),
        train_dataset=data.dataset,
        processing_class=cur.tokenizer,
        sampler=None if batches else drawn.sampler,
        batches=batches,
        observe=drawn.observe,
        callbacks=callbacks + [MarkComplete()],
    )
    result, resume = train_resuming(trainer, work / "trainer")
    record = {"steps": result.global_step, "pacing": drawn.pacing, "learning_rate": learning_rate,
              "train_loss": result.training_loss, "resumed_from": str(resume or "")}
    if drawn.summary is not None:
        record[cur.schedule.name] = drawn.summary()
    if curve is not None:
        record["curve"] = curve.points
    return record


def final_evaluation(cur: Curriculum, model, adapter: str, run_dir: str, metrics: dict) -> None:
    """The full `eval` budget on the last adapter (`curriculum/final/`), beside the base model's numbers under the
    same settings (`curriculum/base/`, cached; left out with `eval.with_base=false`)."""
    cfg = cur.cfg
    if cfg.eval.with_base:
        metrics["base_eval"] = base_results(cfg, cur.tokenizer, cfg.eval, cur.cur_dir / "base")["datasets"]
    final_dir = cur.cur_dir / "final"
    if not (final_dir / EVAL_RESULTS).exists():
        model = model if model is not None else load_model(cfg.model, init_from=adapter, trainable=False)
        final = evaluate(model, cur.tokenizer, cfg, cfg.eval, f"final (stage_{len(cur.stages)})", final_dir)
        final["checkpoint"] = adapter
        record_evaluation(final, run_dir, cur.wandb_run, "curriculum/final", final_dir)
    metrics["final_eval"] = read_json(final_dir / EVAL_RESULTS, {})["datasets"]
