"""Evaluation: greedy and self-consistency accuracy per dataset, with the reason-or-answer rates.

For each evaluation source (`eval.datasets`): the test split (a seeded `eval.limit` subset), asked with
the reasoning system prompt greedily and with k samples, and (the first `eval.direct_limit`, null: all)
without the prompt. Token budgets come from the data when not set: the 99th percentile of the set's own
reference completions, tokenized, plus a quarter (`reasoning_lab.data.answer_token_cap`). Generation runs on a merged copy of
the model in `eval.dtype` (bfloat16 uses the CPU's bf16 matrix units: about 2x float32). Per dataset:
- accuracy: greedy, strict extraction (reasoning_lab.answers); accuracy_lenient: last candidate anywhere
- maj@k: majority vote over the k sampled canonical answers (reasoning_lab.decoding.majority_vote); wmaj@k: each
  sample's vote weighted by its confidence (`decoding.confidence`); both are reported, and `eval.vote` names the
  one that answers in `stage=answer` and decides when `eval.adaptive_k` stops sampling
- pass@1, pass@k: the unbiased estimator of Chen et al. (2021) from the k samples
  (k=0: greedy only; no samples are drawn and these are left out). With `eval.adaptive_k` a problem is sampled
  only until its vote is settled (`sample_paths`): pass@1 from the samples it has, pass@k left out, and
  mean_samples reported
- format_rate: greedy answers with a complete <think>...</think> followed by an answer
- think_rate_with_prompt
- without the reasoning prompt, on the same problems (left out when eval.direct_limit is 0): accuracy_direct
  (greedy strict accuracy), think_rate_without_prompt, direct_rate (no <think>)
- mean_completion_tokens, cap_rate (share stopped by max_new_tokens), ci95 (bootstrap of accuracy), and a
  Wilson 95% interval for every rate (`intervals`)
The base model's numbers under the same settings are computed once per model and settings and cached
(`base_results`), so every report has "before" beside "after".
Every completion is kept in `predictions/<dataset>.jsonl`, so each number can be audited.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from reasoning_lab.answers import (
    extract_answer,
    final_region,
    majority_vote,
    same_answer,
    settled,
    weighted_vote,
)
from reasoning_lab.data import answer_token_cap, source_rows
from reasoning_lab.decoding import confidence, generate, pass_at_k
from reasoning_lab.distributed import is_main_process
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.files import write_json
from reasoning_lab.model import cache_dir, dtype_name, inference_model, load_base_model
from reasoning_lab.problem import Problem, chat_prompt
from reasoning_lab.report import EVAL_RESULTS, publish_report
from reasoning_lab.stats import bootstrap_ci, rounded_mean, wilson
from reasoning_lab.timing import phase
from reasoning_lab.tracking import log_evaluation

log = logging.getLogger(__name__)

# part of the base model's cache key: raise it when generation, scoring or the generated data change what an
# evaluation returns (2: generation stops at the end of the answer line; 3: waiting prompts join running batches,
# which changes some bfloat16 greedy completions as a different batch size would; 4: the slot cache, whose rows
# carry no padding, which changes some bfloat16 greedy completions likewise)
EVALUATION_VERSION = 4


def well_formed(text: str) -> bool:
    """A complete `<think>...</think>` block, once, followed by a non-empty answer."""
    region = final_region(text)
    return text.count("<think>") == 1 and text.count("</think>") == 1 and text.index("<think>") < text.index(
        "</think>") and bool(region and region.strip())


def evaluate_problems(model, tokenizer, problems: list[Problem], budget: DictConfig, system_prompt: str,
                      seed: int, name: str = "") -> tuple[dict, list[dict]]:
    """Metrics and per-problem predictions for one evaluation set."""
    return evaluate_sets(model, tokenizer, {name: problems}, budget, system_prompt, seed)[name]


def evaluate_sets(model, tokenizer, sets: dict[str, list[Problem]], budget: DictConfig, system_prompt: str,
                  seed: int, label: str = "") -> dict[str, tuple[dict, list[dict]]]:
    """Metrics and predictions per set. All sets share three generate passes (greedy, k samples, without the
    prompt), each completion cut at its own set's budget: a few long batches instead of many short ones."""
    k = budget.k
    max_new = {n: budget.max_new_tokens or answer_token_cap(tokenizer, ps, reason=True) for n, ps in sets.items()}
    direct_max_new = {n: budget.direct_max_new_tokens or answer_token_cap(tokenizer, ps, reason=False)
                      for n, ps in sets.items()}
    flat = [(n, p) for n, ps in sets.items() for p in ps]
    direct_flat = [(n, p) for n, ps in sets.items()
                   for p in (ps if budget.direct_limit is None else ps[: budget.direct_limit])]
    with_prompt = [chat_prompt(p.question, system_prompt) for _, p in flat]
    budgets = [max_new[n] for n, _ in flat]
    greedy = generate(model, tokenizer, with_prompt, budgets, batch_size=budget.batch_size,
                      progress=f"{label} greedy")
    sampled = sample_paths(model, tokenizer, with_prompt, budgets, [p for _, p in flat], budget,
                           label) if k else [[] for _ in flat]
    direct = generate(model, tokenizer, [chat_prompt(p.question, None) for _, p in direct_flat],
                      [direct_max_new[n] for n, _ in direct_flat], batch_size=budget.batch_size,
                      progress=f"{label} without the prompt")
    results = {}
    for name, problems in sets.items():
        mine = [i for i, (n, _) in enumerate(flat) if n == name]
        mine_direct = [i for i, (n, _) in enumerate(direct_flat) if n == name]
        results[name] = score(problems, [greedy[i] for i in mine], [sampled[i] for i in mine],
                              [direct_flat[i][1] for i in mine_direct], [direct[i] for i in mine_direct], budget,
                              seed, max_new[name], direct_max_new[name])
    return results


def sample_paths(model, tokenizer, prompts: list[list[dict]], budgets: list[int], problems: list[Problem],
                 budget: DictConfig, label: str) -> list[list]:
    """`budget.k` sampled completions a prompt; with `budget.adaptive_k`, a majority's worth (k // 2 + 1) first,
    then one more at a time for the prompts whose vote (`budget.vote`) is not yet `settled`."""
    k, weight = budget.k, confidence if budget.vote == "confidence" else (lambda completion: 1.0)
    sampling = dict(do_sample=True, temperature=budget.temperature, top_p=budget.top_p, batch_size=budget.batch_size)
    first = min(k, k // 2 + 1) if budget.adaptive_k else k
    paths = generate(model, tokenizer, prompts, budgets, k=first, progress=f"{label} {first} samples each", **sampling)

    def unsettled(i: int) -> bool:
        answers = [extract_answer(c.text, problems[i].kind, problems[i].options) for c in paths[i]]
        return len(paths[i]) < k and not settled(answers, [weight(c) for c in paths[i]], k - len(paths[i]))

    while waiting := [i for i in range(len(prompts)) if unsettled(i)]:
        more = generate(model, tokenizer, [prompts[i] for i in waiting], [budgets[i] for i in waiting],
                        progress=f"{label} one more sample for {len(waiting)} unsettled", **sampling)
        for i, (completion,) in zip(waiting, more):
            paths[i].append(completion)
    return paths


def score(problems: list[Problem], greedy, sampled, direct_problems: list[Problem], direct, budget: DictConfig,
          seed: int, max_new: int, direct_max_new: int) -> tuple[dict, list[dict]]:
    """The metrics and per-problem predictions of one set from its completions."""
    k = budget.k
    direct_correct = [float(same_answer(extract_answer(d.text, p.kind, p.options), p.answer, p.kind))
                      for p, (d,) in zip(direct_problems, direct)]

    predictions, strict, lenient, majority, weighted, pass1, passk, formatted = [], [], [], [], [], [], [], []
    for i, (problem, (g,), samples) in enumerate(zip(problems, greedy, sampled)):
        options = problem.options
        answer = extract_answer(g.text, problem.kind, options)
        answer_lenient = extract_answer(g.text, problem.kind, options, lenient=True)
        sample_answers = [extract_answer(s.text, problem.kind, options) for s in samples]
        votes = {"majority": majority_vote(sample_answers),
                 "confidence": weighted_vote(sample_answers, [confidence(s) for s in samples])}
        correct = [same_answer(a, problem.answer, problem.kind) for a in sample_answers]
        strict.append(float(same_answer(answer, problem.answer, problem.kind)))
        lenient.append(float(same_answer(answer_lenient, problem.answer, problem.kind)))
        majority.append(float(same_answer(votes["majority"], problem.answer, problem.kind)))
        weighted.append(float(same_answer(votes["confidence"], problem.answer, problem.kind)))
        if k:
            pass1.append(pass_at_k(len(samples), sum(correct), 1))
            if not budget.adaptive_k:
                passk.append(pass_at_k(k, sum(correct), k))
        formatted.append(float(well_formed(g.text)))
        row = {"id": i, "question": problem.question, "gold": problem.answer, "kind": problem.kind,
               "greedy": g.text, "greedy_tokens": g.tokens, "greedy_hit_cap": g.hit_cap, "extracted": answer,
               "extracted_lenient": answer_lenient, "correct": bool(strict[-1]),
               "samples": [{"completion": s.text, "answer": a, "correct": c, "tokens": s.tokens, "hit_cap": s.hit_cap,
                            "logprob": None if s.logprob is None else round(s.logprob, 5)}
                           for s, a, c in zip(samples, sample_answers, correct)],
               "vote": votes["majority"], "vote_correct": bool(majority[-1]) if k else None,
               "weighted_vote": votes["confidence"],
               "weighted_vote_correct": bool(weighted[-1]) if k else None}
        if options:
            row["options"] = options
        if i < len(direct):
            row["direct"] = direct[i][0].text
            row["direct_correct"] = bool(direct_correct[i])
        predictions.append(row)

    all_completions = [g for (g,) in greedy] + [s for group in sampled for s in group]
    direct_think = [float("<think>" in d.text) for (d,) in direct]
    n = len(problems)
    metrics = {
        "n": len(problems),
        "accuracy": rounded_mean(strict),
        "accuracy_lenient": rounded_mean(lenient),
        **({f"maj@{k}": rounded_mean(majority), f"wmaj@{k}": rounded_mean(weighted), "pass@1": rounded_mean(pass1),
            **({f"pass@{k}": rounded_mean(passk)} if passk else {}),
            "mean_samples": rounded_mean([len(s) for s in sampled])} if k else {}),
        "format_rate": rounded_mean(formatted),
        "think_rate_with_prompt": rounded_mean([float("<think>" in g.text) for (g,) in greedy]),
        "direct_n": len(direct),
        # without the reasoning prompt: only when some problems were asked that way (eval.direct_limit > 0)
        **({"accuracy_direct": rounded_mean(direct_correct), "think_rate_without_prompt": rounded_mean(direct_think),
            "direct_rate": rounded_mean([1.0 - t for t in direct_think])} if direct else {}),
        "mean_completion_tokens": rounded_mean([c.tokens for c in all_completions]),
        "cap_rate": rounded_mean([float(c.hit_cap) for c in all_completions]),
        "max_new_tokens": max_new,
        "direct_max_new_tokens": direct_max_new,
        "ci95": bootstrap_ci(strict, budget.bootstrap_samples, seed),
    }
    counts = {"accuracy": (sum(strict), n), **({f"maj@{k}": (sum(majority), n), f"wmaj@{k}": (sum(weighted), n)}
                                               if k else {}),
              "format_rate": (sum(formatted), n),
              **({"accuracy_direct": (sum(direct_correct), len(direct)),
                  "think_rate_without_prompt": (sum(direct_think), len(direct))} if direct else {}),
              "cap_rate": (sum(float(c.hit_cap) for c in all_completions), len(all_completions))}
    metrics["intervals"] = {key: wilson(x, m) for key, (x, m) in counts.items()}
    return metrics, predictions


def eval_problems(data_cfg: DictConfig, source: str, limit: int | None) -> list[Problem]:
    """A seeded `limit` subset of a source's test problems (all of them without a limit)."""
    problems = source_rows(source, "test", data_cfg)
    if limit is not None and limit < len(problems):
        problems = random.Random(data_cfg.seed).sample(problems, limit)
    return problems


def choose_temperature(model, tokenizer, sets: dict[str, list[Problem]], budget: DictConfig, auto: DictConfig,
                       system_prompt: str, label: str = "") -> dict:
    """`eval.temperature=auto`: on `sets` (validation problems, never the test ones), greedy and `auto.samples`
    samples a problem at each temperature of `auto.grid`, each set at its own token budget; the highest temperature
    whose samples' own accuracy (pooled over the sets) is at least `auto.min_ratio` x greedy's (the lowest of the grid
    if none). Returns the choice with every number."""
    problems = [p for ps in sets.values() for p in ps]
    prompts = [chat_prompt(p.question, system_prompt) for p in problems]
    budgets = [budget.max_new_tokens or answer_token_cap(tokenizer, ps, reason=True) for ps in sets.values() for _ in ps]

    def accuracy(completions: list[list]) -> float:
        right = [same_answer(extract_answer(c.text, p.kind, p.options), p.answer, p.kind)
                 for p, group in zip(problems, completions) for c in group]
        return sum(right) / len(right)

    greedy = accuracy(generate(model, tokenizer, prompts, budgets, batch_size=budget.batch_size,
                               progress=f"{label} temperature choice, greedy"))
    grid = {float(t): round(accuracy(generate(model, tokenizer, prompts, budgets, k=auto.samples, do_sample=True,
                                              temperature=float(t), top_p=budget.top_p, batch_size=budget.batch_size,
                                              progress=f"{label} temperature choice, T={t}")), 4)
            for t in sorted(auto.grid)}
    passing = [t for t, samples in grid.items() if samples >= auto.min_ratio * greedy]
    chosen = max(passing) if passing else min(grid)
    log.info("[%s] temperature %s chosen on %d validation problems: greedy %.3f, samples %s", label, chosen,
             len(problems), greedy, grid)
    return {"chosen": chosen, "greedy_accuracy": round(greedy, 4), "samples_accuracy": grid, "n": len(problems),
            "samples": auto.samples, "min_ratio": auto.min_ratio,
            "rule": "the highest temperature whose samples' own accuracy is at least min_ratio x greedy's"}


def validation_problems(data_cfg: DictConfig, sources: list[str], limit: int) -> dict[str, list[Problem]]:
    """A seeded `limit` subset of each source's validation problems (sources without one are left out)."""
    problems = {}
    for source in sources:
        try:
            rows = source_rows(source, "val", data_cfg)
        except ReasoningLabError:
            continue
        if rows:
            problems[source] = random.Random(data_cfg.seed).sample(rows, min(limit, len(rows)))
    return problems


@phase("evaluation")
def evaluate(model, tokenizer, cfg: DictConfig, budget: DictConfig, label: str, out_dir: Path | None = None,
             datasets: list[str] | None = None) -> dict:
    """Evaluate a model in memory on `datasets` (default: eval.datasets) under `budget` (the `eval` config
    or its `during_training` part). Writes `<out_dir>/predictions/<set>.jsonl` when out_dir is given.
    Sets that cannot be loaded (a benchmark without data.root or hub) are listed under "skipped"."""
    results = {"label": label, "datasets": {}, "skipped": {},
               "decoding": {"k": budget.k, "temperature": budget.temperature, "top_p": budget.top_p,
                            "max_new_tokens": budget.max_new_tokens or "from the data", "limit": budget.limit,
                            "direct_limit": budget.direct_limit, "dtype": dtype_name(budget.dtype),
                            "system_prompt": cfg.data.system_prompt}}
    began = time.perf_counter()
    model = inference_model(model, cfg.model.quantization, budget.dtype, cfg.eval.attn_implementation)
    sets = {}
    for source in datasets if datasets is not None else cfg.eval.datasets:
        try:
            sets[source] = eval_problems(cfg.data, source, budget.limit)
        except ReasoningLabError as error:
            results["skipped"][source] = str(error)
            log.warning("evaluation skips %s: %s", source, error)
    log.info("[%s] evaluating %s", label, ", ".join(f"{name} ({len(ps)} problems)" for name, ps in sets.items()))
    with torch.random.fork_rng():  # its own seeded samples; a training run's random stream is left as it was
        torch.manual_seed(cfg.seed)
        if budget.k and budget.temperature == "auto":  # chosen for this checkpoint on validation problems
            choice = choose_temperature(model, tokenizer, validation_problems(cfg.data, list(sets),
                                                                              cfg.eval.auto_temperature.limit),
                                        budget, cfg.eval.auto_temperature, cfg.data.system_prompt, f"[{label}]")
            budget = OmegaConf.merge(OmegaConf.to_container(budget, resolve=True), {"temperature": choice["chosen"]})
            results["temperature_choice"] = choice
            results["decoding"]["temperature"] = choice["chosen"]
        evaluated = evaluate_sets(model, tokenizer, sets, budget, cfg.data.system_prompt, cfg.seed, f"[{label}]")
    for source, (metrics, predictions) in evaluated.items():
        results["datasets"][source] = metrics
        voted = f", maj@{budget.k} {metrics[f'maj@{budget.k}']:.3f}" if budget.k else ""
        direct = f", direct {metrics['accuracy_direct']:.3f}" if "accuracy_direct" in metrics else ""
        log.info("[%s] %s (n=%d): accuracy %.3f %s%s%s, format %.2f, cap rate %.3f", label, source, metrics["n"],
                 metrics["accuracy"], metrics["intervals"]["accuracy"], voted, direct, metrics["format_rate"],
                 metrics["cap_rate"])
        if out_dir is not None and is_main_process():
            path = Path(out_dir) / "predictions" / f"{source}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(row) + "\n" for row in predictions))
        results.setdefault("examples", {})[source] = predictions[:4]
        for row in predictions[:2]:
            log.info("[%s] %s %r -> %r%s", label, source, row["question"][-70:], row["greedy"],
                     f" | without the prompt: {row['direct']!r}" if "direct" in row else "")
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    results["finished"] = time.time()
    return results


def base_cache_key(cfg: DictConfig, budget: DictConfig, datasets: list[str] | None = None) -> str:
    """The base model's cache entry: the settings its evaluation reads (not which adapter is evaluated beside it)
    and the problems themselves (question, reasoning, answer of each evaluated problem), so that a change to a
    generator or a data file is a new entry, not a stale "before"."""
    names = list(cfg.eval.datasets if datasets is None else datasets)
    problems = {}
    for source in names:
        try:
            problems[source] = [dataclasses.astuple(p) for p in eval_problems(cfg.data, source, budget.limit)]
        except ReasoningLabError as error:  # skipped by the evaluation too, and said so there
            problems[source] = str(error)
    settings = {"model": {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "lora"},
                "data": OmegaConf.to_container(cfg.data, resolve=True), "datasets": names,
                "budget": {k: v for k, v in OmegaConf.to_container(budget, resolve=True).items()
                           if k not in ("checkpoint", "with_base", "during_training")}, "seed": cfg.seed,
                "evaluation": EVALUATION_VERSION, "problems": problems}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@phase("evaluation")
def base_results(cfg: DictConfig, tokenizer, budget: DictConfig, out_dir: Path,
                 datasets: list[str] | None = None) -> dict:
    """The base model's evaluation under `budget`, computed once per model, data and settings (cached under
    $REASONING_LAB_CACHE/base_eval/) and written with its predictions to `<out_dir>`, so that every report
    shows "before" beside "after" and `python -m reasoning_lab.compare` can pair them problem by problem."""
    if not cfg.eval.base_samples:  # greedy and without the prompt, on the same problems and budgets
        budget = OmegaConf.merge(OmegaConf.to_container(budget, resolve=True), {"k": 0})
    cached = cache_dir() / "base_eval" / f"{cfg.model.name}-{base_cache_key(cfg, budget, datasets)}"
    if (cached / EVAL_RESULTS).exists():
        log.info("base model results under these settings: %s (cached)", cached)
    else:
        log.info("evaluating the base model %s under the same settings (once; cached in %s)", cfg.model.name, cached)
        results = evaluate(load_base_model(cfg.model), tokenizer, cfg, budget, "base", cached, datasets)
        results.pop("examples", None)
        write_json(cached / EVAL_RESULTS, results)  # written last: its presence marks a complete entry
    results = json.loads((cached / EVAL_RESULTS).read_text())
    results.update(label="base", finished=0, checkpoint="base")
    if (cached / "predictions").exists():
        shutil.copytree(cached / "predictions", Path(out_dir) / "predictions", dirs_exist_ok=True)
    write_json(Path(out_dir) / EVAL_RESULTS, results)
    return results


def record_evaluation(results: dict, run_dir: str | Path, wandb_run, prefix: str, out_dir: Path | None = None,
                      step: int | None = None) -> None:
    """Where every stage's evaluation goes: `<out_dir>/eval_results.json` (the file report.md collects), its
    metrics to W&B under `prefix` (at training step `step`), and, with a file written, report.md / report.png
    rewritten (and logged). Without `out_dir` (RL's evaluations between steps) only the W&B curves."""
    if out_dir is not None:
        write_json(Path(out_dir) / EVAL_RESULTS, results)
    log_evaluation(wandb_run, results, prefix, step)
    if out_dir is not None:
        publish_report(run_dir, wandb_run)