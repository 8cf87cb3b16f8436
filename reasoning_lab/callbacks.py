"""The Trainer callbacks the stages share: each takes what it needs as arguments.

- `MarkComplete`: marks each trainer checkpoint complete once the Trainer has written all of it
  (reasoning_lab.checkpoints.train_resuming resumes only from complete ones).
- `CheckpointState`: the base of a callback with state of its own (a sampler's, a bandit's), saved into every trainer
  checkpoint and handed back on resume.
- `AtSteps`: calls a function every N optimizer steps (the RL stage's held-out evaluation).
- `AtChosenSteps`: calls a function at the listed optimizer steps (the faded curriculum's phase adapters).
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from reasoning_lab.checkpoints import mark_complete
from reasoning_lab.files import write_json


class MarkComplete(TrainerCallback):
    """Marks each trainer checkpoint complete once the Trainer has written all of it."""

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.exists() and state.is_world_process_zero:
            mark_complete(folder, state.global_step)


class CheckpointState(TrainerCallback):
    """A Trainer callback with state of its own (a sampler's, a bandit's): `saved()` goes into every trainer
    checkpoint as `filename` (before MarkComplete, listed after it, marks the checkpoint complete), and
    reasoning_lab.checkpoints.train_resuming hands it back to `restore()` when it resumes from that checkpoint."""

    filename = ""

    def saved(self):
        raise NotImplementedError

    def restore(self, saved) -> None:
        raise NotImplementedError

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.exists():
            write_json(folder / self.filename, self.saved())


class AtSteps(TrainerCallback):
    """Calls `hook(step)` after chosen optimizer steps: every `every` steps but the last (e.g. a held-out
    evaluation), and at each of `steps` (e.g. a schedule's boundaries)."""

    def __init__(self, hook, every: int = 0, steps=()):
        self.hook, self.every, self.steps = hook, every, set(steps)

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step in self.steps or (self.every and step % self.every == 0 and step < state.max_steps):
            self.hook(step)
