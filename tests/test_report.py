"""report.md / report.png (reasoning_lab.report): the evaluations of a run directory side by side."""

import json

from reasoning_lab.report import write_report


def test_report_orders_stages_by_time(tmp_path):
    for i, label in enumerate(["base", "warmup", "curriculum/stage_1"]):
        folder = tmp_path / label
        folder.mkdir(parents=True)
        metrics = {"n": 4, "accuracy": 0.25 * i, "maj@4": 0.25 * (i + 1), "cap_rate": 0.1 * i,
                   "intervals": {"accuracy": [0.0, 0.25 * i + 0.5]}}
        (folder / "eval_results.json").write_text(json.dumps(
            {"label": label, "finished": 100 + i, "datasets": {"gsm8k": metrics}, "decoding": {"k": 4}}))
    markdown, chart = write_report(tmp_path)
    text = markdown.read_text()
    assert "| dataset | base | warmup | curriculum/stage_1 |" in text
    assert "| gsm8k | 0.000 [0.00, 0.50] | 0.250 [0.00, 0.75] | 0.500 [0.00, 1.00] |" in text and "| n | 4 | 4 | 4 |" in text
    # the last evaluation's numbers with the base model's beside them, and its cap rate flagged above 5%
    assert "| gsm8k | 4 | 0.500 [0.00, 1.00] | 0.750 |" in text and "| (base) | 4 | 0.000 [0.00, 0.50] |" in text
    assert "cap rate above 5%** (answers cut by the token budget" in text and "gsm8k (curriculum/stage_1: 20.0%)" in text
    assert "gsm8k (warmup: 10.0%)" in text and "(base: " not in text
    assert chart.stat().st_size > 1000
