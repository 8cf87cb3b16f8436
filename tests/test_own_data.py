"""Your data, your model, your reward (README, "Your data, your model"): a data set defined in configuration alone,
a reward given as module:function, a model whose tokenizer has no chat template and no pad token."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reasoning_lab.config import validate
from reasoning_lab.data import build_examples, load_problems, source_rows, split_of
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.readers import read_jsonl
from reasoning_lab.rewards import reward_function, reward_functions
from tests.helpers import ROOT, TINY_WARMUP, finished, make_config, run_cli

sys.path.insert(0, str(ROOT / "examples" / "your_data"))
from write_problems import write as write_problems  # noqa: E402

MY_FIELDS = {"question": "q", "answer": "final", "reasoning": "steps", "difficulty": "hardness"}


def with_sets(tmp_path: Path, sets: dict, *overrides: str):
    """The config with `sets` added to data.sets the way a user adds them: in a preset of their own
    (<folder>/experiment/mine.yaml), found through hydra.searchpath."""
    folder = tmp_path / "my_conf"
    (folder / "experiment").mkdir(parents=True, exist_ok=True)
    (folder / "experiment" / "mine.yaml").write_text(
        "# @package _global_\n" + OmegaConf.to_yaml({"data": {"sets": sets}}))
    return make_config(f"hydra.searchpath=[file://{folder}]", "experiment=mine", *overrides)


def my_set(tmp_path: Path, path: Path, **extra):
    """The config with data.sets.mine: a JSONL file with the example's field names."""
    return with_sets(tmp_path, {"mine": {"source": "jsonl", "path": str(path), "fields": MY_FIELDS, "kind": "number",
                                         **extra}})


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    read_jsonl.cache_clear()
    return path


# ------------------------------------------------------------------ a data set from configuration


def test_a_jsonl_set_defined_in_configuration_is_read_with_its_own_field_names(tmp_path):
    path = write_problems(tmp_path / "problems.jsonl", 300)
    read_jsonl.cache_clear()
    cfg = my_set(tmp_path, path)
    validate(cfg)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_question = {r["q"]: r for r in rows}
    splits = {split: load_problems(cfg.data, "mine", split) for split in ("train", "val", "test")}
    # one file: every row in exactly one split, by a hash of its question
    assert sum(len(s) for s in splits.values()) == 300
    for split, problems in splits.items():
        assert problems and all(split_of(p.question) == split for p in problems)
    for p in splits["train"]:
        row = by_question[p.question]
        assert p.answer == str(row["final"]) and p.kind == "number" and p.difficulty == float(row["hardness"])
        assert p.reasoning == "\n".join(row.get("steps", []))  # a list of lines; absent: no reasoning
        assert p.source == "mine"
    # evaluation names the set as it names a source
    assert source_rows("mine", "test", cfg.data) == splits["test"]


def test_rows_without_reasoning_train_as_direct_answers_or_are_left_out(tmp_path):
    path = write_problems(tmp_path / "problems.jsonl", 200)
    read_jsonl.cache_clear()
    direct = build_examples(my_set(tmp_path, path).data, ["mine"], "train")
    skip = build_examples(my_set(tmp_path, path, without_reasoning="skip").data, ["mine"], "train")
    problems = load_problems(my_set(tmp_path, path).data, "mine", "train")
    without = [p for p in problems if not p.reasoning]
    assert without and len(direct) == len(problems) and len(skip) == len(problems) - len(without)
    bare = {p.question for p in without}
    for example in direct:
        if example["prompt"][-1]["content"] in bare:  # answered directly: no system prompt, no think block
            assert len(example["prompt"]) == 1 and "<think>" not in example["completion"][0]["content"]
    assert not bare & {e["prompt"][-1]["content"] for e in skip}


def test_choice_and_yesno_sets_with_a_test_file_of_their_own(tmp_path):
    train = write_rows(tmp_path / "train.jsonl", [
        {"text": f"Which is {i} + 1?", "choices": [str(i), str(i + 1), str(i + 2)], "label": "b"} for i in range(40)])
    test = write_rows(tmp_path / "test.jsonl", [
        {"text": "Which is 100 + 1?", "choices": ["A)100", "B)101", "C)102"], "label": "B"}])
    yes = write_rows(tmp_path / "yes.jsonl", [{"claim": f"Is {i} even?", "truth": i % 2 == 0} for i in range(50)])
    cfg = with_sets(tmp_path, {
        "pick": {"source": "jsonl", "splits": {"train": str(train), "test": str(test)}, "kind": "choice",
                 "fields": {"question": "text", "answer": "label", "options": "choices"}},
        "yn": {"source": "jsonl", "path": str(yes), "fields": {"question": "claim", "answer": "truth"}, "kind": "yesno"}})
    validate(cfg)
    first = load_problems(cfg.data, "pick", "train")[0]
    assert first.answer == "B" and first.options[0].startswith("A)") and "\nOptions: A)" in first.question
    assert len(load_problems(cfg.data, "pick", "train")) + len(load_problems(cfg.data, "pick", "val")) == 40
    assert [p.answer for p in load_problems(cfg.data, "pick", "test")] == ["B"]
    answers = {p.question: p.answer for s in ("train", "val", "test") for p in load_problems(cfg.data, "yn", s)}
    assert answers["Is 4 even?"] == "yes" and answers["Is 7 even?"] == "no" and len(answers) == 50


@pytest.mark.parametrize("extra, message", [
    ({"kind": "letters"}, "data.sets.mine.kind='letters' is not one of number, choice, yesno"),
    ({"without_reasoning": "maybe"}, "data.sets.mine.without_reasoning='maybe' is not one of direct, skip"),
])
def test_a_wrong_kind_is_refused_before_anything_loads(tmp_path, extra, message):
    with pytest.raises(ReasoningLabError, match=message):
        validate(my_set(tmp_path, tmp_path / "x.jsonl", **extra))


def test_a_set_without_a_kind_or_a_file_is_one_line_naming_the_set(tmp_path):
    with pytest.raises(ReasoningLabError, match=r"data.sets.mine.kind=None: a jsonl set needs the kind"):
        validate(with_sets(tmp_path, {"mine": {"source": "jsonl", "path": "x.jsonl"}}))
    with pytest.raises(ReasoningLabError, match=r"data.sets.mine.fields.options is not set"):
        validate(with_sets(tmp_path, {"mine": {"source": "jsonl", "path": "x.jsonl", "kind": "choice"}}))
    with pytest.raises(ReasoningLabError, match=r"data.sets.mine: a jsonl set needs path=<one file> or splits.train"):
        validate(with_sets(tmp_path, {"mine": {"source": "jsonl", "kind": "number"}}))
    with pytest.raises(ReasoningLabError, match=r"data.sets.mine: a hub set needs id and splits.train"):
        validate(with_sets(tmp_path, {"mine": {"source": "hub", "kind": "number"}}))
    cfg = my_set(tmp_path, tmp_path / "missing.jsonl")
    validate(cfg)  # the file is read when a stage asks for the set
    with pytest.raises(ReasoningLabError, match=r"data.sets.mine.path=.*missing.jsonl is not a file"):
        load_problems(cfg.data, "mine", "train")


def test_rows_missing_a_mapped_field_name_the_set_field_and_fix(tmp_path):
    path = write_rows(tmp_path / "p.jsonl", [{"question": f"q{i}?", "final": i, "hardness": 1} for i in range(30)])
    with pytest.raises(ReasoningLabError) as error:
        load_problems(my_set(tmp_path, path).data, "mine", "train")
    line = str(error.value)
    assert "\n" not in line
    assert "no field 'q' (data.sets.mine.fields.question; the row has: question, final, hardness)" in line
    assert "fix the file, or data.sets.mine.fields" in line


def test_a_few_malformed_rows_are_skipped_and_counted(tmp_path, caplog):
    rows = [{"q": f"q{i}?", "final": i, "hardness": 1} for i in range(200)] + [{"q": "bad?", "final": "many", "hardness": 1}]
    path = write_rows(tmp_path / "p.jsonl", rows)
    cfg = my_set(tmp_path, path)
    problems = [p for s in ("train", "val", "test") for p in load_problems(cfg.data, "mine", s)]
    assert len(problems) == 200
    assert "p.jsonl:201 skipped: answer 'many' is not a number answer" in caplog.text


def test_the_benchmarks_read_the_same_rows_and_answers_as_before(shared_data):
    """data=real through the shared reading path: the same problems as before it was shared (row counts, and a
    digest of every field of every problem, recorded from the earlier readers on ../shared/data)."""
    cfg = make_config("data=real", f"data.root={shared_data}")
    expected = {("gsm8k", "train"): (7441, "81879d15a472324f"), ("gsm8k", "val"): (32, "3bc71eae9086c1da"),
                ("gsm8k", "test"): (1319, "42a280e92ea30c2d"), ("aqua", "train"): (229, "98287f21473d39eb"),
                ("aqua", "val"): (25, "7c83eb6336b647f0"), ("aqua", "test"): (254, "1521a396c1deff82"),
                ("strategyqa", "train"): (2029, "597f5e5d11e9f884"), ("strategyqa", "val"): (32, "46edb1c8753ea1d9"),
                ("strategyqa", "test"): (229, "1ffc69c00164e39f")}
    for (name, split), (n, digest) in expected.items():
        problems = load_problems(cfg.data, name, split) if split != "test" else source_rows(name, "test", cfg.data)
        found = hashlib.sha256(json.dumps([asdict(p) for p in problems]).encode()).hexdigest()[:16]
        assert (len(problems), found) == (n, digest), (name, split)


def test_gsm8k_as_a_set_of_your_own_gives_the_benchmark_s_questions_and_answers(tmp_path, shared_data):
    """GSM8K's file through the generic reader (its `#### N` answers understood) matches the built-in reader."""
    files = {split: str(shared_data / "gsm8k" / f"{split}.jsonl") for split in ("train", "test")}
    cfg = with_sets(tmp_path, {"own": {"source": "jsonl", "splits": files, "kind": "number"}}, "data=real",
                    f"data.root={shared_data}")
    own, builtin = source_rows("own", "test", cfg.data), source_rows("gsm8k", "test", cfg.data)
    assert [(p.question, p.answer, p.reasoning) for p in own] == [(p.question, p.answer, p.reasoning) for p in builtin]


# ------------------------------------------------------------------ your own reward


def test_a_reward_given_as_module_function_is_called_as_trl_calls_it(tmp_path, monkeypatch):
    (tmp_path / "house_rewards.py").write_text(
        "def exact(completions, answer, **kwargs):\n"
        "    return [float(c[-1]['content'].strip() == a) for c, a in zip(completions, answer)]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "house_rewards", raising=False)
    funcs = reward_functions(["correctness", "house_rewards:exact", f"{ROOT}/examples/your_data/my_reward.py:brevity"])
    assert [f.__name__ for f in funcs] == ["correctness", "exact", "brevity"]
    completions = [[{"role": "assistant", "content": "7"}], [{"role": "assistant", "content": "word " * 50}]]
    assert funcs[1](prompts=["p", "p"], completions=completions, completion_ids=[[1], [2]], answer=["7", "8"],
                    kind=["number"] * 2) == [1.0, 0.0]
    assert funcs[2](prompts=["p", "p"], completions=completions, answer=["7", "8"]) == [0.2, 0.0]


def test_a_bad_reward_entry_is_one_line_before_any_model_loads(tmp_path, monkeypatch):
    (tmp_path / "bad_rewards.py").write_text("def positional(a, b):\n    return [0.0]\nVALUE = 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "bad_rewards", raising=False)
    cases = {"no_such_module:f": "'no_such_module:f' cannot be imported (ModuleNotFoundError",
             "bad_rewards:missing": "bad_rewards has no function 'missing'",
             "bad_rewards:VALUE": "bad_rewards has no function 'VALUE'",
             "bad_rewards:positional": "give it the parameters (completions, **kwargs)",
             f"{tmp_path}/nowhere.py:f": "cannot be imported",
             "nonsense": "unknown reward 'nonsense'; use one of correctness, partial_credit, format or module:function"}
    for name, message in cases.items():
        with pytest.raises(ReasoningLabError, match=re.escape(message)):
            reward_function(name)
    with pytest.raises(ReasoningLabError, match="bad_rewards:positional has the signature"):
        validate(make_config("rl.rewards=[{name:correctness},{name:bad_rewards:positional}]"))


# ------------------------------------------------------------------ end to end on tiny_random


@pytest.mark.app
@pytest.mark.slow
def test_warmup_rl_and_evaluation_on_a_set_and_reward_given_in_configuration(tmp_path):
    """experiment=your_data at debug=tiny: the warm-up trains on the JSONL set (the example's own field names),
    evaluates it, GRPO trains on its prompts with the example's reward from a file, and evaluates again."""
    data = write_problems(tmp_path / "problems.jsonl", 400)
    reward = f"{ROOT}/examples/your_data/my_reward.py:brevity"
    run_dir = tmp_path / "run"
    result = run_cli("experiment=your_data", "debug=tiny", f"data.sets.my_problems.path={data}",
                     f"rl.rewards=[{{name:correctness}},{{name:format}},{{name:'{reward}'}}]", "rl.eval_every=0",
                     "logger=none", f"hydra.run.dir={run_dir}")
    warmup = finished(run_dir, result, "warmup")
    assert warmup["train_data"]["per_source"] == {"my_problems": warmup["train_data"]["examples"]}
    assert warmup["train_data"]["examples"] == sum(split_of(json.loads(r)["q"]) == "train"
                                                   for r in data.read_text().splitlines())
    assert warmup["eval"]["my_problems"]["n"] > 0
    rl = finished(run_dir, result, "rl")
    assert rl["after"]["my_problems"]["n"] == rl["before"]["my_problems"]["n"] > 0
    assert all("rewards/brevity/mean" in step for step in rl["train"]["history"])


@pytest.mark.app
@pytest.mark.slow
def test_a_local_model_without_chat_template_or_pad_token_trains_and_evaluates(tmp_path):
    """A base checkpoint as many ship: no chat template, no pad token. The default template (ChatML turns ending
    in the end-of-sequence token) and pad = eos are set, and LoRA targets default to peft's for the architecture."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoning_lab.model import DEFAULT_CHAT_TEMPLATE, tiny_random_dir

    source = tiny_random_dir(make_config("model=tiny_random").model.tiny)
    bare = tmp_path / "bare_model"
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.chat_template, tokenizer.pad_token = None, None
    tokenizer.save_pretrained(bare)
    AutoModelForCausalLM.from_pretrained(source).save_pretrained(bare)
    reloaded = AutoTokenizer.from_pretrained(bare)
    assert reloaded.chat_template is None and reloaded.pad_token is None  # the case under test
    run_dir = tmp_path / "run"
    result = run_cli(*TINY_WARMUP, f"model.source={bare}", "model.name=bare", "model.tiny=null",
                     "model.lora.target_modules=null", "logger=none", f"hydra.run.dir={run_dir}")
    metrics = finished(run_dir, result, "warmup")
    assert metrics["eval"]["generic"]["n"] == 2
    saved = AutoTokenizer.from_pretrained(run_dir / "warmup" / "checkpoint")
    assert saved.chat_template == DEFAULT_CHAT_TEMPLATE and saved.pad_token == saved.eos_token
    adapter = json.loads((run_dir / "warmup" / "checkpoint" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]  # peft's default for LLaMA
