"""Reports: each dataset's numbers across the evaluations of one run directory, with n and intervals.

Every evaluation writes one results file, `eval_results.json` (`<stage>/` after a training stage,
`curriculum/base/` and `curriculum/final/` for the curriculum's base and final evaluations, `eval/` for
`stage=eval`; reasoning_lab.evaluation.record_evaluation); `write_report` collects them in the order they finished (the base
model first) and writes `report.md` and `report.png` (accuracy with 95% error bars) in the run directory.
When the run has an RL stage (`rl/curves.json`), report.png adds its reward per step and its held-out
accuracy over steps.
"""

from __future__ import annotations

import json
from pathlib import Path

from reasoning_lab.distributed import is_main_process

EVAL_RESULTS = "eval_results.json"  # the file every evaluation writes and every report reads
CAP_LIMIT = 0.05  # a set whose answers hit the token budget more often than this is flagged
FINAL_METRICS = [("accuracy", "accuracy (greedy)"), ("maj", "maj@k"), ("accuracy_direct", "accuracy, answering directly"),
                 ("format_rate", "format rate (with the prompt)"),
                 ("think_rate_without_prompt", "<think> without the prompt"), ("cap_rate", "cap rate")]


def collect_results(run_dir: str | Path) -> list[dict]:
    run_dir = Path(run_dir)
    files = list(run_dir.glob(f"**/{EVAL_RESULTS}"))
    results = sorted((json.loads(path.read_text()) for path in sorted(files)), key=lambda r: r.get("finished", 0))
    bases = [r for r in results if r.get("label") == "base"]
    # a pipeline's curriculum and eval stages may both record the base model: one column is enough
    return [r for r in results if r.get("datasets") and (r.get("label") != "base" or r is bases[0])]


def majority_key(metrics: dict) -> str:
    return next((key for key in metrics if key.startswith("maj@")), "maj@k")


def value(metrics: dict, key: str) -> tuple[float, list[float] | None]:
    """A metric and its 95% interval (Wilson for rates; the bootstrap `ci95` for older result files)."""
    key = majority_key(metrics) if key == "maj" else key
    intervals = metrics.get("intervals", {})
    interval = intervals.get(key) or (metrics.get("ci95") if key == "accuracy" else None)
    return metrics.get(key, float("nan")), interval


def cell(metrics: dict | None, key: str) -> str:
    if not metrics or key not in metrics and (key != "maj" or majority_key(metrics) not in metrics):
        return "-"
    v, interval = value(metrics, key)
    return f"{v:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else f"{v:.3f}"


def accuracy_table(results: list[dict]) -> list[str]:
    """Greedy strict accuracy [95% interval] per dataset (rows) and evaluation (columns), then n per evaluation:
    the first table of report.md, and the model card's."""
    datasets = list(dict.fromkeys(name for r in results for name in r["datasets"]))
    lines = ["| dataset | " + " | ".join(r["label"] for r in results) + " |", "|---|" + "---:|" * len(results)]
    for name in datasets:
        lines.append(f"| {name} | " + " | ".join(cell(r["datasets"].get(name), "accuracy") for r in results) + " |")
    lines.append("| n | " + " | ".join(str(max((m["n"] for m in r["datasets"].values()), default=0))
                                         for r in results) + " |")
    return lines


def write_report(run_dir: str | Path) -> tuple[Path, Path] | None:
    """Write report.md and report.png; None when the run has no evaluation yet (or not rank 0)."""
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
             "Greedy strict accuracy with its 95% interval (Wilson) and, below, n per evaluation. Differences "
             "between columns are real only where the intervals (or, better, a paired test: "
             "`python -m reasoning_lab.compare`) say so.", "", *accuracy_table(results)]
    last = results[-1]
    base = next((r for r in results if r["label"] == "base"), None)
    lines += ["", f"## {last['label']}: every number", "",
              "| dataset | n | " + " | ".join(title for _, title in FINAL_METRICS) + " | budget |",
              "|---|---:|" + "---:|" * (len(FINAL_METRICS) + 1)]
    for name, m in last["datasets"].items():
        lines.append(f"| {name} | {m['n']} | " + " | ".join(cell(m, key) for key, _ in FINAL_METRICS)
                     + f" | {m.get('max_new_tokens', '-')} |")
        if base is not None and base is not last and name in base["datasets"]:
            b = base["datasets"][name]
            lines.append(f"| (base) | {b['n']} | " + " | ".join(cell(b, key) for key, _ in FINAL_METRICS)
                         + f" | {b.get('max_new_tokens', '-')} |")
    capped = [f"{name} ({r['label']}: {m['cap_rate']:.1%})" for r in results for name, m in r["datasets"].items()
              if m.get("cap_rate", 0) > CAP_LIMIT and r["label"] != "base"]
    if capped:
        lines += ["", f"**Flagged: cap rate above {CAP_LIMIT:.0%}** (answers cut by the token budget, so accuracy "
                  "and format measure the budget): " + ", ".join(capped)]
    if base is not None:
        lines += ["", "The base model rarely ends its answer within the budget, so its cap rate is expected to be high."]
    skipped = {name: reason for r in results for name, reason in r.get("skipped", {}).items()}
    if skipped:
        lines += ["", "Skipped (not available): " + ", ".join(sorted(skipped))]
    lines += ["", f"Decoding of the last evaluation: {json.dumps(last['decoding'])}", ""]
    harness = [json.loads(p.read_text()) for p in sorted(run_dir.glob("lm_eval/*/lm_eval.json"))]
    if harness:
        lines += [harness_markdown(run_dir, harness, results), ""]
    markdown = run_dir / "report.md"
    markdown.write_text("\n".join(lines))

    curves = run_dir / "rl" / "curves.json"
    curves = json.loads(curves.read_text()) if curves.exists() else None
    width = max(6, 1.5 * len(labels) + 3)
    if curves is None:
        fig, ax = plt.subplots(figsize=(width, 4.5))
    else:
        fig, (ax, reward_ax, heldout_ax) = plt.subplots(1, 3, figsize=(width + 9, 4.5))
        plot_rl(curves, reward_ax, heldout_ax)
    x = list(range(len(labels)))
    for i, name in enumerate(datasets):
        points = [(j, *value(r["datasets"][name], "accuracy")) for j, r in enumerate(results) if name in r["datasets"]]
        xs = [j + (i - len(datasets) / 2) * 0.04 for j, _, _ in points]
        ys = [v for _, v, _ in points]
        errors = [[max(0.0, v - (ci or [v, v])[0]) for _, v, ci in points],
                  [max(0.0, (ci or [v, v])[1] - v) for _, v, ci in points]]
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, color=f"C{i % 10}", label=name)
    ax.set_xticks(x, [f"{label}\n(n={max((m['n'] for m in r['datasets'].values()), default=0)})"
                      for label, r in zip(labels, results)], rotation=20)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("greedy accuracy, 95% interval")
    ax.set_title("Accuracy after each stage")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    chart = run_dir / "report.png"
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return markdown, chart


def harness_markdown(run_dir: str | Path, entries: list[dict], results: list[dict] | None = None) -> str:
    """The harness's numbers (reasoning_lab.lm_eval) beside this project's accuracy on the same set for the
    same checkpoint, where the run evaluated it."""
    results = collect_results(run_dir) if results is None else results
    lines = ["## lm-evaluation-harness on the same checkpoints", "",
             "| checkpoint | harness task | filter | n | shots | harness exact match (± s.e.) | this project: set, n, greedy accuracy [95% CI] |",
             "|---|---|---|---:|---:|---:|---|"]
    for entry in entries:
        ours = next((r for r in reversed(results) if "gsm8k" in r["datasets"] and r.get("checkpoint")
                     and Path(r["checkpoint"]).resolve() == Path(entry["checkpoint"]).resolve()), None)
        mine = "-"
        if ours is not None:
            m = ours["datasets"]["gsm8k"]
            mine = f"gsm8k ({ours['label']}), {m['n']}, {cell(m, 'accuracy')}"
        for task, t in entry["tasks"].items():
            for name, score in t["scores"].items():
                stderr = score["stderr"]
                shown = f"{score['value']:.3f}" + (f" ± {stderr:.3f}" if isinstance(stderr, (int, float)) else "")
                lines.append(f"| {entry['label']} | {task} | {name} | {t['n']} | {t['num_fewshot']} | {shown} | {mine} |")
    return "\n".join(lines + ["", WHY_THEY_DIFFER])


def publish_report(run_dir: str | Path, wandb_run) -> tuple[Path, Path] | None:
    """write_report, and with a W&B run: the accuracy table (one row per dataset and evaluation, with n and
    the 95% interval) and report.png logged as `report/accuracy` and `report/plot`, so the run's summary holds them."""
    report = write_report(run_dir)
    if wandb_run is not None and report is not None:
        import wandb

        rows = []
        for r in collect_results(run_dir):
            for name, m in r["datasets"].items():
                accuracy, interval = value(m, "accuracy")
                rows.append([name, r["label"], m["n"], accuracy, *(interval or [None, None])])
        table = wandb.Table(columns=["dataset", "evaluation", "n", "accuracy", "ci95_low", "ci95_high"], data=rows)
        wandb_run.log({"report/accuracy": table, "report/plot": wandb.Image(str(report[1]))})
    return report


def plot_rl(curves: dict, reward_ax, heldout_ax) -> None:
    """The RL stage's reward per step and its held-out accuracy (95% interval) at each evaluated step."""
    history = curves["history"]
    steps = list(range(1, len(history) + 1))
    reward_ax.plot(steps, [h["reward"] for h in history], marker=".", label="total reward")
    for key in sorted(k for k in (history[0] if history else {}) if k.startswith("rewards/") and k.endswith("/mean")):
        reward_ax.plot(steps, [h.get(key, float("nan")) for h in history], marker=".", lw=0.8,
                       label=key.removeprefix("rewards/").removesuffix("/mean"))
    reward_ax.set_xlabel("RL step")
    reward_ax.set_ylabel("mean reward of the step's completions")
    reward_ax.set_title(f"RL ({curves['algorithm']}): reward per step")
    reward_ax.legend(fontsize=7)
    points = curves["heldout"]
    for i, name in enumerate(dict.fromkeys(n for point in points for n in point["datasets"])):
        xs = [point["step"] for point in points if name in point["datasets"]]
        values = [value(point["datasets"][name], "accuracy") for point in points if name in point["datasets"]]
        errors = [[max(0.0, v - (ci or [v, v])[0]) for v, ci in values], [max(0.0, (ci or [v, v])[1] - v) for v, ci in values]]
        heldout_ax.errorbar(xs, [v for v, _ in values], yerr=errors, marker="o", capsize=3, color=f"C{i % 10}", label=name)
    heldout_ax.set_xlabel("RL step")
    heldout_ax.set_ylabel("held-out greedy accuracy, 95% interval")
    heldout_ax.set_ylim(-0.02, 1.02)
    heldout_ax.set_title("RL: held-out accuracy over steps")
    heldout_ax.legend(fontsize=7)


def reward_markdown(table: dict) -> str:
    """rewards.reward_table as markdown: what each reward component pays, and the total by outcome."""
    lines = [f"# What the rewards pay ({table['n']} completions of the last evaluation)", "",
             "| component | share of completions paid | mean |", "|---|---:|---:|"]
    lines += [f"| {name} | {c['share_paid']:.3f} | {c['mean']:+.3f} |" for name, c in table["components"].items()]
    lines += ["", "| outcome | share | mean weighted total |", "|---|---:|---:|"]
    lines += [f"| {name} | {o['share']:.3f} | " + ("-" if o["mean_total"] is None else f"{o['mean_total']:+.3f}") + " |"
              for name, o in table["outcomes"].items()]
    return "\n".join(lines) + "\n"


WHY_THEY_DIFFER = (
    "The numbers differ by design: the harness asks with 5 (or 8) worked examples in plain text and no system "
    "prompt, and reads the answer after `####` (strict) or takes the last number (flexible); this project asks "
    "with the chat template and its reasoning system prompt, zero-shot, and reads the answer after `</think>`. "
    "The problems differ too (the harness takes the first N of the test split, this project a seeded sample), so "
    "the two are not paired.")
