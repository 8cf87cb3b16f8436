"""Readers (reasoning_lab.readers): benchmark rows -> problems, malformed rows skipped and counted, mostly bad files
refused in one line quoting the first bad row, AQuA's options."""

import json

import pytest

from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.readers import Builtin, read_jsonl


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


def test_an_aqua_problem_carries_its_options_and_shows_them_in_the_question():
    from reasoning_lab.readers import aqua_problem
    from reasoning_lab.synthetic import synthetic_aqua

    row = {"question": "Q?", "options": ["A)12 km", " B)15", "C)18", "D)20", "E)None of these"],
           "rationale": "12 + 3 = 15\nAnswer: B", "correct": "B"}
    problem = aqua_problem(row)
    assert problem.options == ["A)12 km", "B)15", "C)18", "D)20", "E)None of these"]
    assert problem.question == "Q?\nOptions: A)12 km B)15 C)18 D)20 E)None of these"
    for problem in synthetic_aqua(20, seed=0):
        assert len(problem.options) == 5 and problem.question.endswith("Options: " + " ".join(problem.options))
        assert any(option.startswith(problem.answer + ")") for option in problem.options)
