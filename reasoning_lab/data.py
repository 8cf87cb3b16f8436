"""Data: every source becomes the same chat examples, then tokens with a loss mask on the completion.

One example is
    {"prompt": [system?, user], "completion": [assistant], "answer": gold, "kind": number|choice|yesno,
     "difficulty": float, "source": name}
where the assistant says `<think>\\n{reasoning}\\n</think>\\n{answer}` after the reasoning system prompt,
and only `{answer}` when the example has no system prompt: the model learns when to reason.

Sets are named in `data.sets` (e.g. `gsm8k_simple: {source: gsm8k, max_difficulty: 2}`), so stages and
evaluation refer to names, and a config decides whether a name means a benchmark or a stand-in.
Benchmarks (`gsm8k`, `aqua`, `strategyqa`) load from `data.root/<name>/<split>.jsonl`, else from the hub,
else fail with one error; they never fall back to synthetic data.

Difficulty:
- gsm8k: reasoning steps = calculator notes `<<...>>` in the solution (solution lines when it has none)
- aqua: non-empty rationale lines before the answer line
- strategyqa: length of the question's decomposition
- generic and synthetic sets: generator level / number of operations (reasoning_lab/synthetic.py)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from datasets import Dataset
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from reasoning_lab import synthetic
from reasoning_lab.answers import KIND_ANSWERS, canonical_gold, canonical_number
from reasoning_lab.checkpoints import record
from reasoning_lab.config import OWN
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.problem import Problem, chat_prompt

log = logging.getLogger(__name__)

BENCHMARKS = ("gsm8k", "aqua", "strategyqa")
# local file per split: training rows, and the rows held back for final evaluation
LOCAL_FILES = {"gsm8k": {"train": ["train"], "test": ["test"]},
               "aqua": {"train": ["train", "dev"], "test": ["test"]},
               "strategyqa": {"train": ["train"], "test": ["dev"]}}
MAX_BAD_SHARE = 0.01


# ----------------------------------------------------------------------------------------------
# Benchmark rows -> problems (None for a malformed row, with the reason)
# ----------------------------------------------------------------------------------------------

CALCULATOR_NOTE = re.compile(r"<<[^<>]*>>")


def gsm8k_problem(row: dict) -> Problem | str:
    question, solution = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not isinstance(solution, str):
        return "missing question or answer"
    if "####" not in solution:
        return "answer has no '#### N' line"
    body, final = solution.rsplit("####", 1)
    gold = canonical_number(final.strip())
    if gold is None:
        return f"final answer {final.strip()!r} is not a number"
    steps = len(CALCULATOR_NOTE.findall(body)) or len([line for line in body.splitlines() if line.strip()])
    reasoning = CALCULATOR_NOTE.sub("", body).strip()
    return Problem(question.strip(), reasoning, gold, "number", float(steps), "gsm8k")


ANSWER_LINE = re.compile(r"^\W*(?:the\s+)?(?:correct\s+)?(?:answer|ans)\b", re.IGNORECASE)


def aqua_problem(row: dict) -> Problem | str:
    question, options, rationale, correct = (row.get(k) for k in ("question", "options", "rationale", "correct"))
    if not isinstance(question, str) or not isinstance(rationale, str):
        return "missing question or rationale"
    if not isinstance(options, list) or len(options) != 5 or not all(isinstance(o, str) for o in options):
        return "options is not a list of 5 strings"
    if canonical_gold(str(correct), "choice") is None:
        return f"correct={correct!r} is not one of A-E"
    lines = [line.strip() for line in rationale.strip().splitlines() if line.strip()]
    while lines and ANSWER_LINE.match(lines[-1]):  # the final answer follows the think block instead
        lines.pop()
    options = [o.strip() for o in options]
    text = question.strip() + "\nOptions: " + " ".join(options)
    return Problem(text, "\n".join(lines), correct.strip().upper(), "choice", float(max(len(lines), 1)), "aqua",
                   options)


def strategyqa_problem(row: dict, with_decomposition: bool) -> Problem | str:
    question, answer, facts = row.get("question"), row.get("answer"), row.get("facts")
    decomposition = row.get("decomposition") or []
    if not isinstance(question, str) or not isinstance(answer, bool):
        return "missing question or boolean answer"
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        return "facts is not a list of strings"
    if not isinstance(decomposition, list) or not all(isinstance(d, str) for d in decomposition):
        return "decomposition is not a list of strings"
    lines = list(facts) + ([f"Step {i}: {step}" for i, step in enumerate(decomposition, 1)] if with_decomposition else [])
    return Problem(question.strip(), "\n".join(lines), "yes" if answer else "no", "yesno",
                   float(max(len(decomposition), 1)), "strategyqa")


@dataclass(frozen=True)
class Builtin:
    """The reader of a benchmark's rows (GSM8K's `####` answer and calculator notes, AQuA's options and answer
    lines, StrategyQA's facts): a row -> a Problem, or the reason it is malformed."""

    source: str
    strategyqa_decomposition: bool = False
    fix: str = "fix the file or point data.root elsewhere"

    def __call__(self, row: dict) -> Problem | str:
        if self.source == "gsm8k":
            return gsm8k_problem(row)
        if self.source == "aqua":
            return aqua_problem(row)
        return strategyqa_problem(row, self.strategyqa_decomposition)


OPTION_LETTER = re.compile(r"^[A-E]\)")


@dataclass(frozen=True)
class Fields:
    """The reader of a set defined in configuration (`data.sets.<name>: {source: jsonl | hub, fields: ..., kind: ...}`):
    each problem field taken from the row field the config names.

    - question: text. answer: the gold answer of `kind` (number: a number, or text ending in GSM8K's `#### N`, whose
      part before `####` is then the reasoning; choice: a letter A-E; yesno: yes/no/true/false or a boolean).
    - reasoning (optional): text, or a list of lines. Empty or absent: the row has no reasoning (`without_reasoning`).
    - options (choice sets): a list of 2-5 option texts, lettered A) B) ... when they are not, and shown after the
      question as AQuA's are. difficulty (optional): a number, or a list (its length); 1.0 without the field."""

    name: str
    kind: str
    question: str
    answer: str
    reasoning: str | None = None
    options: str | None = None
    difficulty: str | None = None

    @property
    def fix(self) -> str:
        return f"fix the file, or data.sets.{self.name}.fields / .kind"

    def field(self, row: dict, role: str):
        name = getattr(self, role)
        if name not in row:
            raise KeyError(f"no field {name!r} (data.sets.{self.name}.fields.{role}; the row has: {', '.join(row)})")
        return row[name]

    def __call__(self, row: dict) -> Problem | str:
        try:
            question, answer = self.field(row, "question"), self.field(row, "answer")
            reasoning = row.get(self.reasoning) if self.reasoning else None  # a row may lack it: no reasoning
            options = self.field(row, "options") if self.options else None
            difficulty = self.field(row, "difficulty") if self.difficulty else 1.0
        except KeyError as missing:
            return missing.args[0]
        if not isinstance(question, str) or not question.strip():
            return f"{self.question!r} is not a non-empty text"
        if isinstance(reasoning, list) and all(isinstance(line, str) for line in reasoning):
            reasoning = "\n".join(reasoning)
        if reasoning is not None and not isinstance(reasoning, str):
            return f"{self.reasoning!r} is not a text or a list of lines"
        text = str(answer).lower() if isinstance(answer, bool) else str(answer)
        if self.kind == "number" and "####" in text:  # GSM8K's convention: the worked solution, then #### N
            body, text = text.rsplit("####", 1)
            reasoning = reasoning if reasoning is not None else CALCULATOR_NOTE.sub("", body).strip()
        gold = canonical_gold(text.strip(), self.kind)
        if gold is None:
            return f"answer {text.strip()[:40]!r} is not a {self.kind} answer ({KIND_ANSWERS[self.kind]})"
        if self.kind == "choice":
            if not isinstance(options, list) or not 2 <= len(options) <= 5 or not all(isinstance(o, str) for o in options):
                return f"{self.options!r} is not a list of 2-5 option texts"
            options = [o.strip() if OPTION_LETTER.match(o.strip()) else f"{'ABCDE'[i]}){o.strip()}"
                       for i, o in enumerate(options)]
            question = question.strip() + "\nOptions: " + " ".join(options)
        if isinstance(difficulty, list):
            difficulty = len(difficulty)
        try:
            difficulty = float(difficulty)
        except (TypeError, ValueError):
            return f"difficulty {difficulty!r} is not a number"
        return Problem(question.strip(), (reasoning or "").strip(), gold, self.kind, difficulty, self.name,
                       options if self.kind == "choice" else None)


def reader(name: str, spec: DictConfig) -> Fields:
    """The reader of a set defined in configuration."""
    f = spec.fields
    return Fields(name, spec.kind, f.question, f.answer, f.reasoning, f.options, f.difficulty)


# ----------------------------------------------------------------------------------------------
# Reading: local JSONL first, then the hub
# ----------------------------------------------------------------------------------------------

# path -> number of malformed rows skipped (reported in the stages' metrics)
SKIPPED: dict[str, int] = {}


@lru_cache(maxsize=32)
def read_jsonl(path: str, parse: Builtin | Fields) -> tuple[Problem, ...]:
    """Problems of one JSONL file, each row read by `parse`. Malformed rows are skipped with a warning naming file
    and line, and counted; more than 1% of them (or a file that is not JSONL) is an error quoting the first bad
    line."""
    problems, bad = [], []
    lines = Path(path).read_text(encoding="utf-8-sig", errors="replace").splitlines()  # a BOM is not data
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            result = parse(row) if isinstance(row, dict) else "not a JSON object"
        except json.JSONDecodeError as error:
            result = f"invalid JSON ({error.msg})"
        except RecursionError:
            result = "invalid JSON (nested too deeply)"
        if isinstance(result, str):
            bad.append((number, result, line))
        else:
            problems.append(result)
    total = len(problems) + len(bad)
    if not total:
        raise ReasoningLabError(f"{path} is empty (no rows); fill it with JSONL rows or point data.root elsewhere")
    if bad and (len(bad) > MAX_BAD_SHARE * total or not problems):
        number, reason, line = bad[0]
        raise ReasoningLabError(
            f"{path}: {len(bad)} of {total} rows are malformed (first: line {number}, {reason}: {line[:120]!r}); "
            f"{parse.fix}"
        )
    for number, reason, _ in bad:
        log.warning("%s:%d skipped: %s", path, number, reason)
    SKIPPED[path] = len(bad)
    return tuple(problems)


@lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether the Hugging Face hub answers (checked once, in 3 s at most: offline machines would
    otherwise spend about 25 s of retries per dataset)."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", ""):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


def read_hub(hub_id: str, config: str | None, split: str, parse: Builtin | Fields) -> list[Problem] | None:
    """Rows of one split of a hub data set, each read by `parse` (malformed ones skipped with a warning and
    counted; an error when every row is); None when the hub cannot be reached."""
    if not hub_reachable():
        return None
    try:
        from datasets import load_dataset

        rows = load_dataset(hub_id, config, split=split)
    except Exception as error:  # offline, gated, renamed: reported by the caller with the paths tried
        log.info("hub %s unavailable: %s", hub_id, str(error).splitlines()[0] if str(error) else type(error).__name__)
        return None
    problems = [parse(dict(row)) for row in rows]
    bad = [p for p in problems if isinstance(p, str)]
    if bad and len(bad) == len(problems):
        raise ReasoningLabError(f"hub {hub_id} ({split}): {len(bad)} of {len(problems)} rows are malformed (first: "
                                f"{bad[0]}); {parse.fix}")
    if bad:
        log.warning("hub %s: %d malformed rows skipped (%s)", hub_id, len(bad), bad[0])
        SKIPPED[f"hub:{hub_id}:{split}"] = len(bad)
    return [p for p in problems if not isinstance(p, str)]


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


# ----------------------------------------------------------------------------------------------
# Contamination guard
# ----------------------------------------------------------------------------------------------

WORD = re.compile(r"[a-z]+|\d+(?:[.,]\d+)*")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of normalised text: lower case, punctuation dropped, every number replaced by `#`
    (so templates that only change the numbers, like GSM-Symbolic's, still match)."""
    words = ["#" if w[0].isdigit() else w for w in WORD.findall(text.lower())]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def is_procedural(data_cfg: DictConfig, name: str) -> bool:
    return data_cfg.sets[name].source not in BENCHMARKS + OWN


def contamination_report(data_cfg: DictConfig, train_names: list[str], eval_names: list[str],
                         eval_data_cfg: DictConfig | None = None) -> dict:
    """`train_names` are sets of data.sets; `eval_names` are sources (what evaluation reads), drawn with
    `eval_data_cfg` (default: the same data settings; `stage=eval` passes its own against the settings a
    checkpoint recorded it was trained with).

    For each (training set, evaluation set) pair: how many training questions share an n-gram with
    an evaluation question (for two splits of one generator: how many questions are identical).

    Above `data.contamination.max_share` of a training set, `contamination.action=refuse` stops the run
    and `action=drop` removes the overlapping training questions (listed in `report["dropped"]`, counted
    per set); `data.allow_contamination=true` keeps everything. Evaluation sets that cannot be loaded
    are listed as skipped.
    """
    settings, n = data_cfg.contamination, data_cfg.contamination.ngram
    eval_data_cfg = eval_data_cfg if eval_data_cfg is not None else data_cfg
    eval_sets, skipped = {}, {}
    for name in eval_names:
        try:
            problems = source_rows(name, "test", eval_data_cfg)
            eval_sets[name] = ({p.question for p in problems}, set().union(*(ngrams(p.question, n) for p in problems)))
        except ReasoningLabError as error:
            skipped[name] = str(error)
    report = {"ngram": n, "max_share": settings.max_share, "action": settings.action, "pairs": {},
              "skipped_eval_sets": skipped, "dropped": {}}
    dropped: set[str] = set()
    for train_name in train_names:
        train = load_problems(data_cfg, train_name, "train")
        grams = [ngrams(p.question, n) for p in train]
        for eval_name, (questions, eval_grams) in eval_sets.items():
            if is_procedural(data_cfg, train_name) and data_cfg.sets[train_name].source == eval_name:
                # one generator's templates always share n-grams: its held-out rows must differ exactly
                hits = [p.question for p in train if p.question in questions]
            else:
                hits = [p.question for p, g in zip(train, grams) if g & eval_grams]
            share = len(hits) / max(len(train), 1)
            report["pairs"][f"{train_name}->{eval_name}"] = {"overlapping": len(hits), "rows": len(train),
                                                             "share": round(share, 4)}
            if share <= settings.max_share or data_cfg.allow_contamination:
                continue
            if settings.action == "refuse":
                raise ReasoningLabError(
                    f"training set {train_name} overlaps evaluation set {eval_name}: {len(hits)} of {len(train)} "
                    f"questions share a {n}-gram; remove it from training, set data.contamination.action=drop, "
                    f"or data.allow_contamination=true"
                )
            log.warning("dropping %d training questions of %s that overlap %s", len(hits), train_name, eval_name)
            report["dropped"][train_name] = report["dropped"].get(train_name, 0) + len(set(hits) - dropped)
            dropped |= set(hits)
    report["dropped_questions"] = sorted(dropped)
    return report


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

