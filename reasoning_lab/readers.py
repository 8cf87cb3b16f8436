"""Readers: benchmark rows and rows of a set defined in configuration -> `Problem`, from local JSONL or the hub.

Benchmarks (`gsm8k`, `aqua`, `strategyqa`) are parsed by `Builtin` (their row formats below); a set of your own by
`Fields` (which row field holds what, from `data.sets.<name>.fields`). A malformed row is skipped and counted
(`SKIPPED`, reported in the stages' metrics), unless more than `MAX_BAD_SHARE` of a file is malformed: then one
error names the file and the first bad row.

Difficulty:
- gsm8k: reasoning steps = calculator notes `<<...>>` in the solution (solution lines when it has none)
- aqua: non-empty rationale lines before the answer line
- strategyqa: length of the question's decomposition
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from omegaconf import DictConfig

from reasoning_lab.answers import KIND_ANSWERS, canonical_gold, canonical_number
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.problem import Problem

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
