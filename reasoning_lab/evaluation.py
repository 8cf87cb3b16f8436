"""Evaluation: greedy and self-consistency accuracy per dataset, with the reason-or-answer rates.

For each evaluation source (`eval.datasets`): the test split (a seeded `eval.limit` subset), asked with
the reasoning system prompt greedily and with k samples, and (the first `eval.direct_limit`, null: all)
without the prompt. Token budgets come from the data when not set: the 99th percentile of the set's own
reference completions, tokenized, plus a quarter (`token_budget`). Generation runs on a merged copy of
the model in `eval.dtype` (bfloat16 uses the CPU's bf16 matrix units: about 2x float32). Per dataset:
- accuracy: greedy, strict extraction (reasoning_lab.answers); accuracy_lenient: last candidate anywhere
- maj@k: majority vote over the k sampled canonical answers (reasoning_lab.decoding.majority_vote)
- pass@1, pass@k: the unbiased estimator of Chen et al. (2021) from the k samples
  (k=0: greedy only; no samples are drawn and these three are left out)
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

import copy
import dataclasses
import hashlib
import json
import logging
import math
import random
import re
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from reasoning_lab.answers import extract_answer, final_region, same_answer
from reasoning_lab.checkpoints import record, write_json
from reasoning_lab.data import (
    build_examples,
    contamination_report,
    format_example,
    load_problems,
    source_rows,
    tokenize,
)
from reasoning_lab.decoding import generate, majority_vote, pass_at_k
from reasoning_lab.distributed import is_main_process
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.model import cache_dir, load_base_model
from reasoning_lab.problem import Problem
from reasoning_lab.report import EVAL_RESULTS, publish_report
from reasoning_lab.stats import bootstrap_ci, wilson

log = logging.getLogger(__name__)

# part of the base model's cache key: raise it when generation, scoring or the generated data change what an
# evaluation returns (2: generation stops at the end of the answer line)
EVALUATION_VERSION = 2

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


def token_budget(tokenizer, problems: list[Problem], reason: bool, floor: int = 16) -> int:
    """A generation budget from the set's own reference completions: the 99th percentile of their token
    counts (end of turn included) plus a quarter, rounded up to a multiple of 8, at least `floor`. A model
    that answers like the references then stops well before the cap."""
    lengths = sorted(len(tokenizer(format_example(p, reason, "")["completion"][0]["content"],
                                   add_special_tokens=False)["input_ids"]) + 1 for p in problems)
    p99 = lengths[min(len(lengths) - 1, math.ceil(0.99 * len(lengths)) - 1)] if lengths else floor
    return max(floor, 8 * math.ceil(p99 * 1.25 / 8))


def evaluate_problems(model, tokenizer, problems: list[Problem], budget: DictConfig, system_prompt: str,
                      seed: int, name: str = "") -> tuple[dict, list[dict]]:
    """Metrics and per-problem predictions for one evaluation set."""
    return evaluate_sets(model, tokenizer, {name: problems}, budget, system_prompt, seed)[name]


def evaluate_sets(model, tokenizer, sets: dict[str, list[Problem]], budget: DictConfig, system_prompt: str,
                  seed: int, label: str = "") -> dict[str, tuple[dict, list[dict]]]:
    """Metrics and predictions per set. All sets share three generate passes (greedy, k samples, without the
    prompt), each completion cut at its own set's budget: a few long batches instead of many short ones."""
    k = budget.k
    max_new = {n: budget.max_new_tokens or token_budget(tokenizer, ps, reason=True) for n, ps in sets.items()}
    direct_max_new = {n: budget.direct_max_new_tokens or token_budget(tokenizer, ps, reason=False)
                      for n, ps in sets.items()}
    flat = [(n, p) for n, ps in sets.items() for p in ps]
    direct_flat = [(n, p) for n, ps in sets.items()
                   for p in (ps if budget.direct_limit is None else ps[: budget.direct_limit])]
    with_prompt = [[{"role": "system", "content": system_prompt}, {"role": "user", "content": p.question}]
                   for _, p in flat]
    budgets = [max_new[n] for n, _ in flat]
    greedy = generate(model, tokenizer, with_prompt, budgets, batch_size=budget.batch_size,
                      progress=f"{label} greedy")
    sampled = generate(model, tokenizer, with_prompt, budgets, k=k, do_sample=True,
                       temperature=budget.temperature, top_p=budget.top_p, batch_size=budget.batch_size,
                       progress=f"{label} {k} samples each") if k else [[] for _ in flat]
    direct = generate(model, tokenizer, [[{"role": "user", "content": p.question}] for _, p in direct_flat],
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


def score(problems: list[Problem], greedy, sampled, direct_problems: list[Problem], direct, budget: DictConfig,
          seed: int, max_new: int, direct_max_new: int) -> tuple[dict, list[dict]]:
    """The metrics and per-problem predictions of one set from its completions."""
    k = budget.k
    direct_correct = [float(same_answer(extract_answer(d.text, p.kind, options_of(p)), p.answer, p.kind))
                      for p, (d,) in zip(direct_problems, direct)]

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
        if k:
            pass1.append(pass_at_k(k, sum(correct), 1))
            passk.append(pass_at_k(k, sum(correct), k))
        formatted.append(float(well_formed(g.text)))
        row = {"id": i, "question": problem.question, "gold": problem.answer, "kind": problem.kind,
               "greedy": g.text, "greedy_tokens": g.tokens, "greedy_hit_cap": g.hit_cap, "extracted": answer,
               "extracted_lenient": answer_lenient, "correct": bool(strict[-1]),
               "samples": [{"completion": s.text, "answer": a, "correct": c, "tokens": s.tokens, "hit_cap": s.hit_cap}
                           for s, a, c in zip(samples, sample_answers, correct)],
               "vote": vote, "vote_correct": bool(majority[-1]) if k else None}
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
        "accuracy": mean(strict),
        "accuracy_lenient": mean(lenient),
        **({f"maj@{k}": mean(majority), "pass@1": mean(pass1), f"pass@{k}": mean(passk)} if k else {}),
        "format_rate": mean(formatted),
        "think_rate_with_prompt": mean([float("<think>" in g.text) for (g,) in greedy]),
        "direct_n": len(direct),
        # without the reasoning prompt: only when some problems were asked that way (eval.direct_limit > 0)
        **({"accuracy_direct": mean(direct_correct), "think_rate_without_prompt": mean(direct_think),
            "direct_rate": mean([1.0 - t for t in direct_think])} if direct else {}),
        "mean_completion_tokens": mean([c.tokens for c in all_completions]),
        "cap_rate": mean([float(c.hit_cap) for c in all_completions]),
        "max_new_tokens": max_new,
        "direct_max_new_tokens": direct_max_new,
        "ci95": bootstrap_ci(strict, budget.bootstrap_samples, seed),
    }
    counts = {"accuracy": (sum(strict), n), **({f"maj@{k}": (sum(majority), n)} if k else {}),
              "format_rate": (sum(formatted), n),
              **({"accuracy_direct": (sum(direct_correct), len(direct)),
                  "think_rate_without_prompt": (sum(direct_think), len(direct))} if direct else {}),
              "cap_rate": (sum(float(c.hit_cap) for c in all_completions), len(all_completions))}
    metrics["intervals"] = {key: wilson(x, m) for key, (x, m) in counts.items()}
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
                            "max_new_tokens": budget.max_new_tokens or "from the data", "limit": budget.limit,
                            "direct_limit": budget.direct_limit, "dtype": budget.dtype,
                            "system_prompt": cfg.data.system_prompt}}
    began = time.perf_counter()
    model = inference_model(model, cfg.model.quantization, budget.dtype, cfg.eval.attn_implementation)
    sets = {}
    for source in datasets if datasets is not None else cfg.eval.datasets:
        try:
            sets[source] = eval_problems(cfg, source, budget.limit)
        except ReasoningLabError as error:
            results["skipped"][source] = str(error)
            log.warning("evaluation skips %s: %s", source, error)
    log.info("[%s] evaluating %s", label, ", ".join(f"{name} ({len(ps)} problems)" for name, ps in sets.items()))
    with torch.random.fork_rng():  # its own seeded samples; a training run's random stream is left as it was
        torch.manual_seed(cfg.seed)
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


def inference_model(model, quantization: str, dtype: str, attn_implementation: str = "sdpa"):
    """The model to generate with: the LoRA weights merged into a copy, cast to `dtype`, with `attn_implementation`
    (the training model is left as it is). A quantized base is used as it is (its weights cannot be merged
    exactly); so is a bare model already in `dtype`, which then takes `attn_implementation`."""
    from peft import PeftModel

    target = getattr(torch, dtype)
    if quantization != "none":
        return model
    if isinstance(model, PeftModel) or model.dtype != target:
        model = copy.deepcopy(model)
        if isinstance(model, PeftModel):
            model = model.merge_and_unload()
        # TRL's trainers replace the trained model's forward with a wrapper whose closure holds the original
        # model's bound forward; copied, it would still run the training model (adapters unmerged, its attention):
        # 2x slower generation. The copy gets its class's forward back.
        model.__dict__.pop("forward", None)
        model = model.to(target).eval()
    model.set_attn_implementation(attn_implementation)
    return model


def base_cache_key(cfg: DictConfig, budget: DictConfig, datasets: list[str] | None = None) -> str:
    """The base model's cache entry: the settings its evaluation reads (not which adapter is evaluated beside it)
    and the problems themselves (question, reasoning, answer of each evaluated problem), so that a change to a
    generator or a data file is a new entry, not a stale "before"."""
    names = list(cfg.eval.datasets if datasets is None else datasets)
    problems = {}
    for source in names:
        try:
            problems[source] = [dataclasses.astuple(p) for p in eval_problems(cfg, source, budget.limit)]
        except ReasoningLabError as error:  # skipped by the evaluation too, and said so there
            problems[source] = str(error)
    settings = {"model": {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "lora"},
                "data": OmegaConf.to_container(cfg.data, resolve=True), "datasets": names,
                "budget": {k: v for k, v in OmegaConf.to_container(budget, resolve=True).items()
                           if k not in ("checkpoint", "with_base", "during_training")}, "seed": cfg.seed,
                "evaluation": EVALUATION_VERSION, "problems": problems}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def held_out_check(cfg: DictConfig, checkpoint: Path) -> list[dict]:
    """The contamination guard between this evaluation's sets (drawn with this run's data settings) and
    what the checkpoint records it was trained on (`trained_on`, with the data settings of each stage).
    Overlap above `data.contamination.max_share` stops the evaluation unless data.allow_contamination=true."""
    info = record(checkpoint)
    if "trained_on" not in info:
        log.warning("%s records no training data: the held-out check is skipped", checkpoint)
        return []
    reports = []
    for entry in info["trained_on"]:
        trained = OmegaConf.create(entry["data"])  # its contamination.action as trained: `drop` left those rows out
        trained.allow_contamination = cfg.data.allow_contamination  # the evaluation decides what it tolerates
        try:
            report = contamination_report(trained, entry["sets"], list(cfg.eval.datasets), cfg.data)
        except ReasoningLabError as error:
            raise ReasoningLabError(f"{checkpoint} was trained on problems this evaluation would test ({error}); "
                                    "evaluate on other sets, or set data.allow_contamination=true to report anyway") from None
        report.pop("dropped_questions", None)
        reports.append({"sets": entry["sets"], **report})
    return reports


def validation_accuracy(model, tokenizer, cfg: DictConfig, names: list[str], limit: int,
                        max_new_tokens: int | None) -> dict[str, float]:
    """Greedy strict accuracy on the validation split of each named training set (a seeded `limit`
    subset), recorded after each curriculum stage. One batched generate pass over all sets."""
    problems = {}
    for name in names:
        rows = load_problems(cfg.data, name, "val")
        problems[name] = random.Random(cfg.data.seed).sample(rows, min(limit, len(rows)))
    flat = [(name, p) for name, rows in problems.items() for p in rows]
    prompts = [[{"role": "system", "content": cfg.data.system_prompt}, {"role": "user", "content": p.question}]
               for _, p in flat]
    budget = max_new_tokens or token_budget(tokenizer, [p for _, p in flat], reason=True)
    twin = inference_model(model, cfg.model.quantization, cfg.eval.during_training.dtype,
                           cfg.eval.attn_implementation)
    outputs = generate(twin, tokenizer, prompts, budget, batch_size=cfg.eval.batch_size, progress="validation")
    correct: dict[str, list[float]] = {name: [] for name in names}
    for (name, problem), (completion,) in zip(flat, outputs):
        answer = extract_answer(completion.text, problem.kind, options_of(problem))
        correct[name].append(float(same_answer(answer, problem.answer, problem.kind)))
    return {name: mean(values) for name, values in correct.items()}


@torch.no_grad()
def validation_losses(model, tokenizer, cfg: DictConfig, names: list[str], batch_size: int = 16) -> dict[str, list[float]]:
    """Per-example completion loss (mean NLL per completion token, what SFT minimises) on the validation
    split of each named set: the curriculum's signal for its decisions. No generation, and far less
    noisy than the accuracy of a few dozen greedy answers; paired across checkpoints by example."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = {}
    for name in names:
        dataset, _ = tokenize(build_examples(cfg.data, [name], "val"), tokenizer, cfg.data.max_length, "truncate")
        values = []
        for start in range(0, len(dataset), batch_size):
            rows = dataset[start : start + batch_size]
            width = max(len(ids) for ids in rows["input_ids"])
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            ids = torch.tensor([x + [pad] * (width - len(x)) for x in rows["input_ids"]], device=device)
            mask = torch.tensor([m + [0] * (width - len(m)) for m in rows["completion_mask"]], device=device)
            attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in rows["input_ids"]], device=device)
            logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
            target = mask[:, 1:].float()
            values += ((nll * target).sum(1) / target.sum(1).clamp(min=1)).tolist()
        losses[name] = [round(v, 5) for v in values]
    model.train(was_training)
    return losses


def record_evaluation(results: dict, run_dir: str | Path, wandb_run, prefix: str, out_dir: Path | None = None,
                      step: int | None = None) -> None:
    """Where every stage's evaluation goes: `<out_dir>/eval_results.json` (the file report.md collects), its
    metrics to W&B under `prefix` (at training step `step`), and, with a file written, report.md / report.png
    rewritten (and logged). Without `out_dir` (RL's evaluations between steps) only the W&B curves."""
    if out_dir is not None:
        write_json(Path(out_dir) / EVAL_RESULTS, results)
    log_to_wandb(wandb_run, results, prefix, step)
    if out_dir is not None:
        publish_report(run_dir, wandb_run)


def log_to_wandb(run, results: dict, prefix: str, step: int | None = None) -> None:
    """Per-dataset metrics under `<prefix>/<dataset>/<metric>` and a table of sample predictions; `step`: the
    training step they belong to (logged as `train/global_step`, the x axis of TRL's curves)."""
    if run is None:
        return
    import wandb

    flat = {f"{prefix}/{name}/{key}": value for name, metrics in results["datasets"].items()
            for key, value in metrics.items() if isinstance(value, (int, float))}
    columns = ["dataset", "question", "completion", "extracted", "gold", "correct"]
    rows = [[name, r["question"], r["greedy"], str(r["extracted"]), r["gold"], r["correct"]]
            for name, examples in results.get("examples", {}).items() for r in examples]
    run.log({**flat, f"{prefix}/predictions": wandb.Table(columns=columns, data=rows),
             **({"train/global_step": step} if step is not None else {})})
    run.summary.update(flat)
