"""Evaluation: greedy and self-consistency accuracy per dataset, with the reason-or-answer rates.

For each evaluation source (`eval.datasets`): the test split (a seeded `eval.limit` subset), asked with
the reasoning system prompt greedily and with k samples; a subset (`eval.direct_limit`) is also asked
without the prompt. Per dataset:
- accuracy: greedy, strict extraction (reasoning_lab.answers); accuracy_lenient: last candidate anywhere
- maj@k: majority vote over the k sampled canonical answers (reasoning_lab.decoding.majority_vote)
- pass@1, pass@k: the unbiased estimator of Chen et al. (2021) from the k samples
- format_rate: greedy answers with a complete <think>...</think> followed by an answer
- think_rate_with_prompt, think_rate_without_prompt, direct_rate (no <think> without the prompt)
- mean_completion_tokens, cap_rate (share stopped by max_new_tokens), ci95 (bootstrap of accuracy)
Every completion is kept in `predictions/<dataset>.jsonl`, so each number can be audited.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from reasoning_lab.answers import extract_answer, final_region, same_answer
from reasoning_lab.config import ReasoningLabError
from reasoning_lab.data import Problem, source_rows
from reasoning_lab.decoding import generate, majority_vote, pass_at_k
from reasoning_lab.tracking import is_main_process

log = logging.getLogger(__name__)

OPTION = re.compile(r"([A-E])\)(.*?)(?=\s[A-E]\)|$)")


def options_of(problem: Problem) -> list[str] | None:
    """AQuA-style options ("A)12", ...) from a choice question's `Options:` line."""
    if problem.kind != "choice" or "Options:" not in problem.question:
        return None
    line = problem.question.rsplit("Options:", 1)[1]
    return [f"{letter}){text.strip()}" for letter, text in OPTION.findall(line)]


def well_formed(text: str) -> bool:
    """A complete `<think>...</think>` block, once, followed by a non-empty answer."""
    region = final_region(text)
    return text.count("<think>") == 1 and text.count("</think>") == 1 and text.index("<think>") < text.index(
        "</think>") and bool(region and region.strip())


def bootstrap_ci(values: list[float], samples: int, seed: int) -> list[float]:
    """95% percentile bootstrap interval of the mean, resampling problems."""
    if not values:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def evaluate_problems(model, tokenizer, problems: list[Problem], budget: DictConfig, system_prompt: str,
                      seed: int) -> tuple[dict, list[dict]]:
    """Metrics and per-problem predictions for one evaluation set."""
    k = budget.k
    with_prompt = [[{"role": "system", "content": system_prompt}, {"role": "user", "content": p.question}]
                   for p in problems]
    greedy = generate(model, tokenizer, with_prompt, budget.max_new_tokens, batch_size=budget.batch_size)
    sampled = generate(model, tokenizer, with_prompt, budget.max_new_tokens, k=k, do_sample=True,
                       temperature=budget.temperature, top_p=budget.top_p, batch_size=budget.batch_size)
    direct_problems = problems[: budget.direct_limit]
    direct = generate(model, tokenizer, [[{"role": "user", "content": p.question}] for p in direct_problems],
                      min(budget.max_new_tokens, budget.direct_max_new_tokens), batch_size=budget.batch_size)

    predictions, strict, lenient, majority, pass1, passk, formatted = [], [], [], [], [], [], []
    for i, (problem, (g,), samples) in enumerate(zip(problems, greedy, sampled)):
        options = options_of(problem)
        answer = extract_answer(g.text, problem.kind, options)
        answer_lenient = extract_answer(g.text, problem.kind, options, lenient=True)
        sample_answers = [extract_answer(s.text, problem.kind, options) for s in samples]
        vote = majority_vote(sample_answers)
        correct = [same_answer(a, problem.answer, problem.kind) for a in sample_answers]
        strict.append(float(same_answer(answer, problem.answer, problem.kind)))
        lenient.append(float(same_answer(answer_lenient, problem.answer, problem.kind)))
        majority.append(float(same_answer(vote, problem.answer, problem.kind)))
        pass1.append(pass_at_k(k, sum(correct), 1))
        passk.append(pass_at_k(k, sum(correct), k))
        formatted.append(float(well_formed(g.text)))
        row = {"id": i, "question": problem.question, "gold": problem.answer, "kind": problem.kind,
               "greedy": g.text, "greedy_tokens": g.tokens, "greedy_hit_cap": g.hit_cap, "extracted": answer,
               "extracted_lenient": answer_lenient, "correct": bool(strict[-1]),
               "samples": [{"completion": s.text, "answer": a, "correct": c, "tokens": s.tokens}
                           for s, a, c in zip(samples, sample_answers, correct)],
               "vote": vote, "vote_correct": bool(majority[-1])}
        if i < len(direct):
            row["direct"] = direct[i][0].text
        predictions.append(row)

    all_completions = [g for (g,) in greedy] + [s for group in sampled for s in group]
    direct_think = [float("<think>" in d.text) for (d,) in direct]
    metrics = {
        "n": len(problems),
        "accuracy": mean(strict),
        "accuracy_lenient": mean(lenient),
        f"maj@{k}": mean(majority),
        "pass@1": mean(pass1),
        f"pass@{k}": mean(passk),
        "format_rate": mean(formatted),
        "think_rate_with_prompt": mean([float("<think>" in g.text) for (g,) in greedy]),
        "think_rate_without_prompt": mean(direct_think),
        "direct_rate": mean([1.0 - t for t in direct_think]),
        "direct_n": len(direct),
        "mean_completion_tokens": mean([c.tokens for c in all_completions]),
        "cap_rate": mean([float(c.hit_cap) for c in all_completions]),
        "ci95": bootstrap_ci(strict, budget.bootstrap_samples, seed),
    }
    return metrics, predictions


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def eval_problems(cfg: DictConfig, source: str, limit: int | None) -> list[Problem]:
    problems = source_rows(source, "test", cfg.data)
    if limit is not None and limit < len(problems):
        problems = random.Random(cfg.data.seed).sample(problems, limit)
    return problems


def evaluate(model, tokenizer, cfg: DictConfig, budget: DictConfig, label: str, out_dir: Path | None = None,
             datasets: list[str] | None = None) -> dict:
    """Evaluate a model in memory on `datasets` (default: eval.datasets) under `budget` (the `eval` config
    or its `during_training` part). Writes `<out_dir>/predictions/<set>.jsonl` when out_dir is given.
    Sets that cannot be loaded (a benchmark without data.root or hub) are listed under "skipped"."""
    results = {"label": label, "datasets": {}, "skipped": {},
               "decoding": {"k": budget.k, "temperature": budget.temperature, "top_p": budget.top_p,
                            "max_new_tokens": budget.max_new_tokens, "limit": budget.limit,
                            "direct_limit": budget.direct_limit, "system_prompt": cfg.data.system_prompt}}
    began = time.perf_counter()
    for source in datasets if datasets is not None else cfg.eval.datasets:
        try:
            problems = eval_problems(cfg, source, budget.limit)
        except ReasoningLabError as error:
            results["skipped"][source] = str(error)
            log.warning("evaluation skips %s: %s", source, error)
            continue
        metrics, predictions = evaluate_problems(model, tokenizer, problems, budget, cfg.data.system_prompt,
                                                 cfg.seed)
        results["datasets"][source] = metrics
        log.info("[%s] %s: accuracy %.3f, maj@%d %.3f, format %.2f (n=%d)", label, source, metrics["accuracy"],
                 budget.k, metrics[f"maj@{budget.k}"], metrics["format_rate"], metrics["n"])
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


def validation_accuracy(model, tokenizer, cfg: DictConfig, names: list[str], limit: int,
                        max_new_tokens: int) -> dict[str, float]:
    """Greedy strict accuracy on the validation split of each named training set (a seeded `limit`
    subset): the curriculum's signal for advancing. One batched generate pass over all sets."""
    from reasoning_lab.data import load_problems

    problems = {}
    for name in names:
        rows = load_problems(cfg.data, name, "val")
        problems[name] = random.Random(cfg.data.seed).sample(rows, min(limit, len(rows)))
    flat = [(name, p) for name, rows in problems.items() for p in rows]
    prompts = [[{"role": "system", "content": cfg.data.system_prompt}, {"role": "user", "content": p.question}]
               for _, p in flat]
    outputs = generate(model, tokenizer, prompts, max_new_tokens, batch_size=cfg.eval.batch_size)
    correct: dict[str, list[float]] = {name: [] for name in names}
    for (name, problem), (completion,) in zip(flat, outputs):
        answer = extract_answer(completion.text, problem.kind, options_of(problem))
        correct[name].append(float(same_answer(answer, problem.answer, problem.kind)))
    return {name: mean(values) for name, values in correct.items()}


def log_to_wandb(run, results: dict, prefix: str) -> None:
    """Per-dataset metrics under `<prefix>/<dataset>/<metric>` and a table of sample predictions."""
    if run is None:
        return
    import wandb

    flat = {f"{prefix}/{name}/{key}": value for name, metrics in results["datasets"].items()
            for key, value in metrics.items() if isinstance(value, (int, float))}
    columns = ["dataset", "question", "completion", "extracted", "gold", "correct"]
    rows = [[name, r["question"], r["greedy"], str(r["extracted"]), r["gold"], r["correct"]]
            for name, examples in results.get("examples", {}).items() for r in examples]
    run.log({**flat, f"{prefix}/predictions": wandb.Table(columns=columns, data=rows)})
    run.summary.update(flat)
