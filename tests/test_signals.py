"""The curriculum's validation signals (reasoning_lab.signals): per-example completion losses, batched by length with
padding, equal each example's loss computed alone; validation accuracy scores each set's own answers."""

import pytest
import torch

from reasoning_lab import signals
from reasoning_lab.data import build_examples, load_problems, tokenize
from reasoning_lab.decoding import Completion
from tests.helpers import tiny_model


def test_batched_losses_equal_each_examples_own_completion_loss():
    cfg, model, tokenizer = tiny_model("data.generic.size_per_level=8", "data.val_size=6", trainable=False)
    losses = signals.validation_losses(model, tokenizer, cfg.data, ["generic"], batch_size=4)
    dataset, _ = tokenize(build_examples(cfg.data, ["generic"], "val"), tokenizer, cfg.data.max_length, "truncate")
    assert len(losses["generic"]) == len(dataset) >= 5  # a padded batch of 4, then the rest
    lengths = {len(ids) for ids in dataset["input_ids"]}
    assert len(lengths) > 1  # the batches are padded: what this test is about
    for i, (ids, mask) in enumerate(zip(dataset["input_ids"], dataset["completion_mask"])):
        labels = torch.tensor([token if m else -100 for token, m in zip(ids, mask)])
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([ids]), labels=labels[None]).loss.item()  # mean NLL of the completion
        assert losses["generic"][i] == pytest.approx(alone, abs=2e-4), i


def test_validation_accuracy_scores_each_sets_answers_with_its_options(monkeypatch):
    cfg, model, tokenizer = tiny_model("data.synthetic_size=200", "data.val_size=4", trainable=False)
    sets = ["gsm8k", "aqua"]  # with data=embedded: the synthetic stand-ins
    problems = {name: load_problems(cfg.data, name, "val")[:3] for name in sets}
    asked = []
    by_question = {p.question: p for name in sets for p in problems[name]}

    def answer_with(text_for):
        def generate(twin, tok, prompts, budget, **kwargs):  # each prompt answered by its problem
            asked.append(prompts)
            return [(Completion(text_for(by_question[prompt[-1]["content"]]), 5, False),) for prompt in prompts]
        return generate

    monkeypatch.setattr(signals, "load_problems", lambda data, name, split: problems[name])
    aqua = problems["aqua"][0]
    option_text = next(o for o in aqua.options if o.startswith(aqua.answer + ")"))[2:]  # the right option's value
    monkeypatch.setattr(signals, "generate", answer_with(lambda p: f"<think>\nx\n</think>\n{p.answer}"))
    assert signals.validation_accuracy(model, tokenizer, cfg, sets, limit=3, max_new_tokens=8) == {
        "gsm8k": 1.0, "aqua": 1.0}
    assert asked[-1][0][0]["content"] == cfg.data.system_prompt  # asked with the reasoning prompt
    monkeypatch.setattr(signals, "generate", answer_with(lambda p: "<think>\nx\n</think>\n" + (
        option_text if p is aqua else "-1")))  # the option's value, not its letter: read through the options
    assert signals.validation_accuracy(model, tokenizer, cfg, sets, limit=3, max_new_tokens=8) == {
        "gsm8k": 0.0, "aqua": pytest.approx(1 / 3, abs=1e-4)}
