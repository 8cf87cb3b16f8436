"""Data: every source becomes the same chat examples, then tokens with a loss mask on the completion.

One example is
    {"prompt": [system?, user], "completion": [assistant], "answer": gold, "kind": number|choice|yesno,
     "difficulty": float, "source": name}
where the assistant says `<think>\\n{reasoning}\\n</think>\\n{answer}` after the reasoning system prompt,
and only `{answer}` when the example has no system prompt: the model learns when to reason.

Sets are named in `data.sets` (e.g. `gsm8k_simple: {source: gsm8k, max_difficulty: 2}`), so stages and
evaluation refer to names, and a config decides whether a name means a benchmark or a stand-in.
Benchmarks (`gsm8k`, `aqua`, `strategyqa`) load from `data.root/<name>/<split>.jsonl`, else from the hub,
else fail with one error; they never fall back to synthetic data (reasoning_lab/readers.py parses their rows).
The difficulty of generic and synthetic sets is the generator level / number of operations
(reasoning_lab/synthetic.py). The contamination guard is reasoning_lab/contamination.py.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections import Counter
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from datasets import Dataset
from omegaconf import DictConfig
from tqdm.auto import tqdm

from reasoning_lab import synthetic
from reasoning_lab.config import OWN
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.problem import Problem, chat_prompt
from reasoning_lab.readers import (
    BENCHMARKS,
    LOCAL_FILES,
    Builtin,
    hub_reachable,
    read_hub,
    read_jsonl,
    reader,
)
from reasoning_lab.timing import phase

log = logging.getLogger(__name__)

def benchmark_rows(source: str, split: str, data_cfg: DictConfig) -> list[Problem]:
    """All rows of a benchmark split (`train` or `test`): data.root first, then the hub, else one error."""
    tried = []
    if data_cfg.root:
        for i, name in enumerate(LOCAL_FILES[source][split]):
            path = Path(data_cfg.root) / source / f"{name}.jsonl"
            tried.append(str(path))
            if path.exists():
                if i > 0:
                    log.warning("%s has no local %s split; using %s for training", source, split, path)
                return list(read_jsonl(str(path), Builtin(source, data_cfg.strategyqa_decomposition)))
    spec = data_cfg.hub[source]
    hub = read_hub(spec.id, spec.config, spec.splits[split], Builtin(source, data_cfg.strategyqa_decomposition))
    if hub is not None:
        return hub
    raise ReasoningLabError(
        f"dataset {source} ({split}) not found: tried {', '.join(tried) or 'no data.root'} and the hub "
        f"({data_cfg.hub[source].id}{'' if hub_reachable() else ', unreachable'}); set data.root=<folder with {source}/<split>.jsonl> "
        f"(or REASONING_LAB_DATA), log in to the hub, or use data=embedded for the synthetic stand-ins"
    )


# ----------------------------------------------------------------------------------------------
# Named sets and their splits
# ----------------------------------------------------------------------------------------------


def source_rows(source: str, split: str, data_cfg: DictConfig) -> list[Problem]:
    """Every problem of a source for one split: train | val (held out from train) | test. A set defined in
    configuration (`source: jsonl | hub`) is its own source, named by the set's name."""
    if source in data_cfg.sets and data_cfg.sets[source].source in OWN:
        return own_rows(source, split, data_cfg)
    if source in BENCHMARKS:
        if split == "test":
            return benchmark_rows(source, "test", data_cfg)
        rows = benchmark_rows(source, "train", data_cfg)
        return train_or_val(rows, split, data_cfg)
    if source == "generic":
        g = data_cfg.generic
        spec, size, cells = (source, tuple(g.tasks), tuple(g.levels)), g.size_per_level, len(g.tasks) * len(g.levels)
    elif source in synthetic.STAND_INS:
        spec, size, cells = (source, (), ()), data_cfg.synthetic_size, 1
    else:
        known = ", ".join(BENCHMARKS + ("generic",) + tuple(synthetic.STAND_INS) + OWN)
        raise ReasoningLabError(f"unknown data source {source!r}; known: {known}")
    if split == "train":
        return [p for p in procedural(*spec, size, data_cfg.seed) if split_of(p.question) == "train"]
    wanted = data_cfg.val_size if split == "val" else data_cfg.test_size
    offset = {"val": 1, "test": 2}[split]
    fresh: dict[str, Problem] = {}
    for attempt in range(4):  # held-out buckets are a small share of the question space: draw until enough
        per_cell = -(-wanted // cells) * 10 * (attempt + 1)
        for p in procedural(*spec, per_cell, data_cfg.seed + 7919 * offset + 104729 * attempt):
            if split_of(p.question) == split:
                fresh.setdefault(p.question, p)
        if len(fresh) >= 2 * wanted:
            break
    if len(fresh) < wanted:
        log.warning("%s has %d held-out %s questions in all, fewer than the %d asked (data.%s_size): using all %d",
                    source, len(fresh), split, wanted, "val" if split == "val" else "test", len(fresh))
    return random.Random(data_cfg.seed + offset).sample(list(fresh.values()), min(wanted, len(fresh)))


def own_rows(name: str, split: str, data_cfg: DictConfig) -> list[Problem]:
    """A set defined in configuration, for one split. With a test split of its own (`splits.test`), validation rows
    are held out of the training split as the benchmarks' are; with one file (`path`) or a training split alone,
    each row's split follows a hash of its question (`split_of`: 80% train, 5% validation, 15% test)."""
    spec = data_cfg.sets[name]
    splits = dict(spec.splits or {})
    if spec.source == "jsonl" and spec.path:
        splits["train"] = spec.path

    def rows(key: str) -> list[Problem]:
        if spec.source == "jsonl":
            if not Path(splits[key]).is_file():
                field = "path" if spec.path else f"splits.{key}"
                raise ReasoningLabError(f"data.sets.{name}.{field}={splits[key]} is not a file (relative paths start "
                                        f"from {Path.cwd()}); point it at a JSONL file")
            return list(read_jsonl(str(Path(splits[key])), reader(name, spec)))
        found = read_hub(spec.id, spec.config, splits[key], reader(name, spec))
        if found is None:
            raise ReasoningLabError(f"data.sets.{name}: hub data set {spec.id} ({splits[key]}) cannot be reached; "
                                    "log in to the hub, or save it as JSONL and use source: jsonl")
        return found

    if "test" not in splits:
        return [p for p in rows("train") if split_of(p.question) == split]
    if split == "test":
        return rows("test")
    return train_or_val(rows("train"), split, data_cfg)


def train_or_val(rows: list[Problem], split: str, data_cfg: DictConfig) -> list[Problem]:
    """A training split's rows for `train`, or its seeded validation slice (`data.val_size`, at most a tenth) for
    `val`: disjoint, the same in every run."""
    held_out = set(random.Random(data_cfg.seed).sample(range(len(rows)), min(data_cfg.val_size, len(rows) // 10)))
    return [r for i, r in enumerate(rows) if (i in held_out) == (split == "val")]


def split_of(question: str) -> str:
    """The split a generated question belongs to, from a hash of its text: 15% test, 5% validation, 80%
    training. Held out by construction: a test question is never a training question, whatever
    `data.seed` each side was generated with."""
    bucket = int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % 20
    return "test" if bucket < 3 else "val" if bucket < 4 else "train"


@lru_cache(maxsize=64)
def procedural(source: str, tasks: tuple, levels: tuple, size: int, seed: int) -> tuple[Problem, ...]:
    """Generated problems, cached: every stage and split asks for the same seeded rows."""
    if source == "generic":
        return tuple(synthetic.generic(list(tasks), list(levels), size, seed))
    return tuple(synthetic.STAND_INS[source](size, seed))


def load_problems(data_cfg: DictConfig, name: str, split: str) -> list[Problem]:
    """Problems of the named set `name` (a key of data.sets) for split train | val | test."""
    if name not in data_cfg.sets:
        raise ReasoningLabError(f"unknown data set {name!r}; defined in data.sets: {', '.join(data_cfg.sets)}")
    spec = data_cfg.sets[name]
    problems = own_rows(name, split, data_cfg) if spec.source in OWN else source_rows(spec.source, split, data_cfg)
    low = float("-inf") if spec.min_difficulty is None else spec.min_difficulty
    high = float("inf") if spec.max_difficulty is None else spec.max_difficulty
    return [p for p in problems if low <= p.difficulty <= high]


def format_example(problem: Problem, reason: bool, system_prompt: str) -> dict:
    """The chat example of a problem: with the reasoning prompt and a <think> block, or answered directly."""
    target = f"<think>\n{problem.reasoning}\n</think>\n{problem.answer}" if reason else problem.answer
    return {
        "prompt": chat_prompt(problem.question, system_prompt if reason else None),
        "completion": [{"role": "assistant", "content": target}],
        **{k: v for k, v in asdict(problem).items() if k not in ("question", "reasoning")},
    }


def answer_token_cap(tokenizer, problems: list[Problem], reason: bool, floor: int = 16) -> int:
    """A generation budget from the set's own reference completions: the 99th percentile of their token
    counts (end of turn included) plus a quarter, rounded up to a multiple of 8, at least `floor`. A model
    that answers like the references then stops well before the cap."""
    lengths = sorted(len(tokenizer(format_example(p, reason, "")["completion"][0]["content"],
                                   add_special_tokens=False)["input_ids"]) + 1 for p in problems)
    p99 = lengths[min(len(lengths) - 1, math.ceil(0.99 * len(lengths)) - 1)] if lengths else floor
    return max(floor, 8 * math.ceil(p99 * 1.25 / 8))


@phase("data")
def build_examples(data_cfg: DictConfig, names: list[str], split: str, exclude: frozenset = frozenset()) -> list[dict]:
    """Chat examples of several sets; a seeded `data.direct_share` of them answer without reasoning.
    Questions in `exclude` (the contamination guard's drops) are left out."""
    rng = random.Random(data_cfg.seed)
    examples = []
    for name in names:
        spec, without = data_cfg.sets[name], 0
        for problem in load_problems(data_cfg, name, split):
            if problem.question in exclude:
                continue
            reason = rng.random() >= data_cfg.direct_share
            if spec.source in OWN and not problem.reasoning:
                without += 1
                if spec.without_reasoning == "skip":
                    continue
                reason = False
            examples.append({**format_example(problem, reason, data_cfg.system_prompt), "set": name})
        if without:
            log.info("%s: %d %s rows have no reasoning: %s", name, without, split,
                     "left out of SFT" if spec.without_reasoning == "skip" else "trained as direct answers")
    rng.shuffle(examples)
    return examples


@phase("data")
def tokenize(examples: list[dict], tokenizer, max_length: int, overflow: str,
             keep: tuple[str, ...] = ()) -> tuple[Dataset, dict]:
    """Token ids and a completion mask per example, through the model's chat template (plus the example
    fields named in `keep`, for the rows kept).

    Nothing is cut silently: examples longer than `max_length` are dropped (overflow=drop) or cut
    (overflow=truncate), and counted per source in the returned stats.
    """
    rows = {"input_ids": [], "completion_mask": [], **{key: [] for key in keep}}
    overlong, kept = Counter(), Counter()
    for example in tqdm(examples, desc="tokenizing", leave=False):
        prompt_ids = tokenizer.apply_chat_template(example["prompt"], add_generation_prompt=True)["input_ids"]
        ids = tokenizer.apply_chat_template(example["prompt"] + example["completion"])["input_ids"]
        start = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), len(prompt_ids))
        mask = [0] * start + [1] * (len(ids) - start)
        if len(ids) > max_length:
            overlong[example["source"]] += 1
            if overflow == "drop" or start >= max_length:
                continue
            ids, mask = ids[:max_length], mask[:max_length]
        kept[example["source"]] += 1
        rows["input_ids"].append(ids)
        rows["completion_mask"].append(mask)
        for key in keep:
            rows[key].append(example[key])
    stats = {"examples": sum(kept.values()), "per_source": dict(kept), "overlong": dict(overlong),
             "overflow": overflow, "max_length": max_length}
    if overlong:
        log.warning("%d examples longer than data.max_length=%d were %s: %s", sum(overlong.values()),
                    max_length, "dropped" if overflow == "drop" else "truncated", dict(overlong))
    if not rows["input_ids"]:
        raise ReasoningLabError(f"no example fits data.max_length={max_length}; raise data.max_length")
    return Dataset.from_dict(rows), stats


