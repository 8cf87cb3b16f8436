"""RL stage: GRPO, RLOO (TRL) or PPO with a value head (reasoning_lab.ppo) on verifiable rewards.

Recipe: start from the curriculum's final adapter (checkpoint.init_from, else the one this run's or the newest
curriculum run's `curriculum/metrics.json` names) -> prompts from the training sets of `rl.prompt_sets`, with
the gold answer as a column -> evaluate (before) -> train `rl.max_steps` steps with the rewards named in
`rl.rewards` (reasoning_lab.rewards), prompts drawn by `rl.prompt_sampling` (uniform, AdaRFT's adaptive
difficulty, or learnability from each prompt's running pass rate; reasoning_lab.prompt_selection), a held-out
evaluation every `rl.eval_every` steps -> save `rl/checkpoint` (adapter, plus `value_head.safetensors`
for PPO) -> evaluate (after) on the same problems -> their paired comparison (`rl/compare/`: accuracy
difference, bootstrap interval, McNemar p) -> `rl/metrics.json`, `rl/eval_results.json`, report.md, W&B.
Resume: every `rl.save_steps` the training state is saved (TRL's checkpoints under `rl/trainer/`, PPO's in
`rl/ppo_state/`); re-running the same hydra.run.dir continues from the newest complete one (weights,
optimizer, random states, prompt order: the prompt sampler replays what it observed), the "before" evaluation
is read back, and a finished stage is not trained again. The rollouts: `rl/rollouts.jsonl` and W&B `rl/rollouts`
every `rl.log_rollouts_every` steps (reasoning_lab.rollouts).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed
from trl import GRPOConfig, RLOOConfig

from reasoning_lab.callbacks import AtSteps, MarkComplete
from reasoning_lab.checkpoints import (
    check_checkpoint,
    final_adapter,
    save_adapter,
    train_resuming,
    training_record,
)
from reasoning_lab.compare import compare_runs, write_outputs
from reasoning_lab.config import OWN
from reasoning_lab.data import load_problems
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.evaluation import evaluate, record_evaluation
from reasoning_lab.files import write_json, write_text
from reasoning_lab.model import load_model, load_tokenizer
from reasoning_lab.ppo import PPO
from reasoning_lab.ppo import train as ppo_train
from reasoning_lab.problem import chat_prompt
from reasoning_lab.prompt_selection import (
    AdaptiveDifficulty,
    CorrectnessObserver,
    Learnability,
    PromptSampler,
)
from reasoning_lab.report import EVAL_RESULTS, publish_report, reward_markdown
from reasoning_lab.rewards import reward_functions, reward_table
from reasoning_lab.rollouts import ROLLOUTS, RolloutLog
from reasoning_lab.tracking import finished_stage, stage_run
from reasoning_lab.trl_trainers import GRPO, RLOO, GenerationTimer, PromptFeedback

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str) -> dict:
    finished = finished_stage(run_dir, "rl")
    if finished:
        log.info("RL stage in %s already finished; skipping", run_dir)
        return finished
    r = cfg.rl
    with stage_run(cfg, run_dir, "rl") as (stage_dir, metrics, wandb_run):
        # set-up: the policy to start from, the prompts, the "before" evaluation, the rewards
        set_seed(cfg.seed)
        start = starting_checkpoint(cfg, run_dir)
        tokenizer = load_tokenizer(cfg.model)
        model = load_model(cfg.model, init_from=start)
        rows = prompt_rows(cfg)
        metrics.update(algorithm=r.algorithm, init_from=start, prompts=len(rows),
                       settings=OmegaConf.to_container(r, resolve=True))
        timer = GenerationTimer(model)  # generation time of training steps, evaluations apart
        held_out = HeldOut(cfg, model, tokenizer, run_dir, wandb_run, metrics, timer)
        metrics["before"] = evaluate_before(held_out, stage_dir / "before", metrics)["datasets"]
        sampler = prompt_sampler(cfg, rows)
        rewards = [CorrectnessObserver(f, sampler) if f.__name__ == "correctness" else f
                   for f in reward_functions([spec.name for spec in r.rewards], r.max_completion_length,
                                             end_ids(model, tokenizer))]

        # train
        timer.excluded_seconds = 0.0
        began = time.perf_counter()
        if r.algorithm == "ppo":
            ppo = PPO(model, tokenizer, rewards, [spec.weight for spec in r.rewards], r, seed=cfg.seed)
            history = ppo_train(ppo, rows, sampler, stage_dir / "ppo_state", held_out, wandb_run,
                                RolloutLog(r.log_rollouts_every, stage_dir / ROLLOUTS, wandb_run))
            policy, also = model, ppo.save_value_head
        else:
            history, policy = train_trl(cfg, model, tokenizer, Prompts(rows, rewards, sampler), held_out, stage_dir)
            also = None
        metrics["train"] = train_summary(history, time.perf_counter() - began, timer, sampler)

        # finish: save the policy, evaluate it on the same problems, compare, tabulate the rewards
        for name in [n for n in policy.peft_config if n != "default"]:
            policy.delete_adapter(name)  # the frozen reference copy is not part of the checkpoint
        metrics["checkpoint"] = str(save_adapter(
            policy, tokenizer, stage_dir / "checkpoint", cfg.model,
            {"stage": "rl", "algorithm": r.algorithm,
             "trained_on": training_record(start, cfg.data, sorted({row["set"] for row in rows}))}, also=also))
        metrics["after"] = held_out(r.max_steps, "rl", stage_dir)["datasets"]
        finish(r, stage_dir, run_dir, wandb_run, metrics, history)
    return metrics


def starting_checkpoint(cfg: DictConfig, run_dir: str) -> str | None:
    """checkpoint.init_from, else the final adapter of this run's curriculum, else that of the newest finished
    curriculum run of the same model under `paths.log_dir`, else None (fresh adapters on the base model, said in the
    log)."""
    if cfg.checkpoint.init_from:
        return cfg.checkpoint.init_from
    own = final_adapter(run_dir, "curriculum")
    if own is not None:
        return str(check_checkpoint(own, cfg.model))
    logs = Path(cfg.paths.log_dir)
    found = final_adapter(logs, "curriculum", model=cfg.model.name) if logs.exists() else None
    if found:
        return str(found)
    log.warning("no curriculum checkpoint of model=%s found (pass checkpoint.init_from=<adapter dir>): RL starts from "
                "fresh adapters", cfg.model.name)
    return None


def prompt_rows(cfg: DictConfig) -> list[dict]:
    """One row per training problem of `rl.prompt_sets`."""
    names = list(cfg.rl.prompt_sets)
    problems = [(name, p) for name in names for p in load_problems(cfg.data, name, "train")]
    rows = [{"prompt": chat_prompt(p.question, cfg.data.system_prompt), "answer": p.answer, "kind": p.kind,
             "options": p.options, "difficulty": p.difficulty, "set": name, "prompt_id": i}
            for i, (name, p) in enumerate(problems)]
    if len(rows) < cfg.rl.prompts_per_step:
        raise ReasoningLabError(f"rl.prompt_sets={names} hold {len(rows)} training problems, fewer than "
                                f"rl.prompts_per_step={cfg.rl.prompts_per_step}; add sets or lower rl.prompts_per_step")
    return rows


def prompt_sampler(cfg: DictConfig, rows: list[dict]) -> PromptSampler:
    """The prompts' order (`rl.prompt_sampling`): TRL's group order over a seeded shuffle, AdaRFT or learnability."""
    r = cfg.rl
    selector = None
    if r.prompt_sampling == "adarft":
        selector = AdaptiveDifficulty([row["difficulty"] for row in rows], r.adarft.start_difficulty, r.adarft.eta,
                                      r.adarft.sensitivity, r.adarft.target_pass_rate, cfg.seed)
    elif r.prompt_sampling == "learnability":
        selector = Learnability([f"{row['set']}/{row['difficulty']}" for row in rows], r.learnability.prior, cfg.seed)
    repeat = r.num_iterations * (r.steps_per_generation if r.algorithm != "ppo" else 1)  # TRL's repeat_count
    return PromptSampler(len(rows), r.prompts_per_step, r.num_generations, repeat, cfg.seed, selector)


def end_ids(model, tokenizer) -> tuple[int, ...]:
    """Every token id that ends a completion (the tokenizer's end of sequence and the model's)."""
    eos = model.generation_config.eos_token_id
    return tuple(sorted({tokenizer.eos_token_id, *([eos] if isinstance(eos, int) else eos or [])}))


@dataclass
class HeldOut:
    """The held-out evaluations (their time kept apart from training's), recorded as a curve over the steps and in
    `metrics["eval_history"]`, every one with the reasoning prompt only. Between RL steps: greedy, on
    `eval.during_training.limit` problems a set (cheap). Before and after RL (those given an `out_dir`): greedy on
    `rl.eval_limit` problems a set, the same problems both times (paired), and `rl.final_k` samples a problem where
    asked (maj@k, pass@k and the sampled answers' own accuracy beside greedy)."""

    cfg: DictConfig
    model: object
    tokenizer: object
    run_dir: str
    wandb_run: object
    metrics: dict
    timer: GenerationTimer

    def __call__(self, step: int, label: str, out_dir: Path | None = None) -> dict:
        cfg = self.cfg
        eval_sets = held_out_sets(cfg.rl, cfg.data)
        budget = OmegaConf.merge(cfg.eval.during_training, {"k": 0, "direct_limit": 0} if out_dir is None else
                                 {"k": cfg.rl.final_k, "limit": cfg.rl.eval_limit, "direct_limit": 0})
        with self.timer.excluded():
            results = evaluate(self.model, self.tokenizer, cfg, budget, label, out_dir, eval_sets)
        # a curve per metric over the steps
        record_evaluation(results, self.run_dir, self.wandb_run, "rl/heldout", out_dir, step)
        self.metrics.setdefault("eval_history", []).append({"step": step, "datasets": results["datasets"]})
        return results

    def at_step(self, step: int) -> dict:
        return self(step, f"rl/step_{step}")


def held_out_sets(rl_cfg: DictConfig, data_cfg: DictConfig) -> list[str]:
    """`rl.eval_sets`, else the test problems of what RL trains on: the source of each of `rl.prompt_sets` (a set of
    your own by its name), each once."""
    if rl_cfg.eval_sets is not None:
        return list(rl_cfg.eval_sets)
    sources = [name if data_cfg.sets[name].source in OWN else data_cfg.sets[name].source for name in rl_cfg.prompt_sets]
    return list(dict.fromkeys(sources))


def evaluate_before(held_out, before_dir: Path, metrics: dict) -> dict:
    """The starting policy's held-out evaluation; a resumed run reads it back instead of evaluating again."""
    saved = before_dir / EVAL_RESULTS
    if not saved.exists():
        return held_out(0, "rl/before", before_dir)
    before = json.loads(saved.read_text())
    metrics.setdefault("eval_history", []).append({"step": 0, "datasets": before["datasets"]})
    return before


@dataclass
class Prompts:
    """What RL trains on: the prompt rows, the reward functions that score their completions, and the sampler that
    draws them (fed the correctness reward's verdicts by a CorrectnessObserver)."""

    rows: list[dict]
    rewards: list
    sampler: PromptSampler


def train_trl(cfg: DictConfig, model, tokenizer, prompts: Prompts, held_out: HeldOut,
              stage_dir: Path) -> tuple[list[dict], object]:
    """GRPO or RLOO with TRL, resumed from the newest complete trainer checkpoint; returns the logged steps and
    the trained policy."""
    callbacks = [AtSteps(held_out.at_step, every=cfg.rl.eval_every), PromptFeedback(prompts.sampler), MarkComplete(),
                 RolloutLog(cfg.rl.log_rollouts_every, stage_dir / ROLLOUTS, held_out.wandb_run)]
    args = trl_arguments(cfg, stage_dir, "wandb" if held_out.wandb_run is not None else "none")
    trainer = trl_trainer(cfg, model, tokenizer, prompts, args, callbacks)
    train_resuming(trainer, stage_dir / "trainer")
    return [h for h in trainer.state.log_history if "reward" in h], trainer.model


def trl_arguments(cfg: DictConfig, stage_dir: Path, report_to: str):
    """TRL's GRPOConfig or RLOOConfig from `rl` (completions per step: prompts x num_generations)."""
    r = cfg.rl
    common = dict(
        output_dir=str(stage_dir / "trainer"), max_steps=r.max_steps,
        # completions per optimizer step: a generation's, split into steps_per_generation minibatches
        per_device_train_batch_size=r.prompts_per_step * r.num_generations // r.steps_per_generation,
        steps_per_generation=r.steps_per_generation, gradient_accumulation_steps=1, num_generations=r.num_generations,
        max_completion_length=r.max_completion_length, learning_rate=r.learning_rate, beta=r.beta,
        temperature=r.temperature, top_p=r.top_p, epsilon=r.epsilon, epsilon_high=r.epsilon_high,
        num_iterations=r.num_iterations,
        reward_weights=[spec.weight for spec in r.rewards], logging_steps=1,
        save_strategy="steps" if r.save_steps else "no", save_steps=r.save_steps or 500, save_total_limit=2,
        report_to=report_to, seed=cfg.seed, use_vllm=r.use_vllm, disable_dropout=True,
        use_transformers_continuous_batching=r.continuous_batching,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    if r.algorithm == "grpo":
        return GRPOConfig(**common, loss_type=r.grpo.loss_type, scale_rewards=r.grpo.scale_rewards)
    return RLOOConfig(**common, normalize_advantages=r.rloo.normalize_advantages)


def trl_trainer(cfg: DictConfig, model, tokenizer, prompts: Prompts, args, callbacks: list):
    """Our GRPO or RLOO (reasoning_lab.trl_trainers) over the prompts, in the sampler's order; a RolloutLog among
    the callbacks gets the scored completions."""
    r = cfg.rl
    trainer_class = GRPO if r.algorithm == "grpo" else RLOO
    return trainer_class(model=model, reward_funcs=prompts.rewards, args=args,
                         train_dataset=Dataset.from_list(prompts.rows), processing_class=tokenizer,
                         callbacks=callbacks, prompt_sampler=prompts.sampler, drop_uniform_groups=r.drop_uniform_groups,
                         uniform_by=r.uniform_by,
                         rollout_log=next((c for c in callbacks if isinstance(c, RolloutLog)), None),
                         dynamic_sampling=r.dynamic_sampling.enable,
                         max_refill_rounds=r.dynamic_sampling.max_refill_rounds)


def train_summary(history: list[dict], seconds: float, timer, sampler: PromptSampler) -> dict:
    """The training part of metrics.json: the logged steps, time spent generating, the reward's first and last."""
    train_seconds = seconds - timer.excluded_seconds
    summary = {
        "steps": len(history), "history": history, "train_seconds": round(train_seconds, 1),
        "eval_seconds_during_training": round(timer.excluded_seconds, 1),
        "generate_seconds": round(timer.seconds, 1), "generate_share": round(timer.seconds / train_seconds, 3),
        "reward_first": history[0]["reward"] if history else None,
        "reward_last": history[-1]["reward"] if history else None,
    }
    if sampler.selector is not None:
        sampler.catch_up()  # the last step's answers came after the last prompts were drawn
        summary["prompt_sampling"] = sampler.selector.history
    return summary


def finish(r: DictConfig, stage_dir: Path, run_dir: str, wandb_run, metrics: dict, history: list[dict]) -> None:
    """Curves, the paired comparison of before and after (the same problems), the reward table, report.md."""
    write_json(stage_dir / "curves.json", {"algorithm": r.algorithm, "history": history,
                                           "heldout": metrics["eval_history"]})  # report.png's RL panels
    if metrics["before"]:
        comparison = compare_runs([stage_dir / "before", stage_dir])
        write_outputs(comparison, stage_dir / "compare")
        metrics["compare"] = comparison["comparisons"]
        if wandb_run is not None:
            wandb_run.summary.update({f"rl/compare/{c['dataset']}/{key}": c[key] for c in comparison["comparisons"]
                                      for key in ("accuracy_a", "accuracy_b", "delta", "p_value")})
        log.info("held-out accuracy before and after RL, paired:\n%s",
                 (stage_dir / "compare" / "compare.md").read_text())
    else:
        log.info("no held-out sets (rl.eval_sets=[]): no before/after comparison")
    metrics["reward_table"] = reward_table(evaluated_completions(stage_dir / "predictions"),
                                           {spec.name: spec.weight for spec in r.rewards})
    write_text(stage_dir / "rewards.md", reward_markdown(metrics["reward_table"]))
    publish_report(run_dir, wandb_run)
    log.info("rl (%s) done: reward %s -> %s in %d steps, adapter in %s", r.algorithm, metrics["train"]["reward_first"],
             metrics["train"]["reward_last"], len(history), metrics["checkpoint"])


def evaluated_completions(predictions: Path) -> list[dict]:
    """Every greedy and sampled completion of an evaluation's predictions, as `reward_table` reads them."""
    completions = []
    for file in sorted(predictions.glob("*.jsonl")):
        for row in map(json.loads, file.read_text().splitlines()):
            common = {"gold": row["gold"], "kind": row["kind"], "options": row.get("options")}
            completions.append({"text": row["greedy"], "cut_off": row["greedy_hit_cap"], **common})
            completions += [{"text": s["completion"], "cut_off": s.get("hit_cap"), **common} for s in row["samples"]]
    return completions
