"""Data: every source becomes the same chat examples, then tokens with a loss mask on the completion.

One example is
    {"prompt": [system?, user], "completion": [assistant], "answer": gold, "kind": number|choice|yesno,
     "difficulty": float, "source": name}
where the assistant says `<think>\\n{reasoning}\\n</think>\\n{answer}` after the reasoning system prompt,
and only `{answer}` when the example has no system prompt: the model learns when to reason.

Generic reasoning (`generic`) comes from reasoning-gym's procedural generators; the worked reasoning
is built here from each problem's parameters. Its difficulty is the generator level (1 = easiest).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import asdict, dataclass

from datasets import Dataset
from omegaconf import DictConfig
from tqdm.auto import tqdm

from reasoning_lab.config import ReasoningLabError

log = logging.getLogger(__name__)


@dataclass
class Problem:
    question: str
    # worked reasoning, without the final answer line
    reasoning: str
    # canonical gold answer ("42", "C", "yes")
    answer: str
    # number | choice | yesno
    kind: str
    difficulty: float
    source: str


# ----------------------------------------------------------------------------------------------
# Generic reasoning from reasoning-gym, with worked reasoning built from each problem's parameters
# ----------------------------------------------------------------------------------------------

CHAIN_SUM_LEVELS = {1: dict(min_terms=2, max_terms=3, min_digits=1, max_digits=1),
                    2: dict(min_terms=3, max_terms=4, min_digits=1, max_digits=2),
                    3: dict(min_terms=4, max_terms=5, min_digits=2, max_digits=2)}
LEG_COUNTING_LEVELS = {1: dict(min_animals=2, max_animals=2, max_instances=5),
                       2: dict(min_animals=2, max_animals=3, max_instances=9),
                       3: dict(min_animals=3, max_animals=4, max_instances=15)}


def running_sum(expression: str) -> tuple[list[str], int]:
    """`"4 - 1 - 7"` -> (["4 - 1 = 3", "3 - 7 = -4"], -4): one line per operation, left to right."""
    tokens = expression.split()
    total, lines = int(tokens[0]), []
    for op, value in zip(tokens[1::2], tokens[2::2]):
        new = total + int(value) if op == "+" else total - int(value)
        lines.append(f"{total} {op} {value} = {new}")
        total = new
    return lines, total


def chain_sum(level: int, size: int, seed: int) -> list[Problem]:
    import reasoning_gym

    problems = []
    for row in reasoning_gym.create_dataset("chain_sum", size=size, seed=seed, **CHAIN_SUM_LEVELS[level]):
        lines, total = running_sum(row["metadata"]["expression"])
        assert str(total) == row["answer"], row
        problems.append(Problem(row["question"], "\n".join(lines), row["answer"], "number", level, "generic"))
    return problems


def leg_counting(level: int, size: int, seed: int) -> list[Problem]:
    import reasoning_gym
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    problems = []
    for row in reasoning_gym.create_dataset("leg_counting", size=size, seed=seed, **LEG_COUNTING_LEVELS[level]):
        animals = row["metadata"]["animals"]
        lines = [f"{count} x {ANIMALS[name]} = {count * ANIMALS[name]} legs ({name})" for name, count in animals.items()]
        parts = [count * ANIMALS[name] for name, count in animals.items()]
        total = sum(parts)
        lines.append(f"{' + '.join(map(str, parts))} = {total}")
        assert str(total) == row["answer"], row
        question = row["question"].strip().split("\n\n")[-1]
        problems.append(Problem(question, "\n".join(lines), row["answer"], "number", level, "generic"))
    return problems


def compare_sum(level: int, size: int, seed: int) -> list[Problem]:
    """Yes/no: is the value of a chain sum larger than a threshold near it?"""
    import reasoning_gym

    rng = random.Random(seed)
    problems = []
    for row in reasoning_gym.create_dataset("chain_sum", size=size, seed=seed + 1, **CHAIN_SUM_LEVELS[level]):
        expression = row["metadata"]["expression"]
        lines, total = running_sum(expression)
        threshold = total + rng.choice([-1, 1]) * rng.randint(1, 3 * level)
        larger = total > threshold
        lines.append(f"{total} is {'greater' if larger else 'less'} than {threshold}.")
        question = f"Is {expression} greater than {threshold}? Answer yes or no."
        problems.append(Problem(question, "\n".join(lines), "yes" if larger else "no", "yesno", level, "generic"))
    return problems


GENERIC_TASKS = {"chain_sum": chain_sum, "leg_counting": leg_counting, "compare_sum": compare_sum}


def generic_problems(settings: DictConfig, size_per_level: int, seed: int) -> list[Problem]:
    unknown = set(settings.tasks) - set(GENERIC_TASKS)
    if unknown:
        raise ReasoningLabError(f"data.generic.tasks has unknown tasks {sorted(unknown)}; known: {sorted(GENERIC_TASKS)}")
    problems = []
    jobs = [(task, level) for task in settings.tasks for level in settings.levels]
    for i, (task, level) in enumerate(tqdm(jobs, desc="generating generic reasoning", leave=False)):
        if level not in CHAIN_SUM_LEVELS:
            raise ReasoningLabError(f"data.generic.levels has {level}; levels are {sorted(CHAIN_SUM_LEVELS)}")
        problems += GENERIC_TASKS[task](level, size_per_level, seed * 1000 + i)
    return problems


# ----------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------


def load_problems(data_cfg: DictConfig, name: str, split: str) -> list[Problem]:
    """Problems of one named set. `split` is train | val (held out from train, disjoint, seeded)."""
    if name == "generic":
        settings = data_cfg.generic
        if split == "train":
            return generic_problems(settings, settings.size_per_level, data_cfg.seed)
        per_level = -(-data_cfg.val_size // (len(settings.tasks) * len(settings.levels)))
        train_questions = {p.question for p in load_problems(data_cfg, name, "train")}
        held_out = generic_problems(settings, per_level * 2, data_cfg.seed + 7919)
        fresh = [p for p in held_out if p.question not in train_questions]
        return random.Random(data_cfg.seed).sample(fresh, min(data_cfg.val_size, len(fresh)))
    raise ReasoningLabError(f"unknown data set {name!r} in data.train; known: generic")


def format_example(problem: Problem, reason: bool, system_prompt: str) -> dict:
    """The chat example of a problem: with the reasoning prompt and a <think> block, or answered directly."""
    if reason:
        prompt = [{"role": "system", "content": system_prompt}, {"role": "user", "content": problem.question}]
        target = f"<think>\n{problem.reasoning}\n</think>\n{problem.answer}"
    else:
        prompt = [{"role": "user", "content": problem.question}]
        target = problem.answer
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": target}],
        **{k: v for k, v in asdict(problem).items() if k not in ("question", "reasoning")},
    }


def build_examples(data_cfg: DictConfig, names: list[str], split: str) -> list[dict]:
    """Chat examples of several sets; a seeded `data.direct_share` of them answer without reasoning."""
    rng = random.Random(data_cfg.seed)
    examples = []
    for name in names:
        for problem in load_problems(data_cfg, name, split):
            reason = rng.random() >= data_cfg.direct_share
            examples.append(format_example(problem, reason, data_cfg.system_prompt))
    rng.shuffle(examples)
    return examples


def tokenize(examples: list[dict], tokenizer, max_length: int, overflow: str) -> tuple[Dataset, dict]:
    """Token ids and a completion mask per example, through the model's chat template.

    Nothing is cut silently: examples longer than `max_length` are dropped (overflow=drop) or cut
    (overflow=truncate), and counted per source in the returned stats.
    """
    rows = {"input_ids": [], "completion_mask": []}
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
    stats = {"examples": sum(kept.values()), "per_source": dict(kept), "overlong": dict(overlong),
             "overflow": overflow, "max_length": max_length}
    if overlong:
        log.warning("%d examples longer than data.max_length=%d were %s: %s", sum(overlong.values()),
                    max_length, "dropped" if overflow == "drop" else "truncated", dict(overlong))
    if not rows["input_ids"]:
        raise ReasoningLabError(f"no example fits data.max_length={max_length}; raise data.max_length")
    return Dataset.from_dict(rows), stats
