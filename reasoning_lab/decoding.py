"""Decoding: batched generation from chat prompts.

Prompts are encoded once, sorted by token budget and length, and left-padded into batches. For `k` samples per prompt
the prompt is run through the model once and its KV cache repeated k times (transformers' generate
would otherwise run every prompt k times: 1.4x faster sampling on the CPU). Generation stops at the
end-of-turn token, at the end of the answer line (the first line with text after `</think>`: the answer the
format asks for is complete, and whatever follows is never read), or at `max_new_tokens`; each completion
records whether it hit that cap. Every `ROUND_STEPS` steps the rows that ended leave the batch (`generate_rows`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from reasoning_lab.answers import extract_answer
from reasoning_lab.problem import chat_prompt

log = logging.getLogger(__name__)


@dataclass
class Completion:
    text: str
    tokens: int
    # stopped by max_new_tokens rather than by the end-of-turn token
    hit_cap: bool


def left_pad(sequences: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> left-padded `input_ids` and `attention_mask` (batch x longest)."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


def nucleus(scores: torch.Tensor, temperature: float, top_p: float, candidates: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's nucleus as (token ids, probabilities), rows x width: softmax(scores / temperature), the smallest
    set of most likely tokens whose mass reaches `top_p` (what transformers' TopPLogitsWarper keeps), renormalized,
    zero beyond it. Only the top `candidates` tokens are sorted unless a row's nucleus is wider than that."""
    probs = (scores.float() / temperature).softmax(-1)
    if top_p >= 1.0:  # no nucleus: the whole vocabulary
        return torch.arange(probs.shape[-1], device=probs.device).expand_as(probs), probs
    top, ids = probs.topk(min(candidates, probs.shape[-1]), dim=-1)
    if bool((top.sum(-1) < top_p).any()):  # some nucleus is wider than the candidates: sort whole rows
        top, ids = probs.sort(-1, descending=True)
    top = top * ((top.cumsum(-1) - top) < top_p)
    return ids, top / top.sum(-1, keepdim=True)


class NucleusSampler:
    """Temperature + top-p sampling as a logits processor for greedy `generate`: it draws each row's token from
    its `nucleus` and leaves only that token possible. Same distribution as transformers' sampling path, without
    sorting and sampling over the whole 49k-token vocabulary every step (on the 2-core CPU, 186 ms for the sort and
    117 ms for torch.multinomial per step at 64 sequences; make bench, benchmark 7, measures the whole pass).
    Rows whose nucleus is wider than the candidates are sorted alone; rows that already ended (last token in
    `ended`) are skipped, since generate pads them whatever is chosen."""

    def __init__(self, temperature: float, top_p: float, ended: tuple[int, ...] = (), candidates: int = 64):
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates
        self.ended = torch.tensor(sorted(set(ended)), dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        chosen = scores.argmax(-1, keepdim=True)
        rows = (~torch.isin(input_ids[:, -1], self.ended.to(input_ids.device))).nonzero().squeeze(1)
        if len(rows):
            probs = (scores[rows].float() / self.temperature).softmax(-1)
            wide = probs.topk(min(self.candidates, probs.shape[-1]), dim=-1).values.sum(-1) < self.top_p
            for group in (rows[~wide], rows[wide]):
                if len(group):
                    ids, p = nucleus(scores[group], self.temperature, self.top_p, self.candidates)
                    chosen[group] = ids.gather(1, torch.multinomial(p, 1))
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)


def answer_line_complete(text: str) -> bool:
    """True once a completion's answer line is whole: text after the first `</think>`, then a line break."""
    close = text.find("</think>")
    return close >= 0 and "\n" in text[close + len("</think>") :].lstrip()


class AnswerLineEnd(StoppingCriteria):
    """Stops each row of a `generate` call once `answer_line_complete` holds for its new tokens, and records
    how many new tokens it took (`ends`: row -> tokens). Rows are decoded only when their last token holds a line
    break, so the check costs little."""

    def __init__(self, tokenizer, width: int):
        self.tokenizer, self.width = tokenizer, width
        self.ends: dict[int, int] = {}
        self.breaks: dict[int, bool] = {}  # token id -> its text holds a line break

    def has_break(self, token: int) -> bool:
        if token not in self.breaks:
            self.breaks[token] = "\n" in self.tokenizer.decode([token])
        return self.breaks[token]

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row, token in enumerate(input_ids[:, -1].tolist()):
            if row in self.ends:
                done[row] = True
            elif self.has_break(token) and answer_line_complete(
                    self.tokenizer.decode(input_ids[row, self.width :], skip_special_tokens=True)):
                self.ends[row] = input_ids.shape[1] - self.width
                done[row] = True
        return done


# steps between the rounds of generate_rows: rows that ended leave the batch then
ROUND_STEPS = 16


def generate_rows(model, tokenizer, input_ids, attention, cache, row_budgets: list[int], eos: int, pad: int,
                  sampling: dict) -> list[tuple[list[int], bool]]:
    """Generates every row of a left-padded batch to its end (end of turn, end of its answer line, or its own
    budget) in rounds of `ROUND_STEPS` steps. Between rounds the rows that ended leave the batch with their KV
    cache rows, so the rows still writing no longer carry the ended ones (one long answer used to keep the whole
    batch stepping at full width to the largest budget). Returns each row's new token ids up to its end, and
    whether it ended (False: cut at its budget). `cache`, when given, holds all of `input_ids` but its last
    position (as generate leaves it)."""
    width = input_ids.shape[1]
    rows = list(range(input_ids.shape[0]))  # the batch's rows -> the caller's row numbers
    finished: dict[int, tuple[list[int], bool]] = {}
    while rows:
        steps = min(ROUND_STEPS, max(row_budgets[r] for r in rows) - (input_ids.shape[1] - width))
        answer_end = AnswerLineEnd(tokenizer, width)
        output = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=steps,
                                eos_token_id=eos, pad_token_id=pad, return_dict_in_generate=True,
                                stopping_criteria=StoppingCriteriaList([answer_end]),
                                **({"past_key_values": cache} if cache is not None else {}), **sampling)
        sequences = output.sequences
        keep = []
        for i, (row, ids) in enumerate(zip(rows, sequences[:, width:].tolist())):
            if eos in ids or i in answer_end.ends or len(ids) >= row_budgets[row]:
                ids = ids[: row_budgets[row]]  # a row shorter than the round's is cut at its own budget
                ends = [e for e in (ids.index(eos) + 1 if eos in ids else None, answer_end.ends.get(i))
                        if e is not None and e <= len(ids)]
                finished[row] = (ids[: min(ends)], True) if ends else (ids, False)
            else:
                keep.append(i)
        if not keep:
            break
        cache = output.past_key_values
        attention = torch.cat([attention, attention.new_ones(len(rows), sequences.shape[1] - attention.shape[1])], 1)
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=sequences.device)
            cache.batch_select_indices(index)
            sequences, attention = sequences[index], attention[index]
        rows, input_ids = [rows[i] for i in keep], sequences
    return [finished[row] for row in sorted(finished)]


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[dict]],
    max_new_tokens: int | list[int],
    k: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    progress: str | None = None,
    nucleus_sampler: bool = True,
) -> list[list[Completion]]:
    """`k` completions for each chat prompt, in the order of `prompts`. `max_new_tokens` is one budget or one
    per prompt (prompts of several sets then share batches: a completion is cut at its own prompt's budget
    and counts as capped there, exactly as if generated alone with that budget). `batch_size` counts
    sequences (prompts x k); with `progress`, one log line per batch (prompts done, tokens/s). Sampling draws
    from `NucleusSampler` (`nucleus_sampler=False`: transformers' own sampling, the same distribution, slower)."""
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    encoded = [tokenizer.apply_chat_template(p, add_generation_prompt=True)["input_ids"] for p in prompts]
    # by budget, then by length: a batch runs until its last row ends, often at the largest budget in it
    order = sorted(range(len(prompts)), key=lambda i: (budgets[i], len(encoded[i])), reverse=True)
    results: list[list[Completion]] = [[] for _ in prompts]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    if not do_sample:
        sampling = dict(do_sample=False)
    elif nucleus_sampler:
        sampler = NucleusSampler(temperature, top_p, ended=(eos, pad))
        sampling = dict(do_sample=False, logits_processor=LogitsProcessorList([sampler]))
    else:
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p)
    per_call = max(1, batch_size // k)
    began, generated = time.perf_counter(), 0
    for start in range(0, len(order), per_call):
        batch = order[start : start + per_call]
        input_ids, attention = left_pad([encoded[i] for i in batch], pad)
        input_ids, attention = input_ids.to(device), attention.to(device)
        shared = {}
        if k > 1:  # the prompts once, their cache repeated k times; generate then runs only the last prompt token
            positions = (attention.cumsum(-1) - 1).clamp(min=0)
            cache = model(input_ids=input_ids[:, :-1], attention_mask=attention[:, :-1],
                          position_ids=positions[:, :-1], use_cache=True,
                          logits_to_keep=1).past_key_values
            cache.batch_repeat_interleave(k)
            input_ids, attention = input_ids.repeat_interleave(k, 0), attention.repeat_interleave(k, 0)
            shared = {"past_key_values": cache}
        row_budgets = [budgets[batch[row // k]] for row in range(input_ids.shape[0])]
        rows = generate_rows(model, tokenizer, input_ids, attention, shared.get("past_key_values"), row_budgets,
                             eos, pad, sampling)
        for row, (ids, ended) in enumerate(rows):
            text = tokenizer.decode(ids, skip_special_tokens=True)
            results[batch[row // k]].append(Completion(text=text, tokens=len(ids), hit_cap=not ended))
            generated += len(ids)
        if progress:
            log.info("%s: %d/%d prompts, %.0f tokens/s", progress, start + len(batch), len(order),
                     generated / (time.perf_counter() - began))
    model.train(was_training)
    return results


def majority_vote(answers: list[str | None]) -> str | None:
    """The most common canonical answer; ties go to the one seen first; None only if all are None."""
    counts: dict[str, int] = {}
    for answer in answers:
        if answer is not None:
            counts[answer] = counts.get(answer, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return next(answer for answer, count in counts.items() if count == best)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    result = 1.0
    for i in range(n - c + 1, n + 1):
        result *= 1.0 - k / i
    return 1.0 - result


def guess_kind(question: str) -> str:
    """number | choice | yesno, from the question's shape: options A-E -> choice, a yes/no question -> yesno."""
    import re

    if len(re.findall(r"(?:^|\s|\()([A-E])\)", question)) >= 3:
        return "choice"
    first = question.strip().split(maxsplit=1)[0].lower() if question.strip() else ""
    auxiliaries = {"is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should",
                   "has", "have", "had", "may", "might", "must", "shall"}
    if first in auxiliaries or re.search(r"\byes or no\b", question, re.IGNORECASE):
        return "yesno"
    return "number"


def self_consistency(
    model,
    tokenizer,
    question: str,
    k: int = 8,
    kind: str | None = None,
    reason: bool = True,
    system_prompt: str = "Generate a step by step reasoning for this question.",
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_new_tokens: int = 256,
    options: list[str] | None = None,
) -> dict:
    """Sample k answers to one question and vote: {"answer", "votes", "paths", "kind"}.

    `paths` holds every sampled completion with its extracted canonical answer; `votes` counts each
    distinct answer (None = no answer found) in the order first seen.
    """
    kind = kind or guess_kind(question)
    prompt = chat_prompt(question, system_prompt if reason else None)
    (completions,) = generate(model, tokenizer, [prompt], max_new_tokens, k=k, do_sample=True,
                              temperature=temperature, top_p=top_p)
    paths = [{"completion": c.text, "answer": extract_answer(c.text, kind, options), "tokens": c.tokens,
              "hit_cap": c.hit_cap} for c in completions]
    votes: dict[str, int] = {}
    for path in paths:
        key = str(path["answer"]) if path["answer"] is not None else "None"
        votes[key] = votes.get(key, 0) + 1
    return {"answer": majority_vote([p["answer"] for p in paths]), "votes": votes, "paths": paths, "kind": kind}
