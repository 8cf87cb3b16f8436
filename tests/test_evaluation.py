"""Evaluation (reasoning_lab.evaluation) and the eval stage with its report."""

import json

import pytest

from reasoning_lab.evaluation import evaluate_problems, well_formed
from reasoning_lab.problem import Problem
from tests.helpers import make_config


def test_well_formed():
    assert well_formed("<think>\n1 + 1 = 2\n</think>\n2")
    assert not well_formed("<think>\n1 + 1 = 2\n</think>\n")
    assert not well_formed("<think>a</think><think>b</think>2")
    assert not well_formed("2") and not well_formed("<think> never closed 2")


def test_metrics_from_known_completions(monkeypatch):
    """generate() replaced by known completions, to check the bookkeeping exactly."""
    from reasoning_lab import evaluation
    from reasoning_lab.decoding import Completion

    problems = [Problem("2+2?", "", "4", "number", 1, "t"), Problem("3+3?", "", "6", "number", 1, "t")]
    greedy = [[Completion("<think>\n2+2=4\n</think>\n4", 9, False)], [Completion("7", 1, False)]]
    sampled = [[Completion(t, 3, False) for t in ("4", "5", "4", "<think>x")],
               [Completion(t, 3, t == "cut") for t in ("6", "7", "7", "cut")]]
    direct = [[Completion("4", 1, False)], [Completion("<think>6</think>6", 4, False)]]
    calls = iter([greedy, sampled, direct])
    monkeypatch.setattr(evaluation, "generate", lambda *a, **k: next(calls))
    budget = make_config().eval
    budget.k, budget.max_new_tokens, budget.direct_max_new_tokens = 4, 16, 8
    metrics, predictions = evaluate_problems(None, None, problems, budget, "sys", seed=0)
    assert metrics["n"] == 2 and metrics["accuracy"] == 0.5
    assert metrics["maj@4"] == 0.5  # problem 1 votes 4 (right), problem 2 votes 7 (wrong)
    assert metrics["pass@1"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert metrics["pass@4"] == 1.0
    assert metrics["format_rate"] == 0.5 and metrics["think_rate_with_prompt"] == 0.5
    assert metrics["think_rate_without_prompt"] == 0.5 and metrics["direct_rate"] == 0.5
    assert metrics["cap_rate"] == pytest.approx(1 / 10)
    assert predictions[1]["vote"] == "7" and predictions[1]["samples"][0]["correct"] is True
    assert metrics["accuracy_direct"] == 1.0  # both direct answers are right ("4"; "6" after the think block)
    assert metrics["intervals"]["accuracy"] == pytest.approx([0.0945, 0.9055], abs=1e-3)  # Wilson, 1 of 2
    assert metrics["max_new_tokens"] == 16 and metrics["direct_max_new_tokens"] == 8


def test_k_0_is_greedy_only_no_samples_drawn_and_no_vote_reported(monkeypatch, tmp_path):
    from reasoning_lab import evaluation
    from reasoning_lab.compare import compare_runs
    from reasoning_lab.decoding import Completion

    problems = [Problem("2+2?", "", "4", "number", 1, "t"), Problem("3+3?", "", "6", "number", 1, "t")]
    greedy = [[Completion("<think>\n2+2=4\n</think>\n4", 9, False)], [Completion("7", 1, False)]]
    calls = []
    monkeypatch.setattr(evaluation, "generate", lambda *a, **k: calls.append(k) or greedy)
    budget = make_config("eval.k=0", "eval.direct_limit=0", "eval.max_new_tokens=16", "eval.direct_max_new_tokens=8").eval
    metrics, predictions = evaluate_problems(None, None, problems, budget, "sys", seed=0)
    assert len(calls) == 2 and not any(c.get("do_sample") for c in calls)  # greedy, and the empty direct pass
    assert metrics["accuracy"] == 0.5 and not any(k.startswith(("maj@", "pass@")) for k in metrics)
    assert "maj@0" not in metrics["intervals"] and predictions[0]["samples"] == [] and predictions[0]["vote_correct"] is None
    # direct_limit=0: nothing was asked without the prompt, so no direct numbers (not a measured 0)
    assert not {"accuracy_direct", "think_rate_without_prompt", "direct_rate"} & (set(metrics) | set(metrics["intervals"]))
    for name in ("a", "b"):
        (tmp_path / name / "predictions").mkdir(parents=True)
        (tmp_path / name / "predictions" / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in predictions))
    (c,) = compare_runs([tmp_path / "a", tmp_path / "b"])["comparisons"]
    assert c["p_value"] == 1.0 and c["maj_p_value"] is None and c["maj_delta"] is None


def test_token_budget_covers_the_reference_completions():
    from reasoning_lab.data import answer_token_cap, format_example, source_rows
    from reasoning_lab.model import load_tokenizer

    cfg = make_config()
    tokenizer = load_tokenizer(cfg.model)
    for source in ("generic", "synthetic_gsm8k", "synthetic_aqua", "synthetic_strategyqa"):
        problems = source_rows(source, "test", cfg.data)
        budget = answer_token_cap(tokenizer, problems, reason=True)
        lengths = [len(tokenizer(format_example(p, True, "")["completion"][0]["content"])["input_ids"]) + 1
                   for p in problems]
        assert sum(n > budget for n in lengths) / len(lengths) <= 0.01, source  # the cap leaves the references whole
        assert budget <= 2 * max(lengths), source  # and is not wildly larger


def test_the_base_model_is_evaluated_greedy_unless_base_samples(monkeypatch, tmp_path):
    """eval.base_samples=false (the default): the base model's evaluation draws no samples, on the same problems and
    budgets otherwise; true: the k samples too. The two are cached apart."""
    from reasoning_lab import evaluation

    monkeypatch.setenv("REASONING_LAB_CACHE", str(tmp_path / "cache"))
    seen = []

    def fake_evaluate(model, tokenizer, cfg, budget, label, out_dir, datasets=None):
        seen.append(dict(budget))
        return {"datasets": {}, "skipped": {}}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    monkeypatch.setattr(evaluation, "load_base_model", lambda model_cfg: None)
    for overrides in ((), ("eval.base_samples=true",)):
        cfg = make_config("model=tiny_random", "eval.k=3", *overrides)
        evaluation.base_results(cfg, None, cfg.eval, tmp_path / "out")
    without, with_samples = seen
    assert without["k"] == 0 and with_samples["k"] == 3
    same = {key for key in without if key not in ("k", "base_samples")}
    assert {key: without[key] for key in same} == {key: with_samples[key] for key in same}
    assert len(list((tmp_path / "cache" / "base_eval").iterdir())) == 2


def test_the_base_models_cache_entry_changes_with_the_problems_themselves(monkeypatch):
    """A generator or data file that changes the evaluated problems under the same settings gets a new entry
    (the old key saw only the settings: a changed stand-in reused a stale "before")."""
    from dataclasses import replace

    from reasoning_lab import evaluation

    cfg = make_config("model=tiny_random")
    key = evaluation.base_cache_key(cfg, cfg.eval)
    assert evaluation.base_cache_key(cfg, cfg.eval) == key  # deterministic
    evaluated = make_config("model=tiny_random", "stage=eval", "checkpoint.eval=/some/adapter")
    assert evaluation.base_cache_key(evaluated, evaluated.eval) == key  # whichever adapter is evaluated beside it
    drawn = evaluation.eval_problems

    def one_reasoning_changed(cfg, source, limit):
        problems = drawn(cfg, source, limit)
        return [replace(problems[0], reasoning=problems[0].reasoning + " "), *problems[1:]]

    monkeypatch.setattr(evaluation, "eval_problems", one_reasoning_changed)
    assert evaluation.base_cache_key(cfg, cfg.eval) != key


def test_adaptive_k_samples_until_the_vote_is_settled_and_reports_both_votes(monkeypatch):
    """eval.adaptive_k with k=5: three samples a problem first; a problem whose three agree stops there, the others
    get one more at a time until the vote cannot change (or five). Both votes are reported; pass@5 is not."""
    from reasoning_lab import evaluation
    from reasoning_lab.decoding import Completion

    problems = [Problem(q, "", a, "number", 1, "t") for q, a in (("2+2?", "4"), ("3+3?", "6"), ("1+1?", "2"))]
    scripts = {"2+2?": ["4", "4", "4", "9", "9"], "3+3?": ["6", "7", "7", "7", "6"], "1+1?": ["2", "3", "2", "2", "3"]}
    confidences = {"6": -0.1, "7": -2.0}  # the wrong 7s are unsure, the right 6 is sure (mean log-probabilities)
    drawn = {q: 0 for q in scripts}
    calls = []

    def fake_generate(model, tokenizer, prompts, budgets, k=1, do_sample=False, **kwargs):
        calls.append((len(prompts), k, do_sample))
        out = []
        for prompt in prompts:
            question = prompt[-1]["content"]
            if not do_sample:
                out.append([Completion("0", 1, False)])
                continue
            texts = scripts[question][drawn[question] : drawn[question] + k]
            drawn[question] += k
            out.append([Completion(t, 1, False, confidences.get(t, -0.5)) for t in texts])
        return out

    monkeypatch.setattr(evaluation, "generate", fake_generate)
    budget = make_config("eval.k=5", "eval.adaptive_k=true", "eval.direct_limit=0", "eval.max_new_tokens=16",
                         "eval.direct_max_new_tokens=8").eval
    metrics, predictions = evaluate_problems(None, None, problems, budget, "sys", seed=0)
    # 4,4,4 settles at 3; 6,7,7 then 7 settles at 4 (3 > 1 + 1); 2,3,2 then 2 settles at 4
    assert [len(p["samples"]) for p in predictions] == [3, 4, 4] and metrics["mean_samples"] == pytest.approx(11 / 3, abs=1e-4)
    assert [c[:2] for c in calls if c[2]] == [(3, 3), (2, 1)]
    assert [p["vote"] for p in predictions] == ["4", "7", "2"] and metrics["maj@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert predictions[1]["weighted_vote"] == "6" and metrics["wmaj@5"] == 1.0  # exp(-0.1) > 3 exp(-2)
    assert "pass@5" not in metrics and metrics["pass@1"] == pytest.approx((3 / 3 + 1 / 4 + 3 / 4) / 3, abs=1e-4)
    assert metrics["intervals"]["wmaj@5"] == pytest.approx([0.4385, 1.0], abs=1e-3)


def test_auto_temperature_is_chosen_on_validation_problems_only(monkeypatch):
    """eval.temperature=auto on fabricated problems: on the validation split the samples stay right up to T=0.5 and
    go wrong above it, on the test split they are right at every temperature (so the test problems would choose
    1.0). The choice is 0.5: made on validation problems only, recorded with the grid's numbers, and the test
    problems are then sampled at it."""
    from reasoning_lab import evaluation
    from reasoning_lab.decoding import Completion

    val = [Problem(f"val {i}?", "", "1", "number", 1, "generic") for i in range(4)]
    test = [Problem(f"test {i}?", "", "1", "number", 1, "generic") for i in range(3)]
    monkeypatch.setattr(evaluation, "source_rows", lambda source, split, data_cfg: {"val": val, "test": test}[split])
    monkeypatch.setattr(evaluation, "inference_model", lambda model, *args: model)
    sampled_at = []

    def fake_generate(model, tokenizer, prompts, budgets, k=1, do_sample=False, temperature=1.0, **kwargs):
        questions = [p[-1]["content"] for p in prompts]
        if do_sample:
            sampled_at.append((questions[0].split()[0], temperature))
        right = lambda q: not do_sample or q.startswith("test") or temperature <= 0.5  # noqa: E731
        return [[Completion("1" if right(q) else "2", 1, False) for _ in range(k)] for q in questions]

    monkeypatch.setattr(evaluation, "generate", fake_generate)
    cfg = make_config("eval.temperature=auto", "eval.k=2", "eval.direct_limit=0", "eval.max_new_tokens=8",
                      "eval.direct_max_new_tokens=8",
                      "eval.datasets=[generic]", "eval.auto_temperature.grid=[0.3,0.5,0.7,1.0]")
    results = evaluation.evaluate(None, None, cfg, cfg.eval, "t")
    choice = results["temperature_choice"]
    assert choice["chosen"] == 0.5 and results["decoding"]["temperature"] == 0.5
    assert choice["samples_accuracy"] == {0.3: 1.0, 0.5: 1.0, 0.7: 0.0, 1.0: 0.0} and choice["greedy_accuracy"] == 1.0
    assert choice["n"] == len(val) and {split for split, _ in sampled_at[:-1]} == {"val"}
    assert sampled_at[-1] == ("test", 0.5) and results["datasets"]["generic"]["maj@2"] == 1.0
