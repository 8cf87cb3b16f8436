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
is read back, and a finished stage is not trained again.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from datasets import Dataset
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
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
from reasoning_lab.data import load_problems
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.evaluation import evaluate, record_evaluation
from reasoning_lab.files import build_once, read_json, stop_if_asked, write_json, write_text
from reasoning_lab.model import load_model, load_tokenizer
from reasoning_lab.ppo import PPO
from reasoning_lab.problem import chat_prompt
from reasoning_lab.prompt_selection import AdaptiveDifficulty, Learnability, PromptSampler, step_numbers
from reasoning_lab.report import EVAL_RESULTS, publish_report, reward_markdown
from reasoning_lab.rewards import reward_functions, reward_table
from reasoning_lab.tracking import finished_stage, stage_run
from reasoning_lab.trl_trainers import GRPO, RLOO, GenerationTimer, PromptFeedback

log = logging.getLogger(__name__)
# PPO's training state, for resuming: tensors in safetensors, the rest (history, step count, RNG states) in JSON
PPO_TENSORS, PPO_STATE = "state.safetensors", "state.json"


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
        held_out = held_out_evaluation(cfg, model, tokenizer, run_dir, wandb_run, metrics, timer)
        metrics["before"] = evaluate_before(held_out, stage_dir / "before", metrics)["datasets"]
        sampler = prompt_sampler(cfg, rows)
        rewards = observed(reward_functions([spec.name for spec in r.rewards], r.max_completion_length,
                                            end_ids(model, tokenizer)), sampler)

        # train
        timer.excluded_seconds = 0.0
        began = time.perf_counter()
        if r.algorithm == "ppo":
            history, ppo = train_ppo(cfg, model, tokenizer, rows, rewards, sampler, wandb_run, held_out,
                                     stage_dir / "ppo_state")
            policy, also = model, ppo.save_value_head
        else:
            history, policy = train_trl(cfg, model, tokenizer, rows, rewards, sampler, wandb_run, held_out, stage_dir)
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
    if len(rows) < cfg.rl.batch_size:
        raise ReasoningLabError(f"rl.prompt_sets={names} hold {len(rows)} training problems, fewer than "
                                f"rl.batch_size={cfg.rl.batch_size}; add sets or lower rl.batch_size")
    return rows


def prompt_sampler(cfg: DictConfig, rows: list[dict]) -> PromptSampler:
    """The prompts' order (`rl.prompt_sampling`): TRL's group order over a seeded shuffle, AdaRFT or learnability."""
    r = cfg.rl
    selector = None
    if r.prompt_sampling == "adarft":
        selector = AdaptiveDifficulty([row["difficulty"] for row in rows], r.adarft.target, r.adarft.eta,
                                      r.adarft.alpha, r.adarft.reward, cfg.seed)
    elif r.prompt_sampling == "learnability":
        selector = Learnability([f"{row['set']}/{row['difficulty']}" for row in rows], r.learnability.prior, cfg.seed)
    return PromptSampler(len(rows), r.batch_size, r.num_generations, r.num_iterations, cfg.seed, selector)


def observed(rewards: list, sampler: PromptSampler) -> list:
    """The reward functions, the correctness one also telling the prompt sampler which prompts were answered right
    (what AdaRFT and learnability follow, and what each step logs as the sampled prompts' pass rate)."""

    def watch(func):
        def correctness(prompts=None, completions=(), prompt_id=None, **kwargs):
            values = func(prompts=prompts, completions=completions, **kwargs)
            if prompt_id is not None:
                sampler.observe(list(prompt_id), [float(v) for v in values])
            return values

        correctness.__name__ = func.__name__
        return correctness

    return [watch(f) if f.__name__ == "correctness" else f for f in rewards]


def end_ids(model, tokenizer) -> tuple[int, ...]:
    """Every token id that ends a completion (the tokenizer's end of sequence and the model's)."""
    eos = model.generation_config.eos_token_id
    return tuple(sorted({tokenizer.eos_token_id, *([eos] if isinstance(eos, int) else eos or [])}))


def held_out_evaluation(cfg: DictConfig, model, tokenizer, run_dir: str, wandb_run, metrics: dict, timer):
    """`held_out(step, label, out_dir=None)`: the held-out evaluation between RL steps (its time kept apart from
    training's), recorded as a curve over the steps and in `metrics["eval_history"]`. The evaluations before and
    after RL (those given an `out_dir`) also draw `rl.final_k` samples a problem: maj@k, pass@k and the sampled
    answers' own accuracy (pass@1) beside greedy, on the same problems."""
    eval_sets = list(cfg.eval.datasets if cfg.rl.eval_sets is None else cfg.rl.eval_sets)
    final = OmegaConf.merge(cfg.eval.during_training, {"k": cfg.rl.final_k})

    def held_out(step: int, label: str, out_dir: Path | None = None) -> dict:
        with timer.excluded():
            results = evaluate(model, tokenizer, cfg, final if out_dir is not None else cfg.eval.during_training,
                               label, out_dir, eval_sets)
        record_evaluation(results, run_dir, wandb_run, "rl/heldout", out_dir, step)  # a curve per metric over the steps
        metrics.setdefault("eval_history", []).append({"step": step, "datasets": results["datasets"]})
        return results

    return held_out


def evaluate_before(held_out, before_dir: Path, metrics: dict) -> dict:
    """The starting policy's held-out evaluation; a resumed run reads it back instead of evaluating again."""
    saved = before_dir / EVAL_RESULTS
    if not saved.exists():
        return held_out(0, "rl/before", before_dir)
    before = json.loads(saved.read_text())
    metrics.setdefault("eval_history", []).append({"step": 0, "datasets": before["datasets"]})
    return before


def train_trl(cfg: DictConfig, model, tokenizer, rows: list[dict], rewards, sampler: PromptSampler, wandb_run,
              held_out, stage_dir: Path) -> tuple[list[dict], object]:
    """GRPO or RLOO with TRL, resumed from the newest complete trainer checkpoint; returns the logged steps and
    the trained policy."""
    r = cfg.rl
    callbacks = [AtSteps(r.eval_every, lambda step, m: held_out(step, f"rl/step_{step}")), PromptFeedback(sampler)]
    trainer = trl_trainer(cfg, model, tokenizer, rows, rewards, sampler, stage_dir,
                          "wandb" if wandb_run is not None else "none", callbacks + [MarkComplete()])
    train_resuming(trainer, stage_dir / "trainer")
    return [h for h in trainer.state.log_history if "reward" in h], trainer.model


def trl_trainer(cfg: DictConfig, model, tokenizer, rows: list[dict], rewards, sampler, stage_dir: Path,
                report_to: str, callbacks: list):
    r = cfg.rl
    common = dict(
        output_dir=str(stage_dir / "trainer"), max_steps=r.max_steps,
        per_device_train_batch_size=r.batch_size * r.num_generations,  # completions per step
        gradient_accumulation_steps=1, num_generations=r.num_generations,
        max_completion_length=r.max_completion_length, learning_rate=r.learning_rate, beta=r.beta,
        temperature=r.temperature, top_p=r.top_p, epsilon=r.epsilon, num_iterations=r.num_iterations,
        reward_weights=[spec.weight for spec in r.rewards], logging_steps=1,
        save_strategy="steps" if r.save_steps else "no", save_steps=r.save_steps or 500, save_total_limit=2,
        report_to=report_to, seed=cfg.seed, use_vllm=r.use_vllm, disable_dropout=True,
        use_transformers_continuous_batching=r.continuous_batching,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    if r.algorithm == "grpo":
        args = GRPOConfig(**common, loss_type=r.grpo.loss_type, scale_rewards=r.grpo.scale_rewards)
        trainer_class = GRPO
    else:
        args, trainer_class = RLOOConfig(**common, normalize_advantages=r.rloo.normalize_advantages), RLOO
    return trainer_class(model=model, reward_funcs=rewards, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, callbacks=callbacks, prompt_sampler=sampler,
                         drop_uniform_groups=r.drop_uniform_groups, dynamic_sampling=r.dynamic_sampling.enable,
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


def prompt_batches(rows: list[dict], sampler: PromptSampler):
    """Endless batches of prompt rows: another pass of the sampler each time one is spent."""
    while True:
        for chunk in sampler.chunks():
            yield [rows[i] for i in chunk]


def train_ppo(cfg: DictConfig, model, tokenizer, rows: list[dict], rewards, sampler: PromptSampler, wandb_run,
              held_out, state_dir: Path) -> tuple[list[dict], PPO]:
    """PPO steps; every `rl.save_steps` the whole training state goes to `state_dir` (atomically), and a
    killed run continues from there: same weights, optimizer, random states and prompt order."""
    r = cfg.rl
    ppo = PPO(model, tokenizer, rewards, [spec.weight for spec in r.rewards], r, seed=cfg.seed)
    history = load_ppo_state(ppo, state_dir, sampler)
    batches = prompt_batches(rows, sampler)
    for _ in history:  # the prompt batches those steps used
        next(batches)
    if history:
        log.info("resuming PPO at step %d from %s", len(history) + 1, state_dir)
    for step in range(len(history) + 1, r.max_steps + 1):
        seen = len(sampler.observations)
        logs = ppo.step(next(batches))
        if len(sampler.observations) > seen:
            logs.update(step_numbers(sampler.observations[seen:]))
        history.append(logs)
        log.info("ppo step %d: reward %.3f, kl %.4f (coef %.3f), ratio max %.2f, clipfrac %.2f, value loss %.4f, "
                 "explained variance %.2f, %d minibatches%s", step, logs["reward"], logs["kl"], logs["kl_coef"],
                 logs["ratio_max"], logs["clipfrac"], logs["value_loss"], logs["explained_variance"],
                 logs["minibatches"], " (stopped: KL bound)" if logs["stopped_early"] else "")
        if wandb_run is not None:
            wandb_run.log({f"train/{k}": v for k, v in logs.items()})
        if r.eval_every and step % r.eval_every == 0 and step < r.max_steps:
            held_out(step, f"rl/step_{step}")
        if r.save_steps and step % r.save_steps == 0 and step < r.max_steps:
            build_once(state_dir, lambda out: save_ppo_state(ppo, history, sampler, out), replace=True)
            stop_if_asked(state_dir / f"step-{step}")
    return history, ppo


def save_ppo_state(ppo: PPO, history: list[dict], sampler: PromptSampler, out: Path) -> None:
    """PPO's training state as safetensors (every tensor) and JSON (everything else, the prompt sampler's
    observations too): no pickle in a run directory."""
    tensors, rest = ppo.state_tensors()
    save_file(tensors, str(out / PPO_TENSORS))
    write_json(out / PPO_STATE, {**rest, "history": history, "prompt_sampler": sampler.state()})


def load_ppo_state(ppo: PPO, state_dir: Path, sampler: PromptSampler) -> list[dict]:
    """Put a saved training state back into `ppo` and `sampler`; returns the steps it had logged ([] when there is
    none)."""
    if not (state_dir / PPO_STATE).exists():
        return []
    rest = read_json(state_dir / PPO_STATE, {})
    ppo.load_state_tensors(load_file(str(state_dir / PPO_TENSORS)), rest)
    sampler.load(rest.get("prompt_sampler", []))
    return rest["history"]
