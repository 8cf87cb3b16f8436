"""Decoding: batched generation from chat prompts, rows joining and leaving as they go, in a KV cache allocated once.

Prompts are encoded once and queued by token budget and length. Up to `batch_size` sequences generate at once, each
in a row of a `SlotCache`: every layer's keys and values for all rows, allocated at the start and written in place
(a row's tokens at columns 0, 1, ...; each decode step writes one column per row and attends over the longest row's
columns). A row that ends frees its place at once, and a waiting prompt takes it: the prompt is run once, its cache
written into its k rows (`SlotCache.fill`), its first token chosen from its last logits. No tensor is concatenated
or re-padded per step; once no prompt waits and at most half the rows write, the writing rows are copied into a
smaller cache (`Decoder.shrink`). Generation stops at the end-of-turn token, at the end of the answer line (the first
line with text after `</think>`: the answer the format asks for is complete, and whatever follows is never read), or
at the prompt's own budget; each completion records whether it hit that cap. Measured against transformers'
`generate` and the loop before it in experiments/results/generation.md.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, CacheLayerMixin

from reasoning_lab.answers import extract_answer, majority_vote, weighted_vote
from reasoning_lab.problem import chat_prompt

log = logging.getLogger(__name__)


@dataclass
class Completion:
    text: str
    tokens: int
    # stopped by max_new_tokens rather than by the end-of-turn token
    hit_cap: bool
    # sampled completions: the mean log-probability of its tokens under the model (temperature 1, no nucleus),
    # the confidence a weighted vote reads; None for greedy ones
    logprob: float | None = None


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


def choose(logits: torch.Tensor, sampling: tuple[float, float] | None) -> torch.Tensor:
    """Each row's next token: the most likely (`sampling` None), or drawn from its `nucleus` at (temperature,
    top_p): the distribution of transformers' sampling, without sorting the whole vocabulary every step."""
    if sampling is None:
        return logits.argmax(-1)
    ids, probs = nucleus(logits, *sampling)
    return ids.gather(1, torch.multinomial(probs, 1)).squeeze(1)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Each row's log-probability of its token under the model's own distribution (temperature 1)."""
    return logits.float().log_softmax(-1).gather(1, tokens.view(-1, 1).to(logits.device)).squeeze(1).cpu()


def answer_line_complete(text: str) -> bool:
    """True once a completion's answer line is whole: text after the first `</think>`, then a line break."""
    close = text.find("</think>")
    return close >= 0 and "\n" in text[close + len("</think>") :].lstrip()


class SlotLayer(CacheLayerMixin):
    """One layer's keys and values for `slots` rows of up to `columns` tokens, allocated once. A row's tokens sit at
    columns 0, 1, ... in order (a token's position is its column); a decode step writes each row's new key and value
    at the row's own column (`at`) and attends over the first `width` columns (the longest row's)."""

    is_compileable, is_sliding = False, False

    def __init__(self, slots: int, columns: int):
        super().__init__()
        self.slots, self.columns = slots, columns
        self.at: torch.Tensor | None = None
        self.width = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        shape = (self.slots, key_states.shape[1], self.columns)
        self.keys = key_states.new_zeros(*shape, key_states.shape[-1])
        self.values = value_states.new_zeros(*shape, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        rows = torch.arange(self.slots, device=self.keys.device)
        self.keys[rows, :, self.at] = key_states[:, :, 0]
        self.values[rows, :, self.at] = value_states[:, :, 0]
        return self.keys[:, :, : self.width], self.values[:, :, : self.width]

    def get_seq_length(self) -> int:
        return self.width

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.width, 0

    def get_max_length(self) -> int:
        return self.columns


class SlotCache(Cache):
    """The KV cache of the decode loop: `slots` rows of `columns` tokens in every layer, allocated at the first
    prompt and written in place. A prompt that joins writes its prefill into a free row (`fill`); a decode step
    writes one token per row (`step_mask` sets where); no tensor is concatenated or copied per step."""

    def __init__(self, slots: int, columns: int, layers: int):
        super().__init__(layers=[SlotLayer(slots, columns) for _ in range(layers)])
        self.slots, self.columns = slots, columns
        self.lengths = torch.zeros(slots, dtype=torch.long)  # tokens each row holds

    def fill(self, slot: int, prefill: DynamicCache, row: int, first: int) -> None:
        """Row `slot` takes row `row` of a left-padded prefill, from its column `first` (its first real token)."""
        for mine, theirs in zip(self.layers, prefill.layers):
            if not mine.is_initialized:
                mine.lazy_initialization(theirs.keys, theirs.values)
            n = theirs.keys.shape[2] - first
            mine.keys[slot, :, :n] = theirs.keys[row, :, first:]
            mine.values[slot, :, :n] = theirs.values[row, :, first:]
        self.lengths[slot] = theirs.keys.shape[2] - first

    def step_mask(self) -> torch.Tensor:
        """Before a decode step: each row writes at its length; the 4-D boolean mask of what each row attends to
        (its own tokens and the one it writes)."""
        device = self.layers[0].keys.device
        at = self.lengths.to(device)
        width = int(self.lengths.max()) + 1
        for layer in self.layers:
            layer.at, layer.width = at, width
        return (torch.arange(width, device=device)[None, :] <= at[:, None])[:, None, None, :]

    def keep(self, rows: list[int]) -> None:
        """Only `rows`, in this order, from now on (one copy: the rows that ended leave for good)."""
        index = torch.tensor(rows, dtype=torch.long)
        for layer in self.layers:
            if layer.is_initialized:
                layer.keys = layer.keys.index_select(0, index.to(layer.keys.device))
                layer.values = layer.values.index_select(0, index.to(layer.values.device))
            layer.slots = len(rows)
        self.slots, self.lengths = len(rows), self.lengths[index]


@dataclass
class Slot:
    """What a cache row is writing: the (prompt, sample) it answers, its token budget, its tokens so far."""

    owner: tuple[int, int]
    budget: int
    tokens: list[int]
    # the summed log-probabilities of its tokens (sampling only)
    logprob: float = 0.0
    # cut at its budget
    hit_cap: bool = False


class Decoder:
    """The decode loop's state: the cache rows (`slots`: None where free), the prompts still waiting, how tokens
    are chosen (greedy, or `nucleus` sampling), and what ends a row (the end-of-turn token, the answer line, its
    budget)."""

    def __init__(self, model, tokenizer, encoded: list[list[int]], budgets: list[int], k: int, slots: int,
                 sampling: tuple[float, float] | None):
        self.model, self.tokenizer, self.encoded, self.budgets, self.k = model, tokenizer, encoded, budgets, k
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.sampling = sampling
        self.device = next(model.parameters()).device
        columns = max(len(e) + b for e, b in zip(encoded, budgets)) + 1
        self.cache = SlotCache(slots, columns, model.config.num_hidden_layers)
        self.slots: list[Slot | None] = [None] * slots
        self.next_token = torch.full((slots,), self.pad, dtype=torch.long)
        self.next_logprob = torch.zeros(slots)  # sampling: each row's chosen token's log-probability
        self.breaks: dict[int, bool] = {}  # token id -> its text holds a line break

    def join(self, prompts: list[int]) -> None:
        """`prompts` take free rows, k rows each: each prompt run through the model once (batched, left-padded),
        its cache written into its k rows, its first token chosen from its last position's logits."""
        input_ids, attention = (t.to(self.device) for t in left_pad([self.encoded[i] for i in prompts], self.pad))
        prefill = DynamicCache()
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, cache=prefill,
                            use_cache=True, logits_to_keep=1).logits[:, -1]
        free = [i for i, slot in enumerate(self.slots) if slot is None]
        for row, prompt in enumerate(prompts):
            first = input_ids.shape[1] - len(self.encoded[prompt])
            for sample in range(self.k):
                slot = free.pop(0)
                self.cache.fill(slot, prefill, row, first)
                self.slots[slot] = Slot((prompt, sample), self.budgets[prompt], [])
                self.next_token[slot] = choose(logits[row : row + 1], self.sampling).item()
                if self.sampling is not None:
                    self.next_logprob[slot] = token_logprobs(logits[row : row + 1], self.next_token[slot])[0]

    def step(self) -> dict[tuple[int, int], Slot]:
        """Every writing row takes its chosen token; the rows that ended are freed and returned ((prompt, sample) ->
        its slot: token ids, summed log-probability, and `hit_cap`: True when cut at its budget). Then one decode
        step chooses the next token of every row still writing."""
        finished = {}
        for i, slot in enumerate(self.slots):
            if slot is None:
                continue
            token = int(self.next_token[i])
            slot.tokens.append(token)
            slot.logprob += float(self.next_logprob[i])
            if token == self.eos or (self.has_break(token) and answer_line_complete(
                    self.tokenizer.decode(slot.tokens, skip_special_tokens=True))):
                finished[i] = slot
            elif len(slot.tokens) >= slot.budget:
                slot.hit_cap = True
                finished[i] = slot
        writing = [i for i, slot in enumerate(self.slots) if slot is not None and i not in finished]
        for i in finished:
            self.slots[i] = None
            self.cache.lengths[i] = 0  # a free row writes its padding at column 0 and reads only that
        if writing:
            mask = self.attention_mask(self.cache.step_mask())
            logits = self.model(input_ids=self.next_token[:, None].to(self.device), attention_mask=mask,
                                position_ids=self.cache.lengths[:, None].to(self.device), cache=self.cache,
                                use_cache=True).logits[:, -1]
            self.cache.lengths[writing] += 1
            self.next_token[writing] = choose(logits[writing], self.sampling).to(self.next_token.device)
            if self.sampling is not None:
                self.next_logprob[writing] = token_logprobs(logits[writing], self.next_token[writing])
        return {slot.owner: slot for slot in finished.values()}

    def shrink(self) -> None:
        """With no prompt left to join and at most half the rows writing: only the writing rows from now on."""
        writing = [i for i, slot in enumerate(self.slots) if slot is not None]
        if writing and len(writing) <= len(self.slots) // 2:
            self.cache.keep(writing)
            self.slots = [self.slots[i] for i in writing]
            self.next_token, self.next_logprob = self.next_token[writing], self.next_logprob[writing]

    def attention_mask(self, allowed: torch.Tensor) -> torch.Tensor:
        """The boolean mask as the model's attention takes it: sdpa as it is, eager as a float mask it adds."""
        if self.model.config._attn_implementation != "eager":
            return allowed
        dtype = self.model.dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed,
                                                                                           torch.finfo(dtype).min)

    def has_break(self, token: int) -> bool:
        if token not in self.breaks:
            self.breaks[token] = "\n" in self.tokenizer.decode([token])
        return self.breaks[token]


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
) -> list[list[Completion]]:
    """`k` completions for each chat prompt, in the order of `prompts`. `max_new_tokens` is one budget or one
    per prompt (a completion is cut at its own prompt's budget and counts as capped there, exactly as if generated
    alone with that budget). Up to `batch_size` sequences (prompts x k) generate at once, each in a row of a KV
    cache allocated once (`SlotCache`); a row that ends frees its place, and a waiting prompt's prefill is written
    into it at the next step, so the batch stays full until the queue is empty. Sampling draws each token from its
    `nucleus`. With `progress`, a log line each time another batch's worth of prompts is done (prompts done,
    tokens/s)."""
    if not prompts:
        return []
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    encoded = [tokenizer.apply_chat_template(p, add_generation_prompt=True)["input_ids"] for p in prompts]
    waiting = sorted(range(len(prompts)), key=lambda i: (budgets[i], len(encoded[i])), reverse=True)
    results: list[list[Completion | None]] = [[None] * k for _ in prompts]
    was_training = model.training
    model.eval()
    per_call = max(1, batch_size // k)  # prompts at once
    decoder = Decoder(model, tokenizer, encoded, budgets, k, per_call * k,
                      (temperature, top_p) if do_sample else None)
    began, generated, left, done, logged = time.perf_counter(), 0, [k] * len(prompts), 0, 0
    while waiting or any(slot is not None for slot in decoder.slots):
        joining = sum(slot is None for slot in decoder.slots) // k
        if waiting and joining > 0:
            decoder.join(waiting[:joining])
            waiting = waiting[joining:]
        elif not waiting:
            decoder.shrink()
        for (prompt, sample), slot in decoder.step().items():
            ids = slot.tokens
            results[prompt][sample] = Completion(text=tokenizer.decode(ids, skip_special_tokens=True),
                                                 tokens=len(ids), hit_cap=slot.hit_cap,
                                                 logprob=slot.logprob / len(ids) if do_sample else None)
            generated += len(ids)
            left[prompt] -= 1
            done += left[prompt] == 0
        if progress and done > logged and (done - logged >= per_call or done == len(prompts)):
            logged = done
            log.info("%s: %d/%d prompts, %.0f tokens/s", progress, done, len(prompts),
                     generated / (time.perf_counter() - began))
    model.train(was_training)
    return results


def confidence(completion: Completion) -> float:
    """A sampled path's vote weight in `eval.vote=confidence`: exp of its mean token log-probability (the geometric
    mean of its tokens' probabilities, in (0, 1])."""
    return math.exp(completion.logprob) if completion.logprob is not None else 1.0


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
    vote: str = "majority",
) -> dict:
    """Sample k answers to one question and vote: {"answer", "votes", "paths", "kind", "vote"}.

    `paths` holds every sampled completion with its extracted canonical answer and its mean token log-probability;
    `votes` counts each distinct answer (None = no answer found) in the order first seen. `vote`: majority (each path
    one vote) or confidence (each path's vote weighted by `confidence`). k=0: the greedy answer alone (one path,
    `vote` "greedy").
    """
    kind = kind or guess_kind(question)
    prompt = chat_prompt(question, system_prompt if reason else None)
    sampling = dict(k=k, do_sample=True, temperature=temperature, top_p=top_p) if k > 0 else {}
    (completions,) = generate(model, tokenizer, [prompt], max_new_tokens, **sampling)
    paths = [{"completion": c.text, "answer": extract_answer(c.text, kind, options), "tokens": c.tokens,
              "hit_cap": c.hit_cap, "logprob": None if c.logprob is None else round(c.logprob, 5)} for c in completions]
    votes: dict[str, int] = {}
    for path in paths:
        key = str(path["answer"]) if path["answer"] is not None else "None"
        votes[key] = votes.get(key, 0) + 1
    answers = [p["answer"] for p in paths]
    answer = (weighted_vote(answers, [confidence(c) for c in completions]) if vote == "confidence"
              else majority_vote(answers))
    return {"answer": answer, "votes": votes, "paths": paths, "kind": kind, "vote": vote if k > 0 else "greedy"}
