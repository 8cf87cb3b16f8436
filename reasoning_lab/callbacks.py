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
    """Calls `hook(step)` every `every` optimizer steps but the last (e.g. a held-out evaluation)."""

    def __init__(self, every: int, hook):
        self.every, self.hook = every, hook

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.hook(state.global_step)


class AtChosenSteps(TrainerCallback):
    """Calls `hook(step)` at each of `steps` (optimizer steps)."""

    def __init__(self, steps: list[int], hook):
        self.steps, self.hook = set(steps), hook

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            self.hook(state.global_step)
