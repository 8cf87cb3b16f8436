"""Rollout tables (reasoning_lab.rollouts): what a resumed run keeps, and chats as text. The rows themselves are
checked where GRPO, RLOO and PPO write them (tests/test_rl.py)."""

import json


def test_a_resumed_run_drops_the_rollouts_of_the_steps_it_trains_again(tmp_path):
    from reasoning_lab.rollouts import RolloutLog, as_text

    log = RolloutLog(2, tmp_path / "rollouts.jsonl")
    for step in range(1, 7):
        log.add([{"completion": f"step {step}"}])
        log.flush(step)
    log.start(4)  # the newest checkpoint is step 4: steps 5 and 6 are trained again
    rows = [json.loads(line) for line in (tmp_path / "rollouts.jsonl").read_text().splitlines()]
    assert [(row["step"], row["completion"]) for row in rows] == [(2, "step 2"), (4, "step 4")]
    assert as_text([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]) == "system: s\nuser: q"
