"""Data: loaders on the real files, one chat format, difficulty subsets, bad input, contamination guard."""

import json
from collections import Counter

import pytest

from reasoning_lab.answers import is_correct
from reasoning_lab.data import (
    Builtin,
    build_examples,
    contamination_report,
    format_example,
    gsm8k_problem,
    load_problems,
    ngrams,
    read_jsonl,
    tokenize,
)
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.model import load_tokenizer
from reasoning_lab.synthetic import STAND_INS, generic, running_sum
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


def test_stand_ins_are_valid_and_seeded():
    for name, make in STAND_INS.items():
        problems = make(200, 3)
        assert problems == make(200, 3), name
        assert all(is_correct(format_example(p, True, "s")["completion"][0]["content"], p.answer, p.kind)
                   for p in problems), name
    aqua = STAND_INS["synthetic_aqua"](200, 1)
    assert Counter(p.answer for p in aqua).keys() == set("ABCDE")
    assert all(len(set(p.question.split("Options: ")[1].split())) == 5 for p in aqua)


def test_generic_reasoning_is_arithmetically_right():
    assert running_sum("4 - 1 - 7") == (["4 - 1 = 3", "3 - 7 = -4"], -4)
    problems = generic(["chain_sum", "leg_counting", "compare_sum"], [1, 2, 3], 20, 0)
    assert {p.difficulty for p in problems} == {1, 2, 3} and {p.kind for p in problems} == {"number", "yesno"}
    for p in problems:
        for line in p.reasoning.splitlines():
            if line.count("=") == 1 and "legs" not in line:
                left, right = line.split("=")
                assert eval(left.replace("x", "*")) == int(right), line


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


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    read_jsonl.cache_clear()


def test_a_few_malformed_rows_are_skipped_and_counted(tmp_path, caplog):
    good = [{"question": f"q{i}", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(300)]
    _write(tmp_path / "gsm8k" / "train.jsonl", good[:150] + ["{not json"] + good[150:] + [{"question": "q"}])
    problems = read_jsonl(str(tmp_path / "gsm8k" / "train.jsonl"), Builtin("gsm8k"))
    assert len(problems) == 300
    assert "train.jsonl:151" in caplog.text and "train.jsonl:302" in caplog.text


@pytest.mark.parametrize(
    "rows, reason",
    [(["[", '{"question": "q", "answer": "#### 1"}', "]"], "invalid JSON"),
     ([{"question": f"q{i}", "answer": "no final line"} for i in range(50)], "answer has no '#### N' line")],
)
def test_mostly_bad_files_are_an_error_quoting_the_first_bad_line(tmp_path, rows, reason):
    _write(tmp_path / "gsm8k" / "train.jsonl", rows)
    with pytest.raises(ReasoningLabError, match=f"line 1, {reason}"):
        read_jsonl(str(tmp_path / "gsm8k" / "train.jsonl"), Builtin("gsm8k"))


def test_aqua_bad_letter_is_malformed(tmp_path):
    row = {"question": "q", "options": ["A)1", "B)2", "C)3", "D)4", "E)5"], "rationale": "r", "correct": "F"}
    _write(tmp_path / "aqua" / "test.jsonl", [row])
    with pytest.raises(ReasoningLabError, match="not one of A-E"):
        read_jsonl(str(tmp_path / "aqua" / "test.jsonl"), Builtin("aqua"))


def test_missing_benchmark_is_one_error_naming_paths_and_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = make_config("data=real", f"data.root={tmp_path}")
    with pytest.raises(ReasoningLabError) as error:
        load_problems(cfg.data, "gsm8k", "test")
    message = str(error.value)
    assert str(tmp_path / "gsm8k" / "test.jsonl") in message and "openai/gsm8k" in message and "data.root" in message


def test_ngrams_ignore_numbers_and_case():
    assert ngrams("James gets 80 emails a day.", 3) == ngrams("james gets 160 EMAILS a day", 3)


def test_guard_refuses_gsm_symbolic_next_to_gsm8k_test(real):
    cfg = make_config("data=real", f"data.root={real.root}", "data.generic.tasks=[gsm_symbolic]",
                      "data.generic.levels=[1]", "data.contamination.action=refuse")
    with pytest.raises(ReasoningLabError, match="training set generic overlaps evaluation set gsm8k"):
        contamination_report(cfg.data, ["generic"], ["gsm8k"])
    allowed = make_config("data=real", f"data.root={real.root}", "data.generic.tasks=[gsm_symbolic]",
                          "data.generic.levels=[1]", "data.allow_contamination=true")
    report = contamination_report(allowed.data, ["generic"], ["gsm8k"])
    assert report["pairs"]["generic->gsm8k"]["share"] > 0.2 and not report["dropped_questions"]


def test_guard_passes_clean_sets_and_drops_aqua_dev_overlap(real):
    report = contamination_report(real, ["gsm8k", "strategyqa", "aqua"], ["gsm8k", "aqua", "strategyqa"])
    assert report["pairs"]["gsm8k->gsm8k"]["share"] <= 0.01
    assert report["pairs"]["strategyqa->strategyqa"]["overlapping"] == 0
    assert report["pairs"]["aqua->aqua"]["share"] > 0.01 and report["dropped"]["aqua"] > 0
    test_questions = {p.question for p in load_problems(real, "aqua", "test")}
    assert not set(report["dropped_questions"]) & {p.question for p in load_problems(real, "gsm8k", "train")}
    assert test_questions  # the dropped rows are training rows, the test split is untouched


def test_same_generator_sets_are_checked_for_identical_questions():
    cfg = make_config()
    report = contamination_report(cfg.data, ["generic", "gsm8k"], ["generic", "synthetic_gsm8k"])
    assert report["pairs"]["generic->generic"]["overlapping"] == 0
    assert report["pairs"]["gsm8k->synthetic_gsm8k"]["overlapping"] == 0


def test_an_aqua_problem_carries_its_options_and_shows_them_in_the_question():
    from reasoning_lab.data import aqua_problem
    from reasoning_lab.synthetic import synthetic_aqua

    row = {"question": "Q?", "options": ["A)12 km", " B)15", "C)18", "D)20", "E)None of these"],
           "rationale": "12 + 3 = 15\nAnswer: B", "correct": "B"}
    problem = aqua_problem(row)
    assert problem.options == ["A)12 km", "B)15", "C)18", "D)20", "E)None of these"]
    assert problem.question == "Q?\nOptions: A)12 km B)15 C)18 D)20 E)None of these"
    for problem in synthetic_aqua(20, seed=0):
        assert len(problem.options) == 5 and problem.question.endswith("Options: " + " ".join(problem.options))
        assert any(option.startswith(problem.answer + ")") for option in problem.options)


def test_eval_checks_what_the_checkpoint_was_trained_on(tmp_path, shared_data):
    """The guard runs against the checkpoint's `trained_on` record: held-out generated sets pass whatever
    the evaluation's data.seed; AQuA dev kept in training (action refuse + allowed at training time)
    overlaps AQuA test and stops the evaluation; the same rows dropped at training time pass."""
    from omegaconf import OmegaConf

    from reasoning_lab.data import held_out_check
    from reasoning_lab.errors import ReasoningLabError

    trained = make_config("data.seed=0")
    record = [{"sets": ["generic", "gsm8k", "aqua", "strategyqa"], "data": OmegaConf.to_container(trained.data)}]
    (tmp_path / "reasoning_lab.json").write_text(json.dumps({"trained_on": record}))
    cfg = make_config("data.seed=1", "eval.datasets=[generic,synthetic_gsm8k,synthetic_aqua,synthetic_strategyqa]")
    (report,) = held_out_check(cfg, tmp_path)
    assert all(pair["overlapping"] == 0 for pair in report["pairs"].values()) and len(report["pairs"]) == 16

    real = make_config("data=real", f"data.root={shared_data}", "data.contamination.action=refuse")
    real_record = OmegaConf.to_container(real.data)
    (tmp_path / "reasoning_lab.json").write_text(json.dumps({"trained_on": [{"sets": ["aqua"], "data": real_record}]}))
    evaluation = make_config("data=real", f"data.root={shared_data}", "eval.datasets=[aqua]")
    with pytest.raises(ReasoningLabError, match="was trained on problems this evaluation would test"):
        held_out_check(evaluation, tmp_path)
    real_record["contamination"]["action"] = "drop"
    (tmp_path / "reasoning_lab.json").write_text(json.dumps({"trained_on": [{"sets": ["aqua"], "data": real_record}]}))
    (report,) = held_out_check(evaluation, tmp_path)
    assert report["dropped"]["aqua"] > 0
