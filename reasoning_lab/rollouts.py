"""Rollouts you can read: every `rl.log_rollouts_every` steps, the completions sampled at that step, a row each with
its prompt, each reward component, the weighted total, the advantage it trained with and (PPO) the critic's value of
the prompt, as lines of `rl/rollouts.jsonl` and a W&B table (`rl/rollouts`). GRPO and RLOO hand over what TRL
generated and scored (reasoning_lab.trl_trainers; a group that dynamic sampling replaced is there too, `kept`
false); PPO its rollout batch (reasoning_lab.ppo). A resumed run first drops the rows of the steps it trains
again."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

ROLLOUTS = "rollouts.jsonl"  # in rl/


def as_text(message) -> str:
    """A prompt or completion as text: a string as it is, a chat as `role: content` lines."""
    if isinstance(message, str):
        return message
    return "\n".join(f"{turn['role']}: {turn['content']}" for turn in message)


class RolloutLog(TrainerCallback):
    """Rows added during a step are written at its end when the step is a multiple of `every` (0: never), and
    dropped otherwise."""

    def __init__(self, every: int, path: Path, wandb_run=None):
        self.every, self.path, self.wandb_run = every, Path(path), wandb_run
        self.pending: list[dict] = []

    def start(self, step: int) -> None:
        """Training (re)starts after `step`: the file keeps the rows of the steps up to it."""
        self.pending = []
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def add(self, rows: list[dict]) -> None:
        self.pending += rows

    def flush(self, step: int) -> None:
        rows, self.pending = self.pending, []
        if not self.every or step % self.every or not rows:
            return
        rows = [{"step": step, **row} for row in rows]
        with self.path.open("a") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
        if self.wandb_run is not None:
            import wandb

            columns = list(rows[0])
            self.wandb_run.log({"rl/rollouts": wandb.Table(columns=columns,
                                                           data=[[row.get(c) for c in columns] for row in rows])})

    def on_train_begin(self, args, state, control, **kwargs):
        self.start(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.flush(state.global_step)
