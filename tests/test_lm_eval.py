"""The lm-evaluation-harness bridge on tiny_random: the harness's GSM8K tasks from the local files, offline."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import WORKDIR, tiny_adapter


@pytest.mark.app
def test_the_harness_runs_on_a_checkpoint_and_its_numbers_join_the_report(tmp_path, shared_data):
    adapter = tiny_adapter(tmp_path / "warmup" / "checkpoint")
    (tmp_path / "run_settings.json").write_text("{}")  # marks the run directory
    ours = {"label": "eval: warmup", "checkpoint": str(adapter), "finished": 1, "decoding": {},
            "datasets": {"gsm8k": {"n": 100, "accuracy": 0.02, "intervals": {"accuracy": [0.01, 0.07]}}}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "eval_results.json").write_text(json.dumps(ours))

    result = subprocess.run([sys.executable, "-m", "reasoning_lab.lm_eval", str(adapter), "--limit", "2", "--tasks",
                             "gsm8k", "gsm8k_cot_self_consistency", "--k", "2", "--max-gen-toks", "8",
                             "--data-root", str(shared_data)], cwd=WORKDIR, capture_output=True, text=True,
                            timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "lm_eval" / "warmup_checkpoint" / "lm_eval.json").read_text())
    plain, voted = saved["tasks"]["gsm8k"], saved["tasks"]["gsm8k_cot_self_consistency"]
    assert plain["n"] == voted["n"] == 2 and plain["num_fewshot"] == 5 and voted["num_fewshot"] == 8
    assert set(plain["scores"]) == {"strict-match", "flexible-extract"} and set(voted["scores"]) == {"score-first", "maj@2"}
    assert all(0 <= s["value"] <= 1 for t in (plain, voted) for s in t["scores"].values())
    report = (tmp_path / "report.md").read_text()
    assert "## lm-evaluation-harness on the same checkpoints" in report
    assert "| warmup/checkpoint | gsm8k | strict-match | 2 | 5 |" in report
    assert "gsm8k (eval: warmup), 100, 0.020 [0.01, 0.07] |" in report and "not paired" in report


@pytest.mark.app
def test_no_data_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "reasoning_lab.lm_eval", str(tmp_path)], cwd=WORKDIR,
                            capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "REASONING_LAB_DATA"})
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        "reasoning_lab.lm_eval: error: no GSM8K files: pass --data-root"), result.stderr
