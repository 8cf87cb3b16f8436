"""Where a stage's time goes: exclusive phases, timed wherever the work happens.

`measure()` (tracking.stage_run opens one per stage) collects the seconds of each `phase(name)` block run inside it;
a phase nested in another is taken out of the outer one, so the phases add up to the stage's wall time (the rest is
`other`). The phases: `setup` (loading models and tokenizers), `data` (problems, examples, tokens, the contamination
guard), `training` (optimizer steps, rollouts included), `signal` (the curriculum's validation losses and its
bandit's held-back losses), `evaluation` (every evaluation, those between RL steps included), `saving` (adapters).
Outside `measure()` a phase costs nothing and records nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

PHASES = ("setup", "data", "training", "signal", "evaluation", "saving")
_open: list[Phases] = []


class Phases:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [name, when its current stretch began]
        self.began = time.perf_counter()

    def table(self) -> dict[str, float]:
        """Seconds per phase (every phase, 0 when it did not run) and `other`, rounded to 0.01 s (saving a small
        adapter takes a few hundredths)."""
        wall = time.perf_counter() - self.began
        spent = {name: round(self.seconds.get(name, 0.0), 2) for name in PHASES}
        return {**spent, "other": round(max(0.0, wall - sum(self.seconds.values())), 2)}


@contextmanager
def measure():
    """Collect the phases run inside this block (the innermost `measure` collects them)."""
    phases = Phases()
    _open.append(phases)
    try:
        yield phases
    finally:
        _open.remove(phases)


@contextmanager
def phase(name: str):
    """Time this block as `name` (one of PHASES), apart from the phase it runs in."""
    if name not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {name!r}")
    if not _open:
        yield
        return
    phases, now = _open[-1], time.perf_counter()
    if phases.stack:  # the outer phase pauses
        outer = phases.stack[-1]
        phases.seconds[outer[0]] += now - outer[1]
    phases.stack.append([name, now])
    try:
        yield
    finally:
        end = time.perf_counter()
        inner = phases.stack.pop()
        phases.seconds[inner[0]] += end - inner[1]
        if phases.stack:  # the outer phase resumes
            phases.stack[-1][1] = end


def duration(seconds: float) -> str:
    """`9m12s`, `20s`, `1h03m`."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def summary(stage: str, wall: float, table: dict[str, float]) -> str:
    """`stage curriculum: 9m12s (training 5m40s, signal 20s, evaluation 2m31s, ...)`: the phases that took time."""
    parts = [f"{name} {duration(s)}" for name, s in table.items() if s >= 0.5]
    return f"stage {stage}: {duration(wall)}" + (f" ({', '.join(parts)})" if parts else "")
