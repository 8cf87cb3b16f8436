"""A problem: the unit every data source yields and every evaluation scores, and the chat prompt it is asked in."""

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
    # a choice question's options ("A)12", ..., "E)20"), also written into `question` for the model to read
    options: list[str] | None = None


def chat_prompt(question: str, system_prompt: str | None) -> list[dict]:
    """The chat messages a question is asked in: with the reasoning system prompt, or (None) answered directly."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    return system + [{"role": "user", "content": question}]
