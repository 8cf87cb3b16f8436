"""Decoding: batched generation from chat prompts, with rows joining and leaving as they go.

Prompts are encoded once and queued by token budget and length. Up to `batch_size` sequences generate at once
(`Rows`); every `ROUND_STEPS` steps the rows that ended leave and waiting prompts join (`prefill`: the prompt
run once, its KV cache repeated for its k samples, then left-padded to the batch's columns), so the batch stays
full until the queue is empty instead of waiting for its longest answer (1.14x on the default final evaluation).
Generation stops at the end-of-turn token, at the end of the answer line (the first line with text after
`</think>`: the answer the format asks for is complete, and whatever follows is never read), or at the prompt's
own budget; each completion records whether it hit that cap. transformers' own continuous batching
(`generate_batch`) does the same with a paged KV cache, but on the CPU its attention runs over every request's
keys at once: 0.3x this loop. Both measured in experiments/results/generation.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from transformers import DynamicCache, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

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
    """Stops each row of a `generate` call once `answer_line_complete` holds for its completion (the tokens from
    its column in `starts`), and records how many tokens that completion then holds (`ends`: row -> tokens). Rows
    are decoded only when their last token holds a line break, so the check costs little."""

    def __init__(self, tokenizer, starts: list[int]):
        self.tokenizer, self.starts = tokenizer, starts
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
                    self.tokenizer.decode(input_ids[row, self.starts[row] :], skip_special_tokens=True)):
                self.ends[row] = input_ids.shape[1] - self.starts[row]
                done[row] = True
        return done


# steps per round: between rounds the rows that ended leave the batch and waiting prompts join it
ROUND_STEPS = 16


@dataclass
class Rows:
    """The sequences being generated: left-padded `input_ids` and `attention` (rows x columns), the KV cache of all
    columns but the last, and per row the (prompt, sample) it answers, its token budget and the column its
    completion starts at."""

    input_ids: torch.Tensor
    attention: torch.Tensor
    cache: DynamicCache
    owners: list[tuple[int, int]]
    budgets: list[int]
    starts: list[int]

    def widen(self, columns: int, pad: int) -> None:
        """Left-pads every row to `columns` columns: padding tokens, masked, zero keys and values."""
        extra = columns - self.input_ids.shape[1]
        if extra > 0:
            self.input_ids = torch.nn.functional.pad(self.input_ids, (extra, 0), value=pad)
            self.attention = torch.nn.functional.pad(self.attention, (extra, 0), value=0)
            for layer in self.cache.layers:
                layer.keys, layer.values = (torch.nn.functional.pad(t, (0, 0, extra, 0)) for t in (layer.keys, layer.values))
            self.starts = [start + extra for start in self.starts]

    def join(self, other: Rows, pad: int) -> None:
        """Appends `other`'s rows (both widened to the wider one's columns)."""
        columns = max(self.input_ids.shape[1], other.input_ids.shape[1])
        self.widen(columns, pad)
        other.widen(columns, pad)
        self.input_ids = torch.cat([self.input_ids, other.input_ids])
        self.attention = torch.cat([self.attention, other.attention])
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys, mine.values = torch.cat([mine.keys, theirs.keys]), torch.cat([mine.values, theirs.values])
        self.owners, self.budgets, self.starts = (self.owners + other.owners, self.budgets + other.budgets,
                                                  self.starts + other.starts)

    def keep(self, rows: list[int]) -> None:
        """Keeps only `rows` (copying the cache only when some row leaves), then drops the leading columns that no
        remaining row attends to."""
        if len(rows) < len(self.owners):
            index = torch.tensor(rows, device=self.input_ids.device)
            self.cache.batch_select_indices(index)
            self.input_ids, self.attention = self.input_ids[index], self.attention[index]
            self.owners, self.budgets, self.starts = ([values[r] for r in rows]
                                                      for values in (self.owners, self.budgets, self.starts))
        first = int(self.attention.any(0).int().argmax())
        if first:
            self.input_ids, self.attention = self.input_ids[:, first:], self.attention[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]
            self.starts = [start - first for start in self.starts]


def prefill(model, prompts: list[int], encoded: list[list[int]], budgets: list[int], k: int, pad: int) -> Rows:
    """`k` rows for each of `prompts`: every prompt but its last token run through the model once, its KV cache
    repeated k times (generate then runs the last prompt token of each row)."""
    device = next(model.parameters()).device
    input_ids, attention = (t.to(device) for t in left_pad([encoded[i] for i in prompts], pad))
    cache = DynamicCache()
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    model(input_ids=input_ids[:, :-1], attention_mask=attention[:, :-1], position_ids=positions[:, :-1],
          cache=cache, use_cache=True, logits_to_keep=1)
    if k > 1:
        cache.batch_repeat_interleave(k)
        input_ids, attention = input_ids.repeat_interleave(k, 0), attention.repeat_interleave(k, 0)
    owners = [(i, sample) for i in prompts for sample in range(k)]
    return Rows(input_ids, attention, cache, owners, [budgets[i] for i, _ in owners], [input_ids.shape[1]] * len(owners))


def generate_round(model, tokenizer, rows: Rows, eos: int, pad: int,
                   sampling: dict) -> tuple[dict[int, tuple[list[int], bool]], list[int]]:
    """Up to `ROUND_STEPS` new tokens for every row. Returns the rows that ended (row -> its completion's token ids,
    and whether it ended: False when cut at its budget) and the rows still writing; `rows` then holds the new
    tokens and their cache."""
    width = rows.input_ids.shape[1]
    steps = min(ROUND_STEPS, max(budget - (width - start) for budget, start in zip(rows.budgets, rows.starts)))
    answer_end = AnswerLineEnd(tokenizer, rows.starts)
    output = model.generate(input_ids=rows.input_ids, attention_mask=rows.attention, max_new_tokens=steps,
                            eos_token_id=eos, pad_token_id=pad, return_dict_in_generate=True, cache=rows.cache,
                            stopping_criteria=StoppingCriteriaList([answer_end]), **sampling)
    sequences = output.sequences
    finished, keep = {}, []
    for i, (start, budget) in enumerate(zip(rows.starts, rows.budgets)):
        ids = sequences[i, start:].tolist()
        if eos in ids or i in answer_end.ends or len(ids) >= budget:
            ids = ids[:budget]  # a row whose budget ends inside the round is cut there
            ends = [e for e in (ids.index(eos) + 1 if eos in ids else None, answer_end.ends.get(i))
                    if e is not None and e <= len(ids)]
            finished[i] = (ids[: min(ends)], True) if ends else (ids, False)
        else:
            keep.append(i)
    rows.input_ids, rows.cache = sequences, output.cache
    rows.attention = torch.cat([rows.attention, rows.attention.new_ones(len(sequences), sequences.shape[1] - width)], 1)
    return finished, keep


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
    per prompt (a completion is cut at its own prompt's budget and counts as capped there, exactly as if generated
    alone with that budget). Up to `batch_size` sequences (prompts x k) generate at once; every `ROUND_STEPS` steps
    the rows that ended leave and waiting prompts take their places, so the batch stays full until the queue is
    empty. With `progress`, a log line each time another batch's worth of prompts is done (prompts done,
    tokens/s). Sampling draws from `NucleusSampler` (`nucleus_sampler=False`: transformers' own sampling, the
    same distribution, slower)."""
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    encoded = [tokenizer.apply_chat_template(p, add_generation_prompt=True)["input_ids"] for p in prompts]
    # by budget, then by length: the rows that join later need no more columns than those already writing
    waiting = sorted(range(len(prompts)), key=lambda i: (budgets[i], len(encoded[i])), reverse=True)
    results: list[list[Completion | None]] = [[None] * k for _ in prompts]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    was_training = model.training
    model.eval()
    if not do_sample:
        sampling = dict(do_sample=False)
    elif nucleus_sampler:
        sampler = NucleusSampler(temperature, top_p, ended=(eos, pad))
        sampling = dict(do_sample=False, logits_processor=LogitsProcessorList([sampler]))
    else:
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p)
    per_call = max(1, batch_size // k)  # prompts at once
    began, generated, left, done, logged = time.perf_counter(), 0, [k] * len(prompts), 0, 0
    rows = None
    while waiting or rows is not None:
        joining = (per_call * k - (len(rows.owners) if rows is not None else 0)) // k
        if waiting and joining > 0:
            new = prefill(model, waiting[:joining], encoded, budgets, k, pad)
            waiting = waiting[joining:]
            if rows is None:
                rows = new
            else:
                rows.join(new, pad)
        finished, writing = generate_round(model, tokenizer, rows, eos, pad, sampling)
        for i, (ids, ended) in finished.items():
            prompt, sample = rows.owners[i]
            results[prompt][sample] = Completion(text=tokenizer.decode(ids, skip_special_tokens=True),
                                                 tokens=len(ids), hit_cap=not ended)
            generated += len(ids)
            left[prompt] -= 1
            done += left[prompt] == 0
        if writing:
            rows.keep(writing)
        else:
            rows = None
        if progress and done > logged and (done - logged >= per_call or done == len(prompts)):
            logged = done
            log.info("%s: %d/%d prompts, %.0f tokens/s", progress, done, len(prompts),
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
