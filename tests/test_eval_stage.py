"""The eval stage (reasoning_lab.stages.eval) on tiny_random: every key it writes, and benchmarks it cannot
reach reported as skipped."""

import json

import pytest

from tests.helpers import run_cli


@pytest.mark.app
def test_eval_stage_on_tiny_random_writes_every_key(tmp_path, shared_data):
    run_dir = tmp_path / "run"
    result = run_cli("stage=eval", "model=tiny_random", "eval.limit=3", "eval.k=2", "eval.max_new_tokens=8",
                     "eval.direct_limit=2", f"data.root={shared_data}", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((run_dir / "eval" / "eval_results.json").read_text())
    assert set(results["datasets"]) == {"gsm8k", "aqua", "strategyqa", "generic", "synthetic_gsm8k",
                                        "synthetic_aqua", "synthetic_strategyqa"}
    keys = {"n", "accuracy", "accuracy_lenient", "maj@2", "pass@2", "format_rate", "ci95", "direct_rate",
            "think_rate_with_prompt", "think_rate_without_prompt", "mean_completion_tokens"}
    for name, metrics in results["datasets"].items():
        assert keys <= set(metrics) and metrics["n"] == 3 and len(metrics["ci95"]) == 2, name
        rows = [json.loads(line) for line in (run_dir / "eval" / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        assert len(rows) == 3 and all(len(r["samples"]) == 2 for r in rows)
        assert sum(r["correct"] for r in rows) / 3 == pytest.approx(metrics["accuracy"], abs=1e-3)
    assert results["checkpoint"] == "base"
    gsm8k = results["datasets"]["gsm8k"]
    low, high = gsm8k["intervals"]["accuracy"]
    report = (run_dir / "report.md").read_text()
    assert f"| gsm8k | {gsm8k['accuracy']:.3f} [{low:.2f}, {high:.2f}] |" in report and "| n | 3 |" in report
    assert f"| gsm8k | 3 | {gsm8k['accuracy']:.3f} [{low:.2f}, {high:.2f}] |" in report  # every number of the last one
    assert (run_dir / "report.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.app
def test_unavailable_benchmarks_are_reported_as_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir = tmp_path / "run"
    result = run_cli("stage=eval", "model=tiny_random", "eval.limit=2", "eval.k=1", "eval.max_new_tokens=4",
                     "eval.direct_limit=1", "eval.datasets=[gsm8k,generic]", "data.root=null", "logger=none",
                     f"hydra.run.dir={run_dir}", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((run_dir / "eval" / "eval_results.json").read_text())
    assert list(results["datasets"]) == ["generic"] and "gsm8k" in results["skipped"]
    assert "Skipped (not available): gsm8k" in (run_dir / "report.md").read_text()
