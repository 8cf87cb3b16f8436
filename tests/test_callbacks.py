"""The Trainer callbacks the stages share (reasoning_lab.callbacks): completion markers, a callback's own state in
every trainer checkpoint, a hook every N steps."""

import json
from types import SimpleNamespace

from reasoning_lab.callbacks import AtSteps, CheckpointState, MarkComplete
from reasoning_lab.checkpoints import latest_complete_checkpoint


class Counter(CheckpointState):
    filename = "counter.json"

    def __init__(self):
        self.count = 3

    def saved(self):
        return {"count": self.count}

    def restore(self, saved):
        self.count = saved["count"]


def test_a_checkpoint_holds_the_callbacks_state_and_is_marked_complete(tmp_path):
    args, state = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=4, is_world_process_zero=True)
    (tmp_path / "checkpoint-4").mkdir()
    assert latest_complete_checkpoint(tmp_path) is None  # written, not yet marked
    Counter().on_save(args, state, None)
    MarkComplete().on_save(args, state, None)
    assert json.loads((tmp_path / "checkpoint-4" / "counter.json").read_text()) == {"count": 3}
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"


def test_a_folder_the_trainer_did_not_write_gets_nothing(tmp_path):
    args, state = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=2, is_world_process_zero=True)
    Counter().on_save(args, state, None)
    MarkComplete().on_save(args, state, None)
    assert not (tmp_path / "checkpoint-2").exists()


def test_the_hook_runs_every_n_steps_but_not_after_the_last():
    steps = []
    hook = AtSteps(steps.append, every=2)
    for step in range(1, 7):
        hook.on_step_end(None, SimpleNamespace(global_step=step, max_steps=6), None)
    assert steps == [2, 4]


def test_the_hook_runs_at_the_chosen_steps_the_last_included():
    steps = []
    hook = AtSteps(steps.append, steps=[3, 6])
    for step in range(1, 7):
        hook.on_step_end(None, SimpleNamespace(global_step=step, max_steps=6), None)
    assert steps == [3, 6]
