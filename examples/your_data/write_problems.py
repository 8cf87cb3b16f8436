"""Writes examples/your_data/problems.jsonl: short word problems in field names of your own choosing.

Each row: {"q": question, "final": the number answer, "steps": worked lines (missing in a third of the rows),
"hardness": 1 or 2}. The names are arbitrary on purpose: `experiment=your_data` maps them in configuration
(data.sets.my_problems.fields), and the rows without steps train as direct answers (without_reasoning: direct).

    python examples/your_data/write_problems.py [OUT] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jin", "Kai", "Lea"]
THINGS = ["pens", "apples", "cards", "coins", "shells", "books", "stamps", "marbles"]


def problem(rng: random.Random) -> dict:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b, c = rng.randint(3, 40), rng.randint(2, 30), rng.randint(1, 9)
    if rng.random() < 0.5:  # one step; questions stay short, so no two share a long run of words
        row = {"q": f"{name} has {a} {thing} and buys {b} more. How many now?", "final": a + b,
               "steps": [f"{a} + {b} = {a + b}"], "hardness": 1}
    else:
        row = {"q": f"{name} has {a} {thing}, buys {b}, gives away {c}. How many left?", "final": a + b - c,
               "steps": [f"{a} + {b} = {a + b}", f"{a + b} - {c} = {a + b - c}"], "hardness": 2}
    if rng.random() < 1 / 3:
        del row["steps"]
    return row


def write(out: Path, rows: int, seed: int = 0) -> Path:
    rng, seen = random.Random(seed), {}
    while len(seen) < rows:
        row = problem(rng)
        seen.setdefault(row["q"], row)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row) + "\n" for row in seen.values()))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(Path(__file__).with_name("problems.jsonl")))
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    print(f"wrote {args.rows} problems to {write(Path(args.out), args.rows)}")
