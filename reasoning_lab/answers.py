"""Answer extraction and checking for numbers, multiple-choice letters and yes/no.

Strict mode reads the final answer only: the text after the last `</think>` (the whole text when there
is no think block; nothing when a `<think>` is never closed). It accepts `#### N`, `\\boxed{N}`,
`The answer is N`, `Answer: N`, or an answer region holding exactly one number; letters as `C`, `(C)`,
`C)`, `option C`, `Answer: C`, or the exact text of an option; yes/no also as true/false.
Lenient mode takes the last number / letter / yes-no anywhere in the text.
Votes over canonical answers (self-consistency): `majority_vote`, `weighted_vote` (each answer's summed weight),
`settled` (whether more samples can still change a vote: when `eval.adaptive_k` stops).

Every function here is total: any string gives a canonical answer or None, never an exception, and
runs in time linear in the text (no backtracking-prone patterns).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

KINDS = ("number", "choice", "yesno")
# what an answer of each kind looks like, for the one-line errors about a set's rows
KIND_ANSWERS = {"number": "a number, or text ending in '#### N'", "choice": "a letter A-E",
                "yesno": "yes, no, true or false"}

_NUMBER = r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s?/\s?\d+)?|-?\$?\.\d+"
NUMBER = re.compile(_NUMBER)
HASHES = re.compile(r"####\s*(" + _NUMBER + ")")
BOXED = re.compile(r"\\boxed\s*\{([^{}]{0,200}(?:\{[^{}]{0,50}\}[^{}]{0,50}){0,4})\}")
FRAC = re.compile(r"\\d?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
ANSWER_IS = re.compile(r"answer\s{0,3}(?:is|:|=)?\s{0,3}:?\s{0,3}(?:\*\*)?\s{0,3}(" + _NUMBER + ")", re.IGNORECASE)

LETTER_ALONE = re.compile(r"^\s*(?:\*\*)?\(?([A-E])\)?(?:\*\*)?\s*[.:)]?\s*$")
LETTER_LEAD = re.compile(r"^\s*(?:\*\*)?(?:\(([A-E])\)|([A-E])[).:](?:\s|$))")
LETTER_KEYWORD = re.compile(
    r"(?:answer|option|choice)\s{0,3}(?:is|:)?\s{0,3}:?\s{0,3}(?:option\s{1,3})?(?:\*\*)?(?:\(([A-Ea-e])\)|([A-E])\b)",
    re.IGNORECASE,
)
LETTER_ANY = re.compile(r"\(([A-E])\)|\b([A-E])\)|\b([A-E])\b")

YES_NO = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
YES_NO_KEYWORD = re.compile(r"answer\s{0,3}(?:is|:)?\s{0,3}:?\s{0,3}(?:\*\*)?(yes|no|true|false)\b", re.IGNORECASE)


def final_region(text: str) -> str | None:
    """The part of a completion that holds the final answer (None when a <think> block is unclosed)."""
    close = text.rfind("</think>")
    if close >= 0:
        return text[close + len("</think>") :]
    if "<think>" in text:
        return None
    return text


def canonical_number(raw: str) -> str | None:
    """`"1,000"` -> `"1000"`, `"3.50"` -> `"3.5"`, `"$-2"` -> `"-2"`, `"1/4"` -> `"0.25"`, `"1/3"` -> `"1/3"`."""
    text = raw.replace(",", "").replace("$", "").replace(" ", "").replace("\u2212", "-")
    if len(text) > 1000:  # not an answer; Fraction would also hit Python's 4300-digit conversion limit
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    while denominator % 2 == 0:
        denominator //= 2
    while denominator % 5 == 0:
        denominator //= 5
    if denominator != 1 or value.denominator > 10**6:  # not a short exact decimal
        return f"{value.numerator}/{value.denominator}"
    return format(value.numerator / value.denominator, ".6f").rstrip("0").rstrip(".")


def _numbers(text: str) -> list[str]:
    text = FRAC.sub(r"\1/\2", text.replace("\u2212", "-"))
    return [n for n in (canonical_number(m.group(0)) for m in NUMBER.finditer(text)) if n is not None]


def _number(region: str, lenient: bool) -> str | None:
    for pattern in (HASHES, ANSWER_IS):
        matches = list(pattern.finditer(region))
        if matches:
            return canonical_number(matches[-1].group(1))
    boxed = list(BOXED.finditer(region))
    if boxed:
        inside = _numbers(boxed[-1].group(1))
        return inside[-1] if inside else None
    numbers = _numbers(region)
    if lenient:
        return numbers[-1] if numbers else None
    return numbers[0] if len(numbers) == 1 else None


def _option_texts(options: list[str] | None) -> dict[str, str]:
    texts = {}
    for option in options or []:
        match = re.match(r"^\s*\(?([A-E])\)\s*(.*)$", option, re.DOTALL)
        if match:
            texts[_normal(match.group(2))] = match.group(1)
    return texts


def _normal(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


def _choice(region: str, lenient: bool, options: list[str] | None) -> str | None:
    match = LETTER_ALONE.match(region) if len(region) < 64 else None
    match = match or LETTER_LEAD.match(region)
    if match:
        return next(g for g in match.groups() if g).upper()
    keyword = list(LETTER_KEYWORD.finditer(region))
    if keyword:
        return next(g for g in keyword[-1].groups() if g).upper()
    by_text = _option_texts(options).get(_normal(region)) if len(region) < 1000 else None
    if by_text:
        return by_text
    if lenient:
        letters = list(LETTER_ANY.finditer(region))
        if letters:
            return next(g for g in letters[-1].groups() if g)
    return None


def _yesno(region: str, lenient: bool) -> str | None:
    keyword = list(YES_NO_KEYWORD.finditer(region))
    if keyword:
        word = keyword[-1].group(1).lower()
    else:
        words = YES_NO.findall(region) if lenient else YES_NO.findall(region[:40].strip().split("\n")[0])[:1]
        if not words or (not lenient and not region.strip().lower().startswith(words[0].lower())):
            return None
        word = words[-1].lower()
    return "yes" if word in ("yes", "true") else "no"


def extract_answer(text: str, kind: str, options: list[str] | None = None, lenient: bool = False) -> str | None:
    """The canonical final answer of `text` ("1234", "-2.5", "C", "yes"), or None when there is none.

    `kind` is number | choice | yesno. `options` (AQuA's "A)..." strings) lets an exact option text
    count as its letter. `lenient=True` searches the whole text for the last candidate instead.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if not isinstance(text, str):
        return None
    region = text if lenient else final_region(text)
    if region is None:
        return None
    if kind == "number":
        return _number(region, lenient)
    if kind == "choice":
        return _choice(region, lenient, options)
    return _yesno(region, lenient)


def canonical_gold(gold: str, kind: str) -> str | None:
    """A dataset's gold answer in canonical form (GSM8K's "1,000", AQuA's "C", StrategyQA's True)."""
    if kind == "number":
        return canonical_number(str(gold))
    if kind == "choice":
        letter = str(gold).strip().upper()
        return letter if len(letter) == 1 and letter in "ABCDE" else None
    value = str(gold).strip().lower()
    return {"yes": "yes", "true": "yes", "no": "no", "false": "no"}.get(value)


def same_answer(predicted: str | None, gold: str | None, kind: str) -> bool:
    """Two canonical answers agree: numbers within a small tolerance, others exactly."""
    if predicted is None or gold is None:
        return False
    if kind != "number":
        return predicted == gold
    try:
        a, b = float(Fraction(predicted)), float(Fraction(gold))
    except (ValueError, ZeroDivisionError, OverflowError):
        return False
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def is_correct(text: str, gold: str, kind: str, options: list[str] | None = None, lenient: bool = False) -> bool:
    """Whether the final answer of `text` matches the gold answer."""
    return same_answer(extract_answer(text, kind, options, lenient), canonical_gold(gold, kind), kind)


def vote_totals(answers: list[str | None], weights: list[float]) -> dict[str, float]:
    """Each canonical answer's summed weight, in the order first seen (None is no answer and gets none)."""
    totals: dict[str, float] = {}
    for answer, weight in zip(answers, weights):
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + weight
    return totals


def weighted_vote(answers: list[str | None], weights: list[float]) -> str | None:
    """The canonical answer with the largest summed weight; ties go to the one seen first; None only if all are
    None."""
    totals = vote_totals(answers, weights)
    if not totals:
        return None
    best = max(totals.values())
    return next(answer for answer, total in totals.items() if total == best)


def majority_vote(answers: list[str | None]) -> str | None:
    """The most common canonical answer; ties go to the one seen first; None only if all are None."""
    return weighted_vote(answers, [1.0] * len(answers))


def settled(answers: list[str | None], weights: list[float], left: int) -> bool:
    """Whether more samples, `left` of them of weight at most 1 each, can no longer change the vote: the leader's
    weight is above the runner-up's (0 without one) plus `left`."""
    ranked = sorted(vote_totals(answers, weights).values(), reverse=True) + [0.0, 0.0]
    return ranked[0] > ranked[1] + left
