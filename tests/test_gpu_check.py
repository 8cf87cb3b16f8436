"""`make gpu-check`'s budget logic, on the CPU (`--cpu-dry-run` with tiny_random): a stage still running when
`--budget-s` runs out is stopped and every later one is marked not run, and the table is written either way; with
time left, the token-budget warm-up row carries its measured throughput."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT, SHARED_DATA


def gpu_check(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    out = tmp_path / "gpu.md"
    result = subprocess.run([sys.executable, "experiments/gpu_check.py", "--cpu-dry-run", "--model", "tiny_random",
                             "--data-root", str(SHARED_DATA), "--steps", "2", "--out", str(out), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result, out.read_text()


def rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| none") or line.startswith("| 8bit")]


def test_the_budget_stops_a_running_stage_and_marks_the_rest_not_run(tmp_path):
    result, table = gpu_check(tmp_path, "--plan", "none:warmup,warmup_tokens,eval", "--budget-s", "3")
    assert [r[:3] for r in rows(table)] == [["none", "warmup (SFT)", "stopped (budget)"],
                                            ["none", "warmup_tokens", "not run (budget)"],
                                            ["none", "eval", "not run (budget)"]]
    assert "gpu-check: none warmup: stopped (budget)" in result.stdout


def test_a_token_budget_warmup_row_reports_its_throughput(tmp_path):
    _, table = gpu_check(tmp_path, "--plan", "none:warmup_tokens", "--sft-tokens", "512", "--budget-s", "600")
    (row,) = rows(table)
    assert row[:3] == ["none", "warmup (SFT, by tokens)", "ok"]
    assert float(row[5].replace(",", "")) > 0 and row[9] == "2 steps of up to 512 tokens"
