"""Data: loaders on the real files, one chat format, difficulty subsets, tokens with a completion mask."""

from collections import Counter

import pytest

from reasoning_lab.answers import is_correct
from reasoning_lab.data import build_examples, format_example, load_problems, tokenize
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.model import load_tokenizer
from reasoning_lab.readers import gsm8k_problem
from tests.helpers import make_config


@pytest.fixture(scope="module")
def real(shared_data):
    return make_config("data=real", f"data.root={shared_data}").data


def test_real_splits_have_the_published_sizes(real):
    assert len(load_problems(real, "gsm8k", "test")) == 1319
    assert len(load_problems(real, "aqua", "test")) == 254
    assert len(load_problems(real, "strategyqa", "test")) == 229  # StrategyQA dev
    train, val = load_problems(real, "gsm8k", "train"), load_problems(real, "gsm8k", "val")
    assert len(train) + len(val) == 7473 and len(val) == real.val_size
    assert not {p.question for p in train} & {p.question for p in val}


def test_gold_answers_of_every_real_row_are_canonical_and_self_consistent(real):
    for name, n in (("gsm8k", 1319), ("aqua", 254), ("strategyqa", 229)):
        problems = load_problems(real, name, "test")
        assert len(problems) == n
        assert all(is_correct(format_example(p, True, "s")["completion"][0]["content"], p.answer, p.kind)
                   for p in problems), name


def test_gsm8k_reasoning_has_no_calculator_notes_and_no_final_line(real):
    for p in load_problems(real, "gsm8k", "test")[:200]:
        assert "<<" not in p.reasoning and "####" not in p.reasoning


def test_subset_sizes_and_difficulty_bounds(real):
    simple = load_problems(real, "gsm8k_simple", "train")
    medium = load_problems(real, "gsm8k_medium", "train")
    assert all(p.difficulty <= 2 for p in simple) and all(3 <= p.difficulty <= 4 for p in medium)
    counts = Counter(p.difficulty for p in load_problems(real, "gsm8k", "train") + load_problems(real, "gsm8k", "val"))
    # DESIGN.md: calculator notes per solution 0: 95, 1: 404, 2: 2175, 3: 2137, 4: 1424 (0-note rows count lines)
    assert counts[3] >= 2137 and counts[4] >= 1424


def test_aqua_trains_on_dev_when_the_local_copy_has_no_train(real, caplog):
    rows = load_problems(real, "aqua", "train") + load_problems(real, "aqua", "val")
    assert len(rows) == 254
    assert all(p.answer in "ABCDE" and "Options: A)" in p.question for p in rows)


def test_one_chat_format():
    problem = gsm8k_problem({"question": "Q?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"})
    reason = format_example(problem, True, "Generate a step by step reasoning for this question.")
    direct = format_example(problem, False, "unused")
    assert reason["prompt"][0] == {"role": "system", "content": "Generate a step by step reasoning for this question."}
    assert reason["completion"][0]["content"] == "<think>\n2 + 2 = 4\n</think>\n4"
    assert [m["role"] for m in direct["prompt"]] == ["user"] and direct["completion"][0]["content"] == "4"
    assert (reason["answer"], reason["kind"], reason["difficulty"], reason["source"]) == ("4", "number", 1.0, "gsm8k")


def test_direct_share_is_respected():
    cfg = make_config("data.direct_share=0.5")
    examples = build_examples(cfg.data, ["gsm8k"], "train")
    direct = sum(len(e["prompt"]) == 1 for e in examples)
    assert 0.4 < direct / len(examples) < 0.6
    assert all(("<think>" in e["completion"][0]["content"]) == (len(e["prompt"]) == 2) for e in examples)


def test_tokenize_masks_the_prompt_and_counts_overlong(tmp_path):
    cfg = make_config("model=tiny_random")
    tokenizer = load_tokenizer(cfg.model)
    examples = build_examples(cfg.data, ["gsm8k"], "train")[:40]
    dataset, stats = tokenize(examples, tokenizer, max_length=512, overflow="drop")
    assert stats["examples"] == 40 and not stats["overlong"]
    row = dataset[0]
    completion = tokenizer.decode([t for t, m in zip(row["input_ids"], row["completion_mask"]) if m])
    assert completion.startswith(examples[0]["completion"][0]["content"])
    lengths = sorted(len(r) for r in dataset["input_ids"])
    cut = lengths[20]
    dropped, stats = tokenize(examples, tokenizer, max_length=cut, overflow="drop")
    assert len(dropped) + sum(stats["overlong"].values()) == 40 and sum(stats["overlong"].values()) > 0
    cut_rows, stats = tokenize(examples, tokenizer, max_length=cut, overflow="truncate")
    assert len(cut_rows) == 40 and max(len(r) for r in cut_rows["input_ids"]) == cut
    with pytest.raises(ReasoningLabError, match="max_length"):
        tokenize(examples, tokenizer, max_length=5, overflow="drop")


def test_missing_benchmark_is_one_error_naming_paths_and_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = make_config("data=real", f"data.root={tmp_path}")
    with pytest.raises(ReasoningLabError) as error:
        load_problems(cfg.data, "gsm8k", "test")
    message = str(error.value)
    assert str(tmp_path / "gsm8k" / "test.jsonl") in message and "openai/gsm8k" in message and "data.root" in message


