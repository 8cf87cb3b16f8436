"""Verifiable rewards for RL, as plain functions with TRL's reward signature.

Each function takes the completions of a batch plus the dataset's columns as keyword lists
(`answer`: the gold answer, `kind`: number | choice | yesno, `options`: AQuA's option strings or
None) and returns one float per completion. All are total: any completion (empty, huge, binary
junk, unbalanced tags, a chat message instead of a string) gives a finite number in the documented
range and never raises.

| name           | range        | what it pays                                                       |
|----------------|--------------|--------------------------------------------------------------------|
| correctness    | {0, 1}       | 1.0 when the answer after a closed `</think>` equals the gold answer |
| partial_credit | [0, 0.5]     | some credit for a wrong or malformed final answer, see below        |
| format         | [-1, 1]      | 1.0 for `<think>...</think>` + a final answer, penalties below      |

Partial credit (only when `correctness` is 0; the largest component applies):
- 0.3 `gold_in_reasoning`: the gold number appears in the reasoning but the final answer is wrong or missing
- 0.3 `lenient_match`: the right answer can be found by the lenient extractor (e.g. the right option
  letter in a malformed answer, "so it is yes" instead of "yes")
- 0.2 `close_number`: the final number is within 10% of the gold number

Format: 1.0 for exactly one closed `<think>` block followed by a non-empty answer; otherwise 0.0
minus 0.5 for each of: no think block at all (an answer without reasoning), no final answer (empty,
or the think block never closed), several think blocks, cut off by the token budget (clipped at -1.0).
Correctness asks for the think block, and its absence costs format points: when a bare answer was paid
like a reasoned one, GRPO learned to answer every yes/no question of the generic set with "yes" (its more
frequent gold answer) and held-out accuracy rose from guessing (experiments/results/rl.md).

The gold answer is the dataset's `answer` column, never the prompt.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from reasoning_lab.answers import (
    NUMBER,
    canonical_gold,
    canonical_number,
    extract_answer,
    final_region,
    same_answer,
)
from reasoning_lab.errors import ReasoningLabError

GOLD_IN_REASONING = 0.3
LENIENT_MATCH = 0.3
CLOSE_NUMBER = 0.2
CLOSE_TOLERANCE = 0.10
FORMAT_OK = 1.0
FORMAT_PENALTY = 0.5
MAX_CHARS = 20_000  # longer completions are judged on their first and last 10k characters


def text_of(completion) -> str:
    """The text of a completion: a string, or TRL's conversational `[{"role": ..., "content": ...}]`."""
    if isinstance(completion, list):
        completion = "".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in completion)
    if not isinstance(completion, str):
        completion = "" if completion is None else str(completion)
    if len(completion) > MAX_CHARS:
        completion = completion[: MAX_CHARS // 2] + completion[-MAX_CHARS // 2:]
    return completion


def _column(values, i: int, default=None):
    if values is None:
        return default
    if isinstance(values, (list, tuple)):
        return values[i] if i < len(values) else default
    return values


def _kind(value) -> str:
    return value if value in ("number", "choice", "yesno") else "number"


def _options(value) -> list[str] | None:
    return [str(o) for o in value] if isinstance(value, (list, tuple)) and value else None


def _correct(text: str, gold, kind: str, options, lenient: bool) -> bool:
    try:
        predicted = extract_answer(text, kind, options, lenient)
        return same_answer(predicted, canonical_gold(str(gold), kind), kind)
    except Exception:  # noqa: BLE001 - a reward never raises; an unreadable answer earns nothing
        return False


def _reasoned_correct(text: str, gold, kind: str, options) -> bool:
    """The answer after a closed think block is right (a bare answer, even a right one, is a guess)."""
    return "</think>" in text and _correct(text, gold, kind, options, lenient=False)


def correctness(completions, answer=None, kind=None, options=None, **kwargs) -> list[float]:
    """1.0 when the answer after `</think>` equals the gold `answer`, else 0.0."""
    return [float(_reasoned_correct(text_of(c), _column(answer, i, ""), _kind(_column(kind, i)),
                                    _options(_column(options, i))))
            for i, c in enumerate(completions)]


def _close(predicted: str | None, gold: str | None) -> bool:
    try:
        a, b = float(Fraction(predicted)), float(Fraction(gold))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return False
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= CLOSE_TOLERANCE * max(abs(b), 1.0)


def partial_components(text: str, gold, kind: str, options) -> dict[str, float]:
    """The partial-credit components a completion earns, by name (none when `correctness` pays it)."""
    if _reasoned_correct(text, gold, kind, options):
        return {}
    earned = {}
    if _correct(text, gold, kind, options, lenient=True):
        earned["lenient_match"] = LENIENT_MATCH
    if kind == "number":
        canonical = canonical_number(str(gold))
        region = final_region(text)
        reasoning = text[: text.rfind("</think>")] if "</think>" in text else text
        if canonical is not None and any(
                same_answer(canonical_number(m.group(0)), canonical, kind) for m in NUMBER.finditer(reasoning)):
            earned["gold_in_reasoning"] = GOLD_IN_REASONING
        if region is not None and _close(extract_answer(region, kind), canonical):
            earned["close_number"] = CLOSE_NUMBER
    return earned


def _partial(text: str, gold, kind: str, options) -> float:
    return max(partial_components(text, gold, kind, options).values(), default=0.0)


def partial_credit(completions, answer=None, kind=None, options=None, **kwargs) -> list[float]:
    """Credit in [0, 0.5] for near misses when the final answer is not correct (see module docstring)."""
    out = []
    for i, c in enumerate(completions):
        try:
            out.append(_partial(text_of(c), _column(answer, i, ""), _kind(_column(kind, i)),
                                _options(_column(options, i))))
        except Exception:  # noqa: BLE001 - a reward never raises
            out.append(0.0)
    return out


def _cut_off(ids, max_tokens: int | None, eos_ids: set[int]) -> bool:
    if not max_tokens or not isinstance(ids, (list, tuple)) or len(ids) < max_tokens:
        return False
    return not (ids and ids[-1] in eos_ids)


def format_score(text: str, cut_off: bool = False) -> float:
    opened, closed = text.count("<think>"), text.count("</think>")
    region = final_region(text)
    answered = bool(region and region.strip() and "<think>" not in region)
    if opened == 1 and closed == 1 and text.index("<think>") < text.index("</think>") and answered and not cut_off:
        return FORMAT_OK
    penalty = FORMAT_PENALTY * (int(opened == 0) + int(not answered) + int(opened > 1 or closed > 1) + int(cut_off))
    return max(-1.0, -penalty)


def format(completions, completion_ids=None, max_completion_length=None, eos_token_ids=(), **kwargs) -> list[float]:  # noqa: A001
    """1.0 for one closed think block and a final answer; penalties in [-1, 0] otherwise."""
    eos = set(eos_token_ids or ())
    return [format_score(text_of(c), _cut_off(_column(completion_ids, i), max_completion_length, eos))
            for i, c in enumerate(completions)]


REWARDS: dict[str, Callable] = {"correctness": correctness, "partial_credit": partial_credit, "format": format}
RANGES = {"correctness": (0.0, 1.0), "partial_credit": (0.0, 0.5), "format": (-1.0, 1.0)}


def reward_function(name: str) -> Callable:
    """A reward by name: a built-in one (`REWARDS`), or yours as `module:function` (a module on the path, or a
    `path/to/file.py:function`) taking TRL's reward arguments: `completions` plus keyword lists of the prompts and
    the data set's columns (`answer`, `kind`, `options`, ...), hence a `**kwargs` parameter; it returns one float
    per completion. Anything else: one line naming the entry and the fix."""
    if name in REWARDS:
        return REWARDS[name]
    module_name, colon, attr = name.rpartition(":")
    if not colon or not module_name or not attr:
        raise ReasoningLabError(f"rl.rewards: unknown reward {name!r}; use one of {', '.join(REWARDS)} or "
                                "module:function (your own reward function)")
    try:
        if module_name.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if spec is None or not Path(module_name).is_file():
                raise ModuleNotFoundError(f"no file {module_name}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # a module beside the command, as `python -m` would find it
            module = importlib.import_module(module_name)
    except Exception as error:  # a missing module, or one that fails on import
        raise ReasoningLabError(f"rl.rewards: {name!r} cannot be imported ({type(error).__name__}: {error}); put "
                                f"{module_name} where Python finds it (the working directory) or write "
                                "path/to/file.py:function") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise ReasoningLabError(f"rl.rewards: {module_name} has no function {attr!r}; name one of its functions")
    params = inspect.signature(func).parameters.values()
    takes_completions = any(p.name == "completions" or p.kind == p.VAR_KEYWORD for p in params)
    if not takes_completions or not any(p.kind == p.VAR_KEYWORD for p in params):
        raise ReasoningLabError(f"rl.rewards: {name} has the signature {inspect.signature(func)}; TRL calls a reward "
                                "as f(prompts=..., completions=..., **columns): give it the parameters "
                                "(completions, **kwargs)")
    return func


def reward_functions(names: list[str], max_completion_length: int | None = None,
                     eos_token_ids: tuple[int, ...] = ()) -> list[Callable]:
    """The named reward functions, with the token budget bound (for the cut-off penalty), each keeping
    its name (TRL logs `rewards/<name>/mean`; yours log under the function's name)."""
    funcs = []
    for name in names:
        base = reward_function(name)
        if name not in REWARDS:  # yours: called as TRL calls it
            funcs.append(base)
            continue

        def bound(prompts=None, completions=(), _base=base, **kwargs):
            kwargs.setdefault("max_completion_length", max_completion_length)
            kwargs.setdefault("eos_token_ids", eos_token_ids)
            return _base(completions, **kwargs)

        bound.__name__ = name
        funcs.append(bound)
    return funcs


def reward_table(completions: list[dict], weights: dict[str, float]) -> dict:
    """What each reward component pays on real completions (`text`, `gold`, `kind`, `options`, `cut_off`):
    per component the share of completions it pays (non-zero) and its mean; per outcome (correct, near miss:
    wrong but with partial credit, wrong: well formed without credit, malformed: format below 1) the share and
    mean weighted total (`weights`: reward name -> weight, as in rl.rewards)."""
    components: dict[str, list[float]] = {name: [] for name in ("correctness", "partial_credit", "format",
                                                                 "lenient_match", "gold_in_reasoning", "close_number")}
    outcomes: dict[str, list[float]] = {"correct": [], "near miss": [], "wrong": [], "malformed": []}
    for c in completions:
        text, kind, options = text_of(c["text"]), _kind(c.get("kind")), _options(c.get("options"))
        parts = partial_components(text, c["gold"], kind, options)
        values = {"correctness": float(_reasoned_correct(text, c["gold"], kind, options)),
                  "partial_credit": max(parts.values(), default=0.0),
                  "format": format_score(text, bool(c.get("cut_off")))}
        for name in ("lenient_match", "gold_in_reasoning", "close_number"):
            components[name].append(parts.get(name, 0.0))
        for name, v in values.items():
            components[name].append(v)
        total = sum(weights.get(name, 0.0) * v for name, v in values.items())
        outcome = ("correct" if values["correctness"] else "malformed" if values["format"] < FORMAT_OK
                   else "near miss" if values["partial_credit"] else "wrong")
        outcomes[outcome].append(total)
    n = max(len(completions), 1)
    return {"n": len(completions),
            "components": {name: {"share_paid": round(sum(v != 0 for v in vs) / n, 3),
                                  "mean": round(sum(vs) / n, 3)} for name, vs in components.items()},
            "outcomes": {name: {"share": round(len(vs) / n, 3),
                                "mean_total": round(sum(vs) / len(vs), 3) if vs else None}
                         for name, vs in outcomes.items()}}
