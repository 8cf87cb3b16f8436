"""Batches sized by tokens (reasoning_lab.batching): the budget holds, nothing is dropped or cut, the curriculum's
pacing and replay and the bandit's weights still decide what a batch holds, the Trainer draws exactly these
batches, and a padding-free batch gives the loss of the padded one."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from reasoning_lab.adaptive import BucketSampler
from reasoning_lab.batching import Filler, LengthBatches, StepBatches, batch_cost, cut
from reasoning_lab.curriculum import CurriculumSampler, competence
from tests.helpers import sft_settings, tiny_model

_rng = random.Random(3)
LENGTHS = [_rng.randint(20, 300) for _ in range(500)] + [1500]  # the last one longer than the budget
BUDGET = 1024


def within(batch: list[int], padding_free: bool = False) -> bool:
    return len(batch) == 1 or batch_cost([LENGTHS[i] for i in batch], padding_free) <= BUDGET


def test_cost_is_count_times_longest_or_the_sum_padding_free():
    assert batch_cost([10, 30, 20], padding_free=False) == 90
    assert batch_cost([10, 30, 20], padding_free=True) == 60


@pytest.mark.parametrize("padding_free", [False, True])
def test_cut_keeps_every_example_in_order_within_the_budget(padding_free):
    order = list(range(len(LENGTHS)))
    batches = cut(order, LENGTHS, BUDGET, padding_free)
    assert [i for b in batches for i in b] == order
    assert all(within(b, padding_free) for b in batches)
    assert [500] in batches  # longer than the budget: alone, whole
    # full: the next example would not have fitted
    assert all(batch_cost([LENGTHS[i] for i in a + b[:1]], padding_free) > BUDGET for a, b in zip(batches, batches[1:]))


def test_filler_passes_an_example_that_does_not_fit_to_the_next_batch():
    stream = iter(range(len(LENGTHS)))
    filler = Filler(LENGTHS, BUDGET, padding_free=False)
    batches = [filler.fill(lambda: next(stream)) for _ in range(20)]
    flat = [i for b in batches for i in b]
    assert flat == list(range(len(flat)))  # nothing drawn was dropped
    assert all(within(b) for b in batches)


def test_length_batches_cover_every_example_once_an_epoch_with_similar_lengths():
    sampler = LengthBatches(LENGTHS, BUDGET, padding_free=False, seed=0)
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
        assert sorted(i for b in epochs[-1] for i in b) == list(range(len(LENGTHS)))
        assert len(epochs[-1]) == len(sampler)
        assert all(within(b) for b in epochs[-1])
    assert sorted(map(tuple, epochs[0])) == sorted(map(tuple, epochs[1])) and epochs[0] != epochs[1]
    # grouping by length pads less than the same budget over a random order
    order = list(range(len(LENGTHS)))
    random.Random(0).shuffle(order)
    padded = sum(batch_cost([LENGTHS[i] for i in b], False) for b in epochs[0])
    assert padded < 0.8 * sum(batch_cost([LENGTHS[i] for i in b], False) for b in cut(order, LENGTHS, BUDGET, False))


@pytest.mark.parametrize("window", [1, 4])
def test_curriculum_batches_by_tokens_keep_pacing_and_replay(window):
    n_current, n_replay, steps, replay = 400, 101, 30, 0.25
    difficulties = [i % 10 for i in range(n_current)]
    sampler = CurriculumSampler(difficulties, n_replay, 4, steps, "linear", c0=0.2, replay=replay, seed=0,
                                lengths=LENGTHS, length_window=window, budget=BUDGET)
    batches = list(sampler.batches())
    assert all(within(b) for b in batches)
    assert len(batches) == sampler.total_batches == len(StepBatches(sampler))
    assert abs(len(batches) - steps) <= steps // 4  # about the steps asked for
    drawn = [i for b in batches for i in b]
    assert abs(sum(i >= n_current for i in drawn) / len(drawn) - replay) < 0.02  # error diffusion over examples
    # pacing: the draws of step t come from the easiest c(t) share (before a window regroups them)
    for step, batch in enumerate(sampler.filled_batches()):
        pool = set(sampler.by_difficulty[: math.ceil(competence("linear", step, steps, 0.2) * n_current)])
        assert all(i in pool for i in batch if i < n_current)
    assert list(sampler.batches()) == batches  # depends on the seed only: a resumed round sees the same batches


def test_without_a_budget_the_curriculum_and_the_bandit_draw_as_before():
    difficulties = [i % 10 for i in range(100)]
    counted = CurriculumSampler(difficulties, 10, 4, 12, "root", 0.2, 0.2, 7, lengths=LENGTHS[:110], length_window=4)
    assert all(len(b) == 4 for b in counted.batches()) and counted.total_batches == 12 and len(counted) == 48
    bandit = BucketSampler([i % 3 for i in range(60)], 3, 5, 10, seed=2)
    assert [len(b) for b in bandit.batches()] == [5] * 10 and len(list(bandit)) == 50


def test_bandit_batches_by_tokens_follow_the_weights_in_force():
    buckets = [i % 2 for i in range(len(LENGTHS))]
    sampler = BucketSampler(buckets, 2, 4, 20, seed=0, lengths=LENGTHS, budget=BUDGET)
    sampler.set_weights([1.0, 0.0])
    batches = list(sampler.batches())
    assert len(batches) == 20 and all(within(b) for b in batches)
    assert Counter(buckets[i] for b in batches[1:] for i in b) == Counter({0: sum(map(len, batches[1:]))})


def test_the_trainer_draws_exactly_the_token_batches():
    from datasets import Dataset

    from reasoning_lab.sft import sft_arguments, token_batches
    from reasoning_lab.trl_trainers import OrderedSFTTrainer

    _, model, tokenizer = tiny_model()
    lengths = [3 + (i * 7) % 40 for i in range(60)]
    rows = [{"input_ids": [5, 6 + i] + [7] * (n - 2), "completion_mask": [0] + [1] * (n - 1)}
            for i, n in enumerate(lengths)]
    settings = sft_settings(max_tokens_per_batch=120)
    batches = token_batches(settings, lengths, seed=0)
    args = sft_arguments("/tmp/unused", settings, max_steps=len(batches), seed=0, report_to="none")
    trainer = OrderedSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer, batches=batches)
    drawn = [sorted(batch["input_ids"][:, 1].tolist()) for batch in trainer.get_train_dataloader()]
    assert drawn == [sorted(6 + i for i in b) for b in batches]
    assert len({len(b) for b in drawn}) > 1 and all(b["input_ids"].numel() <= 120
                                                    for b in trainer.get_train_dataloader())


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_a_padding_free_batch_gives_the_loss_of_the_padded_batch(attention):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    _, model, tokenizer = tiny_model(f"model.attn_implementation={attention}", "model.dtype=float32")
    model.eval()
    generator = torch.Generator().manual_seed(0)
    examples = []
    for n in (9, 23, 14, 31):
        ids = torch.randint(10, 200, (n,), generator=generator).tolist()
        examples.append({"input_ids": ids, "labels": [-100] * 4 + ids[4:]})
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(examples)
    free = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(examples)
    assert free["input_ids"].shape == (1, 9 + 23 + 14 + 31) and "attention_mask" not in free
    with torch.no_grad():  # without a KV cache, as TRL's SFTTrainer.compute_loss calls the model
        loss_padded = model(**{k: padded[k] for k in ("input_ids", "attention_mask", "labels")}).loss
        loss_free = model(input_ids=free["input_ids"], position_ids=free["position_ids"], labels=free["labels"],
                          use_cache=False).loss
        # no example attends to another: changing the first example leaves the others' logits as they were
        changed = free["input_ids"].clone()
        changed[0, :9] = torch.randint(10, 200, (9,), generator=generator)
        a = model(input_ids=free["input_ids"], position_ids=free["position_ids"], use_cache=False).logits[0, 9:]
        b = model(input_ids=changed, position_ids=free["position_ids"], use_cache=False).logits[0, 9:]
    assert torch.allclose(loss_free, loss_padded, atol=1e-6), (loss_free, loss_padded)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.app
@pytest.mark.parametrize("curriculum", ["adaptive", "stages"])
def test_stages_train_on_token_budgets(tmp_path, curriculum):
    """The warm-up and both curricula train with batches by tokens, padding-free; each step's tokens stay within
    the budget (TRL's running count of trained tokens), and a step holds more examples than batch_size (2) would."""
    from tests.helpers import TINY_SWEEP, finished, run_cli

    run_dir = tmp_path / curriculum
    budget = 240
    result = run_cli("stage=pipeline", "stage.stages=[warmup,curriculum]", *TINY_SWEEP, f"curriculum={curriculum}",
                     "curriculum.max_steps=3", "curriculum.stages=[{name: one, data: [generic]}]"
                     if curriculum == "stages" else "curriculum.max_steps=3",
                     f"warmup.max_tokens_per_batch={budget}", "warmup.padding_free=true", "warmup.eval_sets=[]",
                     f"curriculum.max_tokens_per_batch={budget}", "curriculum.padding_free=true",
                     "curriculum.final_eval=false", "curriculum.stage_evals=false", "logger=none",
                     f"hydra.run.dir={run_dir}")
    warmup = finished(run_dir, result, "warmup")
    steps, history = warmup["train"]["steps"], warmup["train"]["history"]
    tokens = max(h.get("num_tokens", h.get("eval_num_tokens", 0)) for h in history)
    epoch = max(h["epoch"] for h in history)  # the share of an epoch's batches trained
    assert steps == 2 and 0 < tokens <= steps * budget
    assert steps / epoch < warmup["train_data"]["examples"] / 2  # fewer batches an epoch than with 2 examples each
    cur = finished(run_dir, result, "curriculum")
    assert cur["stages"][0]["steps"] >= 1


def test_the_gpu_filling_budget_follows_the_measured_peaks():
    from reasoning_lab.batching import probed_budget

    gib = 2**30
    peak = {1024: 10 * gib, 4096: 16 * gib}  # 2 GiB per 1024 tokens over a 8 GiB base
    budget, measured = probed_budget(peak.__getitem__, 1024, 4096, capacity=80 * gib, share=0.85)
    assert budget == (int((0.85 * 80 - 8) * 512) // 256) * 256 and measured["peaks"] == peak  # 68 GiB: 30,720 tokens
    flat, _ = probed_budget(lambda tokens: 5 * gib, 1024, 4096, capacity=80 * gib)
    assert flat == 4096  # no growth measured: the larger probe
    full, _ = probed_budget(peak.__getitem__, 1024, 4096, capacity=8 * gib)
    assert full == 1024  # never below the smaller probe


def test_filling_the_gpu_is_refused_on_a_machine_without_one():
    from reasoning_lab.config import validate
    from reasoning_lab.errors import ReasoningLabError
    from tests.helpers import make_config

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ReasoningLabError, match=r"warmup.max_tokens_per_batch=0 fills a GPU's memory"):
        validate(make_config("warmup.max_tokens_per_batch=0"))


def test_on_the_cpu_the_trainer_takes_the_model_own_loss_equal_to_trl_fused_head():
    """OrderedSFTTrainer's CPU loss (the model's own, full logits) is TRL's fused-head loss on the same batch: the
    mean over the completion tokens, prompt and padding left out."""
    from datasets import Dataset
    from trl import SFTTrainer

    from reasoning_lab.sft import sft_arguments
    from reasoning_lab.trl_trainers import OrderedSFTTrainer

    _, model, tokenizer = tiny_model("model.dtype=float32")
    rows = [{"input_ids": [5, 6 + i] + [7 + i] * n, "completion_mask": [0, 0] + [1] * n}
            for i, n in enumerate((4, 11, 7, 2))]
    args = sft_arguments("/tmp/unused", sft_settings(), max_steps=1, seed=0, report_to="none")
    trainer = OrderedSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()
    fused, forward = [], model.forward
    model.forward = lambda *a, **k: fused.append(k.get("fused_lm_head", False)) or forward(*a, **k)
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        assert fused == [False]  # the full logits, not TRL's fused head
        mode = "train" if trainer.model.training else "eval"
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        mask = batch["labels"][:, 1:] != -100
        accuracy = (logits[mask].argmax(-1) == batch["labels"][:, 1:][mask]).float().mean().item()
        assert trainer._metrics[mode]["mean_token_accuracy"] == [pytest.approx(accuracy)]  # TRL's numbers, kept
        assert trainer._metrics[mode]["num_tokens"] == [int(batch["attention_mask"].sum()) if mode == "train" else 0]
        theirs = SFTTrainer.compute_loss(trainer, model, dict(batch))
        by_hand = torch.nn.functional.cross_entropy(model(input_ids=batch["input_ids"], attention_mask=batch[
            "attention_mask"]).logits[:, :-1].transpose(1, 2), batch["labels"][:, 1:], ignore_index=-100)
    assert torch.allclose(ours, theirs, atol=1e-5) and torch.allclose(ours, by_hand, atol=1e-5), (ours, theirs)
