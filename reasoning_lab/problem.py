"""A problem: the unit every data source yields and every evaluation scores."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Problem:
    question: str
    # worked reasoning, without the final answer
    reasoning: str
    # canonical gold answer ("42", "C", "yes")
    answer: str
    # number | choice | yesno
    kind: str
    difficulty: float
    source: str
