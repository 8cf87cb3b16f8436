"""The benchmarks' own helpers (experiments/bench.py): the sketch's batches, FLOPs per token, the stage batches (and
through them, that length-grouped warm-up batches pad less). They live beside the benchmarks: the package's tests
(tests/) import nothing of experiments/."""

import pytest
import torch
from bench import compose, sketch_batches, stage_batches, training_flops_per_token
from datasets import Dataset

from reasoning_lab.model import load_model, load_tokenizer


def test_sketch_batches_pad_to_256_and_count_what_they_cut():
    lengths = [10, 300, 40, 257, 256, 5, 80, 120]
    data = Dataset.from_dict({"input_ids": [list(range(1, n + 1)) for n in lengths],
                              "completion_mask": [[0] * 3 + [1] * (n - 3) for n in lengths]})
    batches, truncated = sketch_batches(data, 4, pad=0)
    assert truncated == 2  # 300 and 257 tokens
    assert [b["input_ids"].shape for b in batches] == [torch.Size([4, 256])] * 2
    real = sorted(int(m.sum()) for b in batches for m in b["attention_mask"])
    assert real == sorted(min(n, 256) for n in lengths)
    assert sum(int((b["labels"] != -100).sum()) for b in batches) == sum(min(n, 256) - 3 for n in lengths)


def test_flops_per_token_count_frozen_matrices_twice_over_and_adapters_three_times():
    cfg = compose("model=tiny_random")
    model = load_model(cfg.model)
    c = model.config  # LLaMA shape: q, k, v, o, gate, up, down per layer, plus the output head
    kv = c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    per_layer = 2 * c.hidden_size**2 + 2 * c.hidden_size * kv + 3 * c.hidden_size * c.intermediate_size
    frozen = c.num_hidden_layers * per_layer + c.vocab_size * c.hidden_size
    adapters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert adapters > 0 and training_flops_per_token(model) == 4 * frozen + 6 * adapters


def test_stage_batches_are_the_trainers_batches_padded_to_their_longest():
    cfg = compose("model=tiny_random")
    tokenizer, model = load_tokenizer(cfg.model), load_model(cfg.model)
    lengths = [12, 30, 7, 50, 22, 9, 41, 16]
    data = Dataset.from_dict({"input_ids": [[5] * n for n in lengths], "completion_mask": [[1] * n for n in lengths]})
    batches = stage_batches(model, tokenizer, data, 2, 4, group_by_length=True)
    assert len(batches) == 2
    assert sorted(int(m.sum()) for b in batches for m in b["attention_mask"]) == sorted(lengths)  # every one, whole
    assert [b["input_ids"].shape[1] for b in batches] == [int(b["attention_mask"].sum(1).max()) for b in batches]
    assert all(((b["labels"] != -100) == b["attention_mask"].bool()).all() for b in batches)
    # the loss as the stages' Trainer takes it (TRL's fused head) is the model's own loss
    from bench import trainer_loss

    with torch.no_grad():
        fused, own = trainer_loss(model, batches[0]), model(**batches[0], use_cache=False).loss
    assert torch.allclose(fused, own, atol=1e-4), (fused, own)
    # by tokens, padding-free: one epoch, every example whole in one row a batch, within the budget
    free = stage_batches(model, tokenizer, data, None, 4, max_tokens=64, padding_free=True)
    assert all(b["input_ids"].shape[0] == 1 and b["input_ids"].shape[1] <= 64 for b in free[:-1])
    assert sum(b["input_ids"].numel() for b in free) == sum(lengths) and "attention_mask" not in free[0]


def test_decode_shapes_are_every_matrix_once_and_the_limit_is_a_rate():
    from bench import decode_matmul_limit, decode_shapes

    cfg = compose("model=tiny_random")
    model = load_model(cfg.model, trainable=False).merge_and_unload()
    c = model.config
    shapes = decode_shapes(model)
    assert len(shapes) == 7 * c.num_hidden_layers + 1 and shapes[-1] == (c.hidden_size, c.vocab_size)
    limit = decode_matmul_limit(shapes, batch=4, dtype=torch.float32, repeats=1)
    flops = 2 * 4 * sum(i * o for i, o in shapes)
    assert limit["tokens_per_s"] == pytest.approx(4 / limit["step_s"])
    assert limit["gflop_per_s"] == pytest.approx(flops / limit["step_s"] / 1e9)


def test_length_grouped_batches_pad_less_than_random_ones():
    """warmup.group_by_length: the Trainer draws batches of similar lengths, every example once per epoch."""
    import random

    from datasets import Dataset

    from reasoning_lab.model import load_model, load_tokenizer

    cfg = compose("model=tiny_random")
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model)
    rng = random.Random(0)
    lengths = [rng.randint(20, 300) for _ in range(128)]
    data = Dataset.from_dict({"input_ids": [[5] * n for n in lengths],
                              "completion_mask": [[0] * (n // 2) + [1] * (n - n // 2) for n in lengths]})
    padded = {}
    for grouped in (False, True):
        batches = stage_batches(model, tokenizer, data, 16, 8, group_by_length=grouped)  # the whole epoch
        assert sorted(int(m.sum()) for b in batches for m in b["attention_mask"]) == sorted(lengths)
        padded[grouped] = sum(b["input_ids"].numel() for b in batches)
    assert padded[True] < 0.7 * padded[False], padded
    assert compose().warmup.group_by_length is True
