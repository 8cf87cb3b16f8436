"""stage=answer: one question in, a self-consistent answer out (and a file of questions)."""

import json

import pytest

from reasoning_lab.answers import majority_vote
from tests.helpers import TINY_ANSWER, run_cli


@pytest.mark.app
def test_printed_vote_matches_the_saved_paths(tmp_path):
    result = run_cli(*TINY_ANSWER, "checkpoint.eval=base", "answer.question=What is 12 + 30?", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    (saved,) = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert len(saved["paths"]) == 4 and saved["kind"] == "number"
    voted = majority_vote([p["answer"] for p in saved["paths"]])
    assert f"answer: {voted}" in result.stdout.splitlines()
    counts = {}
    for p in saved["paths"]:
        counts[str(p["answer"])] = counts.get(str(p["answer"]), 0) + 1
    assert saved["votes"] == counts
    assert "votes (4 paths): " + ", ".join(f"{a}: {c}" for a, c in counts.items()) in result.stdout


@pytest.mark.app
def test_questions_file_and_newest_checkpoint_of_a_run(tmp_path, tiny_warmup):
    train = tiny_warmup
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "Is 9 greater than 3?"}\n\n{"question": "What is 2+2?\\nOptions: A)3 B)4 C)5 D)6 E)7"}\n')
    out = tmp_path / "answers"
    result = run_cli(*TINY_ANSWER, f"checkpoint.search={train}", f"answer.questions={questions}", "answer.reason=false", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{train}/warmup/checkpoint" in result.stdout
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["yesno", "choice"] and all(len(r["paths"]) == 4 for r in rows)
    assert all(r["reason"] is False for r in rows)


@pytest.mark.parametrize(
    "args, message",
    [(["answer.question="], "no question"), (["answer.question=hi", "checkpoint.eval=/no/such/dir"], "does not exist"),
     (["answer.question=hi", "checkpoint.search=/no/such/run"], "does not exist"), (["answer.question=hi", "answer.kind=date"], "answer.kind='date' is not one of number")],
)
@pytest.mark.app
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    result = run_cli(*TINY_ANSWER, *args, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.app
def test_checkpoint_of_another_base_model_is_refused(tmp_path, tiny_warmup):
    result = run_cli("stage=answer", "model=smollm2_135m", "answer.question=hi",
                     f"checkpoint.eval={tiny_warmup}/warmup/checkpoint", f"hydra.run.dir={tmp_path / 'a'}")
    assert result.returncode == 2 and "trained on model=tiny_random" in result.stderr


@pytest.mark.app
def test_k_0_answers_greedily_with_one_path(tmp_path):
    """eval.k=0 (the default): the greedy answer alone, the same on a second run."""
    answers = []
    for run in ("a", "b"):
        result = run_cli(*TINY_ANSWER, "eval.k=0", "seed=" + str(len(answers)), "checkpoint.eval=base",
                         "answer.question=What is 12 + 30?", f"hydra.run.dir={tmp_path / run}")
        assert result.returncode == 0, result.stderr[-2000:]
        (saved,) = [json.loads(line) for line in (tmp_path / run / "answers.jsonl").read_text().splitlines()]
        assert len(saved["paths"]) == 1 and saved["vote"] == "greedy" and saved["paths"][0]["logprob"] is None
        assert "votes (1 paths)" in result.stdout
        answers.append(saved["paths"][0]["completion"])
    assert answers[0] == answers[1]  # greedy: no seed changes it
