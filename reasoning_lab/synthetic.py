"""Procedural data that needs no download: generic reasoning and stand-ins for the three benchmarks.

- `generic`: reasoning-gym generators (chain sums, leg counting, a yes/no comparison built on chain sums,
  and optionally `gsm_symbolic`), with worked reasoning built here from each problem's parameters.
  Difficulty = generator level (1 = fewest terms and digits).
- `synthetic_gsm8k`: multi-step arithmetic word problems; difficulty = number of operations (1-4).
- `synthetic_aqua`: five-option multiple choice (A-E) with plausible distractors; difficulty = steps (1-3).
- `synthetic_strategyqa`: yes/no questions answered from stated facts; difficulty = decomposition length.
Operands are kept to what a 135M model can learn to compute in a few dozen CPU steps: one- and two-digit
sums and differences, doubling, halving, products of a two-digit number by 2-5, results below 200.
These stand-ins are synthetic: they let every stage run offline, and are never reported as the benchmarks.
Every generator is seeded: the same (size, seed) gives the same problems.
"""

from __future__ import annotations

import random

from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.problem import Problem

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


# ----------------------------------------------------------------------------------------------
# generic: reasoning-gym generators
# ----------------------------------------------------------------------------------------------


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
        parts = [count * ANIMALS[name] for name, count in animals.items()]
        lines = [f"{count} x {ANIMALS[name]} = {count * ANIMALS[name]} legs ({name})" for name, count in animals.items()]
        lines.append(f"{' + '.join(map(str, parts))} = {sum(parts)}")
        assert str(sum(parts)) == row["answer"], row
        question = row["question"].strip().split("\n\n")[-1]
        problems.append(Problem(question, "\n".join(lines), row["answer"], "number", level, "generic"))
    return problems


def compare_sum(level: int, size: int, seed: int) -> list[Problem]:
    """Yes/no: is the value of a chain sum greater than a threshold near it?"""
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


def gsm_symbolic(level: int, size: int, seed: int) -> list[Problem]:
    """reasoning-gym's GSM-Symbolic: templates made from GSM8K *test* questions (the guard refuses it
    next to a GSM8K evaluation unless data.allow_contamination=true)."""
    import reasoning_gym

    problems = []
    for row in reasoning_gym.create_dataset("gsm_symbolic", size=size, seed=seed):
        reasoning = row["metadata"].get("answer_cot") or ""
        reasoning = "\n".join(line for line in reasoning.splitlines() if not line.startswith("####")).strip()
        problems.append(Problem(row["question"], reasoning, str(row["answer"]), "number", level, "generic"))
    return problems


GENERIC_TASKS = {"chain_sum": chain_sum, "leg_counting": leg_counting, "compare_sum": compare_sum,
                 "gsm_symbolic": gsm_symbolic}


def generic(tasks: list[str], levels: list[int], size_per_level: int, seed: int) -> list[Problem]:
    from tqdm.auto import tqdm

    unknown = set(tasks) - set(GENERIC_TASKS)
    if unknown:
        raise ReasoningLabError(f"data.generic.tasks has unknown tasks {sorted(unknown)}; known: {sorted(GENERIC_TASKS)}")
    bad_levels = set(levels) - set(CHAIN_SUM_LEVELS)
    if bad_levels:
        raise ReasoningLabError(f"data.generic.levels has {sorted(bad_levels)}; levels are {sorted(CHAIN_SUM_LEVELS)}")
    jobs = [(task, level) for task in tasks for level in levels]
    problems = []
    for i, (task, level) in enumerate(tqdm(jobs, desc="generating generic reasoning", leave=False)):
        problems += GENERIC_TASKS[task](level, size_per_level, seed * 1000 + i)
    return problems


# ----------------------------------------------------------------------------------------------
# synthetic_gsm8k: multi-step word problems
# ----------------------------------------------------------------------------------------------

NAMES = [("Maria", "she"), ("Tom", "he"), ("Aisha", "she"), ("Kenji", "he"), ("Lena", "she"), ("Omar", "he"),
         ("Sofia", "she"), ("Ravi", "he")]
ITEMS = ["apples", "stickers", "marbles", "books", "cookies", "pencils", "stamps", "shells"]
FRIENDS = ["a friend", "her brother", "his sister", "a neighbour", "the school"]


def synthetic_gsm8k(size: int, seed: int) -> list[Problem]:
    rng = random.Random(seed)
    problems = []
    for _ in range(size):
        name, pronoun = rng.choice(NAMES)
        item = rng.choice(ITEMS)
        steps = rng.randint(1, 4)
        value = rng.randint(3, 30)
        sentences = [f"{name} has {value} {item}."]
        lines = []
        for step in range(steps):
            last = step == steps - 1
            op = rng.choice(["add", "sub", "mul", "div"] + (["price"] if last else []))
            if op == "add":
                b = rng.randint(2, 20)
                sentences.append(f"{pronoun.capitalize()} gets {b} more {item}.")
                lines.append(f"gets {b} more: {value} + {b} = {value + b}")
                value += b
            elif op == "sub" and value > 3:
                b = rng.randint(1, value - 1)
                sentences.append(f"{pronoun.capitalize()} gives {b} {item} to {rng.choice(FRIENDS)}.")
                lines.append(f"gives {b} away: {value} - {b} = {value - b}")
                value -= b
            elif op == "div" and value % 2 == 0:
                k = 2
                sentences.append(f"{pronoun.capitalize()} splits them equally into {k} boxes and keeps one box.")
                lines.append(f"keeps one of {k} boxes: {value} / {k} = {value // k}")
                value //= k
            elif op == "price" and value <= 40:
                cost = rng.randint(2, 5)
                sentences.append(f"Each of the {item} is worth ${cost}.")
                lines.append(f"${cost} each: {value} x {cost} = {value * cost}")
                value *= cost
                question = f"How many dollars are all of {name}'s {item} worth?"
                break
            elif value <= 60:
                k = rng.choice([2, 3]) if value <= 30 else 2
                sentences.append(f"Then the number of {item} {pronoun} has {'doubles' if k == 2 else 'triples'}.")
                lines.append(f"{'doubles' if k == 2 else 'triples'}: {value} x {k} = {value * k}")
                value *= k
            else:
                b = rng.randint(1, 9)
                sentences.append(f"{pronoun.capitalize()} gets {b} more {item}.")
                lines.append(f"gets {b} more: {value} + {b} = {value + b}")
                value += b
        else:
            question = f"How many {item} does {name} have now?"
        text = " ".join(sentences + [question])
        problems.append(Problem(text, "\n".join(lines), str(value), "number", len(lines), "synthetic_gsm8k"))
    return problems


# ----------------------------------------------------------------------------------------------
# synthetic_aqua: five options A-E
# ----------------------------------------------------------------------------------------------


def _options(rng: random.Random, correct: int, near: list[int]) -> tuple[list[str], str]:
    """Five distinct positive options: the correct value, plausible mistakes, then neighbours."""
    values = [correct]
    for v in near + [correct + d for d in (-10, 10, -5, 5, -2, 2, 1, -1, 20)]:
        if v > 0 and v not in values and len(values) < 5:
            values.append(v)
    rng.shuffle(values)
    letters = "ABCDE"
    return [f"{letters[i]}){v}" for i, v in enumerate(values)], letters[values.index(correct)]


def synthetic_aqua(size: int, seed: int) -> list[Problem]:
    rng = random.Random(seed)
    problems = []
    for _ in range(size):
        kind = rng.choice(["speed", "percent", "discount", "ratio", "average"])
        if kind == "speed":
            speed, hours = rng.randint(3, 20), rng.randint(2, 5)
            question = f"A train travels {speed * hours} km in {hours} hours at a constant speed. What is its speed in km/h?"
            lines = [f"Speed = distance / time = {speed * hours} / {hours} = {speed} km/h."]
            answer, near = speed, [speed * hours, speed + hours]
        elif kind == "percent":
            p, n = rng.choice([10, 50]), rng.randint(1, 9) * 20
            answer = n * p // 100
            question = f"What is {p}% of {n}?"
            lines = [f"{p}% of {n} = {n} x {p} / 100 = {answer}."]
            near = [n - answer, answer * 2]
        elif kind == "discount":
            p, cost = rng.choice([10, 50]), rng.randint(1, 9) * 20
            off = cost * p // 100
            answer = cost - off
            question = f"A coat costs ${cost}. It is sold at {p}% off. What is the sale price in dollars?"
            lines = [f"The discount is {cost} x {p} / 100 = {off} dollars.", f"The sale price is {cost} - {off} = {answer}."]
            near = [off, cost + off]
        elif kind == "ratio":
            r1, r2, unit = rng.randint(1, 4), rng.randint(1, 4), rng.randint(2, 9)
            total = (r1 + r2) * unit
            answer = r1 * unit
            question = f"Ann and Ben share ${total} in the ratio {r1}:{r2}. How many dollars does Ann get?"
            # the first line opens with the question's own words: with "There are ... parts." the trained model
            # began 20 of 23 ratio answers with the answer line and repeated it (experiments/results/default_run.md)
            lines = [f"Ann and Ben have {r1} + {r2} = {r1 + r2} parts.", f"One part is {total} / {r1 + r2} = {unit}.",
                     f"Ann gets {r1} x {unit} = {answer}."]
            near = [r2 * unit, total - unit]
        else:
            k, mean = rng.randint(2, 4), rng.randint(5, 20)
            answer = mean + rng.randint(1, 3)
            x = answer * (k + 1) - k * mean
            question = f"The average of {k} numbers is {mean}. A number {x} is added. What is the new average?"
            lines = [f"The total of the {k} numbers is {k} x {mean} = {k * mean}.",
                     f"With {x} added the total is {k * mean + x}.", f"The new average is {k * mean + x} / {k + 1} = {answer}."]
            near = [(mean + x) // 2 if (mean + x) // 2 != answer else mean, x]
        options, letter = _options(rng, answer, near)
        text = question + "\nOptions: " + " ".join(options)
        problems.append(Problem(text, "\n".join(lines) + f"\nThe answer is {answer}, option {letter}.", letter,
                                "choice", len(lines), "synthetic_aqua", options))
    return problems


# ----------------------------------------------------------------------------------------------
# synthetic_strategyqa: yes/no from facts
# ----------------------------------------------------------------------------------------------

LEGS = {"spider": 8, "dog": 4, "chicken": 2, "ant": 6, "crab": 10, "starfish": 5, "horse": 4, "snake": 0, "bee": 6,
        "cat": 4, "duck": 2, "octopus": 8, "fish": 0, "cow": 4, "beetle": 6, "goat": 4}


def compared(a: int, b: int) -> str:
    """The comparison line of a yes/no reasoning, worded as generic's compare_sum words it ("greater" goes with
    yes there); every question puts first the quantity whose being greater means yes."""
    return f"{a} is {'greater than' if a > b else 'less than' if a < b else 'equal to'} {b}."


def synthetic_strategyqa(size: int, seed: int) -> list[Problem]:
    rng = random.Random(seed)
    problems = []
    for _ in range(size):
        kind = rng.choice(["legs", "eggs", "movies", "even", "weeks"])
        if kind == "legs":
            a, b = rng.sample(sorted(LEGS), 2)
            question = f"Does a {a} have more legs than a {b}?"
            yes, steps = LEGS[a] > LEGS[b], 3
            facts = [f"A {a} has {LEGS[a]} legs.", f"A {b} has {LEGS[b]} legs.",
                     compared(LEGS[a], LEGS[b])]
        elif kind == "eggs":
            k, n, e = rng.randint(1, 4), rng.randint(2, 12), rng.randint(1, 4)
            question = f"Would {k} dozen eggs be enough for {n} people who each eat {e} eggs?"
            yes, steps = 12 * k >= n * e, 4
            facts = ["A dozen is 12.", f"{k} dozen eggs is {12 * k} eggs.", f"{n} people eating {e} eggs each need {n * e} eggs.",
                     compared(12 * k, n * e)]
        elif kind == "movies":
            k, m, h = rng.randint(2, 4), rng.choice([60, 90, 120]), rng.randint(2, 8)
            question = f"Can you watch {k} movies of {m} minutes each in {h} hours?"
            yes, steps = k * m <= 60 * h, 3
            facts = [f"{h} hours is {60 * h} minutes.", f"{k} movies of {m} minutes take {k * m} minutes.",
                     compared(60 * h, k * m)]
        elif kind == "even":
            n = rng.randint(10, 199)
            question = f"Is {n} an even number?"
            facts = [f"{n} ends in {n % 10}.", f"{n % 10} is {'even' if n % 2 == 0 else 'odd'}."]
            yes, steps = n % 2 == 0, 2
        else:
            d, w = rng.randint(5, 60), rng.randint(1, 8)
            question = f"Is {d} days longer than {w} weeks?"
            yes, steps = d > 7 * w, 3
            facts = ["A week has 7 days.", f"{w} weeks is {7 * w} days.", compared(d, 7 * w)]
        problems.append(Problem(question, "\n".join(facts), "yes" if yes else "no", "yesno", steps,
                                "synthetic_strategyqa"))
    return problems


STAND_INS = {"synthetic_gsm8k": synthetic_gsm8k, "synthetic_aqua": synthetic_aqua,
             "synthetic_strategyqa": synthetic_strategyqa}
