"""Reports: a table and a chart of each dataset's accuracy across the stages of one run directory.

Every evaluation writes a results file (`<stage>/eval_results.json` after a training stage,
`eval/results.json` for `stage=eval`); `write_report` collects them in the order they finished and
writes `report.md` and `report.png` in the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path


def collect_results(run_dir: str | Path) -> list[dict]:
    run_dir = Path(run_dir)
    files = list(run_dir.glob("**/eval_results.json")) + list(run_dir.glob("eval/results.json"))
    results = [json.loads(path.read_text()) for path in files]
    return sorted((r for r in results if r.get("datasets")), key=lambda r: r.get("finished", 0))


def majority_key(metrics: dict) -> str:
    return next((key for key in metrics if key.startswith("maj@")), "maj@k")


def write_report(run_dir: str | Path) -> tuple[Path, Path] | None:
    """Write report.md and report.png; None when the run has no evaluation yet (or not rank 0)."""
    from reasoning_lab.tracking import is_main_process

    if not is_main_process():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    results = collect_results(run_dir)
    if not results:
        return None
    labels = [r["label"] for r in results]
    datasets = list(dict.fromkeys(name for r in results for name in r["datasets"]))

    lines = ["# Accuracy across stages", "",
             "Each cell: greedy accuracy (strict) / self-consistency maj@k, on the evaluation sets named in the row.",
             "", "| dataset | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for name in datasets:
        cells = []
        for r in results:
            m = r["datasets"].get(name)
            cells.append(f"{m['accuracy']:.3f} / {m[majority_key(m)]:.3f} (n={m['n']})" if m else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    skipped = {name: reason for r in results for name, reason in r.get("skipped", {}).items()}
    if skipped:
        lines += ["", "Skipped (not available): " + ", ".join(sorted(skipped))]
    lines += ["", f"Decoding of the last evaluation: {json.dumps(results[-1]['decoding'])}", ""]
    markdown = run_dir / "report.md"
    markdown.write_text("\n".join(lines))

    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(labels) + 3), 4.5))
    x = list(range(len(labels)))
    for i, name in enumerate(datasets):
        color = f"C{i % 10}"
        greedy = [r["datasets"].get(name, {}).get("accuracy", float("nan")) for r in results]
        vote = [(lambda m: m.get(majority_key(m), float("nan")))(r["datasets"].get(name, {})) for r in results]
        ax.plot(x, greedy, marker="o", color=color, label=f"{name} greedy")
        ax.plot(x, vote, marker="s", linestyle="--", color=color, label=f"{name} maj@k")
    ax.set_xticks(x, labels, rotation=20)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy after each stage")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    chart = run_dir / "report.png"
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return markdown, chart
