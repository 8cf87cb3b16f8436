"""The adaptive curriculum (reasoning_lab.adaptive): the bandit's weights follow learning progress, the sampler
applies them from the next batch, and a killed run resumes to the same weights and adapter."""

import json

import pytest

from reasoning_lab.adaptive import (
    BucketBandit,
    BucketSampler,
    bucket_names,
    held_back_split,
    mix_shares,
    mixed,
)
from tests.helpers import TINY_CURRICULUM, finished, run_cli, with_overrides


def test_weights_move_toward_a_bucket_whose_loss_falls_and_away_from_a_flat_one():
    bandit = BucketBandit(["falls", "flat", "also flat"], "progress", smoothing=0.5, temperature=0.5, explore=0.2)
    assert bandit.update(0, [2.0, 2.0, 2.0]) == pytest.approx([1 / 3] * 3)  # one measurement: no progress yet
    for step, loss in enumerate([1.8, 1.6, 1.4, 1.2], 1):
        weights = bandit.update(step, [loss, 2.0 + 0.001 * step, 2.0])
    assert weights[0] > 0.8 and weights[1] < 0.1 and weights[2] < 0.1
    assert weights[1] >= 0.2 / 3 - 1e-9 and weights[2] >= 0.2 / 3 - 1e-9  # the explore floor: replay of every bucket
    assert sum(weights) == pytest.approx(1)
    for step in range(5, 12):  # the bucket stops improving; another starts to: the weight follows
        weights = bandit.update(step, [1.2, 2.0 - 0.1 * (step - 4), 2.0])
    assert weights[1] > 0.6 and weights[0] < weights[1]
    assert [h["step"] for h in bandit.history] == list(range(12))


def test_loss_signal_weights_the_buckets_the_model_is_worst_at():
    bandit = BucketBandit(["easy", "hard"], "loss", smoothing=0.5, temperature=0.5, explore=0.0)
    weights = bandit.update(0, [0.5, 1.5])
    assert weights[1] > 0.8 and weights == pytest.approx(mixed([0.5, 1.5], 0.5, 0.0))


def test_a_stratified_bandit_keeps_each_sets_share_and_moves_only_within_a_set():
    """gsm8k/2 makes all the progress: unstratified it takes most of the weight from every set; stratified, each set
    keeps its share of the mix (its share of the examples) and the progress moves weight only between gsm8k's
    levels."""
    names = ["gsm8k/1", "gsm8k/2", "strategyqa/1", "strategyqa/2", "generic/1"]
    shares = mix_shares(names, [0] * 20 + [1] * 20 + [2] * 15 + [3] * 15 + [4] * 30)
    assert shares == {"gsm8k": 0.4, "strategyqa": 0.3, "generic": 0.3}
    plain = BucketBandit(names, "progress", smoothing=0.5, temperature=0.5, explore=0.2)
    stratified = BucketBandit(names, "progress", smoothing=0.5, temperature=0.5, explore=0.2, shares=shares)
    assert stratified.weights == pytest.approx([0.2, 0.2, 0.15, 0.15, 0.3])  # uniform within each set from the start
    for step, loss in enumerate([2.0, 1.6, 1.2, 0.8]):
        losses = [2.0, loss, 2.0, 2.0 + 0.001 * step, 2.0]
        weights, strata = plain.update(step, losses), stratified.update(step, losses)
    assert weights[1] > 0.8 and weights[2] + weights[3] < 0.1  # strategyqa starved without strata
    per_set = {name: sum(w for n, w in zip(names, strata) if n.startswith(name + "/")) for name in shares}
    assert per_set == pytest.approx(shares) and sum(strata) == pytest.approx(1)
    assert strata[1] > 0.85 * 0.4 and strata[0] >= 0.4 * 0.2 / 2 - 1e-9  # within gsm8k: progress, with its floor


@pytest.mark.parametrize("stratified", [False, True])
def test_the_schedule_draws_its_first_batches_by_the_sets_shares_when_stratified(stratified):
    import logging

    from reasoning_lab.adaptive import AdaptiveSchedule, HeldBack
    from tests.helpers import make_config

    cfg = make_config("curriculum=adaptive", f"curriculum.adaptive.stratified={str(stratified).lower()}")
    schedule = AdaptiveSchedule(cfg.curriculum, None, logging.getLogger(__name__))
    schedule.names = ["a/1", "a/2", "b/1"]
    schedule.held_back = HeldBack(schedule.names, None, [], None)
    schedule.buckets = [0] * 6 + [1] * 2 + [2] * 2  # set a: 80% of the examples, b: 20%
    sampler = schedule.round(None, steps=4, seed=0, replay=0.0, batching={}).sampler
    assert sampler.weights_at(0) == pytest.approx([0.4, 0.4, 0.2] if stratified else [1 / 3] * 3)


def test_a_bucket_without_a_loss_at_an_update_keeps_its_score():
    """The training source measures only the buckets trained since the last update: the others keep score and
    last loss, so a rarely drawn bucket is not taken for one that stopped improving."""
    bandit = BucketBandit(["a", "b", "c"], "progress", smoothing=0.5, temperature=0.5, explore=0.2)
    bandit.update(8, [2.0, None, 2.0])
    bandit.update(16, [1.6, 2.0, 2.0])  # b's first loss: nothing to compare with yet
    assert bandit.scores == pytest.approx([0.2, 0.0, 0.0]) and bandit.last == [1.6, 2.0, 2.0]
    bandit.update(24, [None, 1.0, 2.0])
    assert bandit.scores == pytest.approx([0.2, 0.5, 0.0]) and bandit.last == [1.6, 1.0, 2.0]
    assert bandit.history[0]["loss"] == [2.0, None, 2.0]
    loss = BucketBandit(["a", "b"], "loss", smoothing=0.5, temperature=0.5, explore=0.0)
    loss.update(8, [1.0, 3.0])
    assert loss.update(16, [None, 0.5]) == pytest.approx(mixed([1.0, 0.5], 0.5, 0.0))


def test_training_losses_file_each_trained_rows_loss_under_its_bucket():
    """The training source reads the loss of each row of a padded training batch from the step's logits: the same
    per-example loss that the held-back source's forward pass gives, filed under the row's bucket by its tokens."""
    import torch
    from datasets import Dataset

    from reasoning_lab.adaptive import TrainingLosses
    from reasoning_lab.signals import example_losses
    from tests.helpers import tiny_model

    _, model, tokenizer = tiny_model("model.dtype=float32")
    rows = [{"input_ids": [5, 6 + i] + [7 + i] * n, "completion_mask": [0, 0] + [1] * n}
            for i, n in enumerate((4, 11, 7, 2))]
    source = TrainingLosses(["x/1", "y/1"], [r["input_ids"] for r in rows], [0, 1, 1, 0])
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [0] * (width - len(r["input_ids"])) for r in rows])
    attention = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
    labels = ids.masked_fill(torch.tensor([r["completion_mask"] + [0] * (width - len(r["input_ids"]))
                                           for r in rows]) == 0, -100)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits
    source.observe({"input_ids": ids, "attention_mask": attention, "labels": labels}, logits)
    alone = example_losses(model, tokenizer, Dataset.from_list(rows))
    assert source.bucket_losses() == pytest.approx([(alone[0] + alone[3]) / 2, (alone[1] + alone[2]) / 2], abs=1e-4)
    assert source.bucket_losses() == [None, None]  # each call starts a new window
    # the same examples padding-free: one row, position ids restarting at each example
    flat = torch.tensor([sum((r["input_ids"] for r in rows), [])])
    positions = torch.tensor([sum((list(range(len(r["input_ids"]))) for r in rows), [])])
    flat_labels = flat.masked_fill(torch.tensor([sum((r["completion_mask"] for r in rows), [])]) == 0, -100)
    with torch.no_grad():  # each example's logits as a varlen attention gives them: its own, side by side
        flat_logits = torch.cat([model(input_ids=torch.tensor([r["input_ids"]])).logits for r in rows], dim=1)
    source.observe({"input_ids": flat, "position_ids": positions, "labels": flat_labels}, flat_logits)
    assert source.bucket_losses() == pytest.approx([(alone[0] + alone[3]) / 2, (alone[1] + alone[2]) / 2], abs=1e-4)
    with pytest.raises(KeyError, match="no example of the stage"):
        source.observe({"input_ids": ids[:, :3], "labels": labels[:, :3]}, logits[:, :3])


@pytest.mark.app
@pytest.mark.slow
def test_the_training_source_steers_the_bandit_without_holding_examples_back(tmp_path):
    """curriculum.adaptive.source=training: nothing held back, no measurement before the first step, and every
    update after it weighs the buckets by the losses of the batches just trained."""
    args = with_overrides(TINY_CURRICULUM, "curriculum=adaptive", "curriculum.max_steps=6",
                          "curriculum.adaptive.update_every=2", "curriculum.adaptive.source=training",
                          "curriculum.final_eval=false", "curriculum.stage_evals=false", f"hydra.run.dir={tmp_path}")
    finished(tmp_path, run_cli(*args), "curriculum")
    stage = json.loads((tmp_path / "curriculum" / "metrics.json").read_text())["stages"][0]
    history = stage["adaptive"]["history"]
    assert [h["step"] for h in history] == [2, 4]
    assert stage["examples"]["held_back"] == 0
    assert all(sum(v is not None for v in h["loss"]) >= 1 for h in history)
    assert all(v is None or 0 < v < 20 for h in history for v in h["loss"])


def test_buckets_and_held_back_examples():
    names, buckets = bucket_names(["a", "a", "b", "a"], [1, 2, 1, 1])
    assert names == ["a/1", "a/2", "b/1"] and buckets == [0, 1, 2, 0]
    kept, held = held_back_split([0] * 40 + [1] * 8 + [2] * 3, per_bucket=4, seed=0)
    assert len([i for i in held if i < 40]) == 4 and len([i for i in held if 40 <= i < 48]) == 2
    assert not [i for i in held if i >= 48]  # a bucket of 3 keeps all of them for training
    assert sorted(kept + held) == list(range(51))


def test_sampler_applies_new_weights_from_the_next_batch_not_drawn():
    sampler = BucketSampler([0] * 10 + [1] * 10, 2, batch_size=4, total_batches=6, seed=0)
    drawn = iter(sampler)
    first = [next(drawn) for _ in range(4)]  # batch 0, uniform over the two buckets
    sampler.set_weights([0.0, 1.0])
    rest = list(drawn)
    assert sampler.schedule == [[0, [0.5, 0.5]], [1, [0.0, 1.0]]]
    assert len(first + rest) == 24 and all(i >= 10 for i in rest)  # batches 1-5: bucket 1 only
    bucket_1 = [i for i in first + rest if i >= 10]
    assert len(set(bucket_1[:10])) == 10  # a bucket's examples in shuffled epochs: no repeat before all are used


@pytest.mark.app
@pytest.mark.slow
@pytest.mark.parametrize("source, steps", [("training", [2, 4, 6]), ("held_back", [0, 2, 4, 6])])
def test_killed_adaptive_curriculum_resumes_to_the_same_weights_and_adapter(tmp_path, source, steps):
    """Killed after checkpoint 4 and resumed: the same bandit history, schedule and adapter as a clean run (the
    training source's window is empty at a checkpoint that falls on an update, as here)."""
    import torch
    from safetensors.torch import load_file

    args = with_overrides(TINY_CURRICULUM, "curriculum=adaptive", "curriculum.max_steps=8",
                          f"curriculum.adaptive.source={source}",
                          "curriculum.adaptive.update_every=2", "curriculum.adaptive.held_back=2",
                          "curriculum.final_eval=false", "curriculum.stage_evals=false")
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    finished(clean, run_cli(*args, f"hydra.run.dir={clean}"), "curriculum")
    stopped = run_cli(*args, f"hydra.run.dir={killed}",  # SIGKILL right after the trainer's checkpoint-4 is complete
                      env={"REASONING_LAB_STOP_AFTER": "round_0.work/trainer/checkpoint-4",
                           "REASONING_LAB_STOP_SIGNAL": "KILL"})
    assert stopped.returncode == -9
    resumed = run_cli(*args, f"hydra.run.dir={killed}")
    finished(killed, resumed, "curriculum")
    assert "resuming from" in resumed.stdout + resumed.stderr

    def adaptive(run_dir):
        return json.loads((run_dir / "curriculum" / "metrics.json").read_text())["stages"][0]["adaptive"]

    a, b = adaptive(clean), adaptive(killed)
    assert [h["step"] for h in a["history"]] == steps
    assert a["history"] == b["history"] and a["schedule"] == b["schedule"]
    assert len({tuple(h["weights"]) for h in a["history"]}) > 1  # the weights moved
    assert (killed / "curriculum" / "stage_1_weights.png").stat().st_size > 10_000  # the stacked chart
    weights_a = load_file(clean / "curriculum" / "stage_1" / "adapter_model.safetensors")
    weights_b = load_file(killed / "curriculum" / "stage_1" / "adapter_model.safetensors")
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_a_stratified_sampler_keeps_each_sets_share_within_one_example_per_batch():
    """Sets a (buckets 0, 1) and b (bucket 2) at shares 0.7 / 0.3 of batches of 5 (3.5 and 1.5 examples): every
    batch gives a 3 or 4 and b 1 or 2, and over the run each gets its share; the weight within a stays its own."""
    buckets = [i % 3 for i in range(90)]
    sampler = BucketSampler(buckets, 3, batch_size=5, total_batches=200, seed=1, groups=["a", "a", "b"])
    sampler.schedule = [[0, [0.6, 0.1, 0.3]]]
    counts = [sum(buckets[i] < 2 for i in batch) for batch in sampler.batches()]
    assert set(counts) <= {3, 4} and sum(counts) == pytest.approx(0.7 * 1000, abs=1)
    within = [buckets[i] for batch in sampler.batches() for i in batch if buckets[i] < 2]
    assert within.count(0) / len(within) == pytest.approx(6 / 7, abs=0.03)
