"""The curriculum's signals: per-example completion losses (what its decisions test) and greedy
validation accuracy on the training sets' validation splits (recorded after each stage)."""

from __future__ import annotations

import random

import torch
from omegaconf import DictConfig

from reasoning_lab.answers import extract_answer, same_answer
from reasoning_lab.data import answer_token_cap, build_examples, load_problems, tokenize
from reasoning_lab.decoding import generate
from reasoning_lab.model import inference_model
from reasoning_lab.problem import chat_prompt
from reasoning_lab.stats import rounded_mean
from reasoning_lab.timing import phase


@phase("signal")
def validation_accuracy(model, tokenizer, cfg: DictConfig, names: list[str], limit: int,
                        max_new_tokens: int | None) -> dict[str, float]:
    """Greedy strict accuracy on the validation split of each named training set (a seeded `limit`
    subset), recorded after each curriculum stage. One batched generate pass over all sets."""
    correct = validation_correct(model, tokenizer, cfg, names, limit, max_new_tokens)
    return {name: rounded_mean(values) for name, values in correct.items()}


def validation_correct(model, tokenizer, cfg: DictConfig, names: list[str], limit: int,
                       max_new_tokens: int | None) -> dict[str, list[float]]:
    """Each problem's greedy strict correctness (1.0 or 0.0) on `limit` validation problems of each named set,
    drawn by `data.seed` (the same problems for every run and training seed)."""
    problems = {}
    for name in names:
        rows = load_problems(cfg.data, name, "val")
        problems[name] = random.Random(cfg.data.seed).sample(rows, min(limit, len(rows)))
    flat = [(name, p) for name, rows in problems.items() for p in rows]
    prompts = [chat_prompt(p.question, cfg.data.system_prompt) for _, p in flat]
    budget = max_new_tokens or answer_token_cap(tokenizer, [p for _, p in flat], reason=True)
    twin = inference_model(model, cfg.model.quantization, cfg.eval.during_training.dtype,
                           cfg.eval.attn_implementation)
    outputs = generate(twin, tokenizer, prompts, budget, batch_size=cfg.eval.batch_size, progress="validation")
    correct: dict[str, list[float]] = {name: [] for name in names}
    for (name, problem), (completion,) in zip(flat, outputs):
        answer = extract_answer(completion.text, problem.kind, problem.options)
        correct[name].append(float(same_answer(answer, problem.answer, problem.kind)))
    return correct


@phase("signal")
def validation_losses(model, tokenizer, data_cfg: DictConfig, names: list[str],
                      batch_size: int = 16) -> dict[str, list[float]]:
    """Per-example completion loss (mean NLL per completion token, what SFT minimises) on the validation
    split of each named set: the curriculum's signal for its decisions. No generation, and far less
    noisy than the accuracy of a few dozen greedy answers; paired across checkpoints by example."""
    return {name: example_losses(model, tokenizer, tokenize(build_examples(data_cfg, [name], "val"), tokenizer,
                                                            data_cfg.max_length, "truncate")[0], batch_size)
            for name in names}


@phase("signal")
@torch.no_grad()
def example_losses(model, tokenizer, dataset, batch_size: int = 16) -> list[float]:
    """Mean NLL per completion token of each tokenized example (`input_ids`, `completion_mask`), in order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # batches of similar lengths (less padding), the losses returned in the dataset's order
    order = sorted(range(len(dataset)), key=lambda i: len(dataset[i]["input_ids"]))
    values = []
    for start in range(0, len(dataset), batch_size):
        rows = dataset.select(order[start : start + batch_size])[:]
        width = max(len(ids) for ids in rows["input_ids"])
        ids = torch.tensor([x + [pad] * (width - len(x)) for x in rows["input_ids"]], device=device)
        mask = torch.tensor([m + [0] * (width - len(m)) for m in rows["completion_mask"]], device=device)
        attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in rows["input_ids"]], device=device)
        # no KV cache (nothing is generated)
        logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
        values += completion_nll(logits, ids.masked_fill(mask == 0, -100)).tolist()
    model.train(was_training)
    in_order = [0.0] * len(values)
    for i, value in zip(order, values):
        in_order[i] = round(value, 5)
    return in_order


@torch.no_grad()
def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL of each label from the logits before it, and where a completion token is (`labels` as the Trainer's:
    -100 at the prompt and padding), both [rows, length - 1]. The log-softmax only at those positions."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    target = labels != -100
    nll = torch.zeros(target.shape, device=logits.device)
    nll[target] = torch.nn.functional.cross_entropy(logits[target].float(), labels[target], reduction="none")
    return nll, target


def completion_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL per completion token of each row."""
    nll, target = token_nll(logits, labels)
    return nll.sum(1) / target.sum(1).clamp(min=1)
