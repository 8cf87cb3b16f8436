"""Paired comparison of runs (reasoning_lab.compare) and the statistics behind it (reasoning_lab.stats)."""

import json
import random

import pytest

from reasoning_lab.compare import compare_runs, main
from reasoning_lab.stats import mcnemar_p


def write_run(folder, dataset, correct, votes=None, questions=None):
    """A fabricated evaluation folder: predictions/<dataset>.jsonl with one row per problem."""
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    questions = questions or [f"question {i}" for i in range(len(correct))]
    votes = votes if votes is not None else correct
    rows = [{"question": q, "correct": c, "vote_correct": v} for q, c, v in zip(questions, correct, votes)]
    (folder / "predictions" / f"{dataset}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_thirty_against_five_discordant_pairs_is_significant(tmp_path):
    # n=100: both right on 40, both wrong on 25, B only right on 30, A only right on 5
    a = [True] * 40 + [False] * 25 + [False] * 30 + [True] * 5
    b = [True] * 40 + [False] * 25 + [True] * 30 + [False] * 5
    result = compare_runs([write_run(tmp_path / "a", "gsm8k", a), write_run(tmp_path / "b", "gsm8k", b)])
    (c,) = result["comparisons"]
    assert c["n"] == 100 and c["delta"] == pytest.approx(0.25) and c["discordant"] == [5, 30]
    assert c["p_value"] < 0.001 and c["ci95"][0] > 0.1 and c["ci95"][1] < 0.4
    # exact binomial: 2 * P(X <= 5), X ~ Bin(35, 1/2)
    assert mcnemar_p(a, b) == pytest.approx(2 * sum(__import__("math").comb(35, i) for i in range(6)) / 2**35)


def test_a_run_against_itself_is_no_difference(tmp_path):
    rng = random.Random(0)
    correct = [rng.random() < 0.5 for _ in range(50)]
    run = write_run(tmp_path / "a", "generic", correct)
    (c,) = compare_runs([run, run])["comparisons"]
    assert c["delta"] == 0 and c["ci95"] == [0.0, 0.0] and c["p_value"] == 1.0 and c["maj_p_value"] == 1.0


def test_different_problem_sets_are_refused_in_one_line(tmp_path, capsys):
    a = write_run(tmp_path / "a", "gsm8k", [True] * 10)
    b = write_run(tmp_path / "b", "gsm8k", [True] * 10, questions=[f"other {i}" for i in range(10)])
    result = compare_runs([a, b])
    assert result["comparisons"] == [] and len(result["not_compared"]) == 1
    assert "different problems" in result["not_compared"][0] and "0 shared" in result["not_compared"][0]
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 2
    assert "no dataset was evaluated on the same problems" in capsys.readouterr().err


def test_three_runs_write_every_file_with_holm_corrected_p_values(tmp_path):
    rng = random.Random(1)
    base = [rng.random() < 0.3 for _ in range(80)]
    runs = [write_run(tmp_path / "a", "aqua", base),
            write_run(tmp_path / "b", "aqua", [x or rng.random() < 0.4 for x in base]),
            write_run(tmp_path / "c", "aqua", [x and rng.random() < 0.9 for x in base])]
    assert main([str(r) for r in runs] + ["--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [c["b"] for c in result["comparisons"]] == [str(runs[1]), str(runs[2])]
    for c in result["comparisons"]:
        assert set(c) >= {"n", "accuracy_a", "accuracy_b", "delta", "ci95", "p_value", "p_holm", "maj_delta",
                          "maj_ci95", "maj_p_value"}
        assert c["p_holm"] >= c["p_value"]
    assert "| aqua |" in (tmp_path / "out" / "compare.md").read_text()
    assert (tmp_path / "out" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_voting_pools_maj_against_greedy_within_each_run(tmp_path, capsys):
    """--voting: in each run maj@k against greedy on the same problems, pooled over the runs; samples' accuracy."""
    rng = random.Random(2)
    runs, greedy_runs = [], []
    for r in range(3):  # voting right on 20 more problems than greedy in every run, wrong on 2 it got right
        greedy = [rng.random() < 0.3 for _ in range(120)]
        greedy_runs.append(greedy)
        votes = list(greedy)
        flips = [i for i, g in enumerate(greedy) if not g][:20]
        for i in flips:
            votes[i] = True
        votes[[i for i, g in enumerate(greedy) if g][0]] = False
        votes[[i for i, g in enumerate(greedy) if g][1]] = False
        folder = write_run(tmp_path / f"run{r}", "generic", greedy, votes)
        rows = [json.loads(line) for line in (folder / "predictions" / "generic.jsonl").read_text().splitlines()]
        for row, g in zip(rows, greedy):  # five samples a problem: 2 right where greedy is right, else 1; their
            # answers agree from the start where greedy is right (settled after 3), else split until the last
            answers = ["x", "x", "x", "y", "z"] if g else ["x", "y", "z", "x", "w"]
            row["samples"] = [{"correct": i < (2 if g else 1), "answer": a} for i, a in enumerate(answers)]
            row["weighted_vote_correct"] = g  # the weighted vote: greedy's answers exactly
        (folder / "predictions" / "generic.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
        runs.append(folder)
    assert main(["--voting", *map(str, runs), "--out", str(tmp_path / "out")]) == 0
    c, weighted = json.loads((tmp_path / "out" / "compare.json").read_text())["comparisons"]
    assert (c["b"], weighted["b"]) == ("maj@k", "wmaj@k") and weighted["delta"] == 0 and c["mean_samples"] == [5.0] * 3
    assert c["seeds"] == 3 and c["per_seed_delta"] == [pytest.approx(18 / 120)] * 3
    assert c["p_value"] < 0.001 and c["ci95"][0] > 0.1
    assert all(0.2 < x < 0.3 for x in c["samples_accuracy"])
    assert c["adaptive_samples"] == [round((3 * sum(g) + 5 * (120 - sum(g))) / 120, 2) for g in greedy_runs]
    assert "samples' own accuracy" in (tmp_path / "out" / "compare.md").read_text()
    no_samples = write_run(tmp_path / "greedy_only", "generic", [True] * 5, votes=[None] * 5)
    assert main(["--voting", str(no_samples), "--out", str(tmp_path / "out2")]) == 2
    assert "eval.k >= 2" in capsys.readouterr().err
