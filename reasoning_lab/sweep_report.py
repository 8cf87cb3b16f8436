"""Sweep summary: one row per multirun job (overrides, status, final accuracy per dataset, wall time).

Written to `<multirun dir>/sweep.md` and `sweep.png` (final mean accuracy against the first numeric
swept key, e.g. LoRA rank, one line per combination of the other overrides), and as a W&B table in
the sweep's group. When the sweep varies `seed`, jobs that differ only in their seed form an arm, summarised
by its mean and spread, and every arm is compared with the first one pooled over seeds, same-seed jobs paired
(reasoning_lab.compare --arms: per-seed deltas, two-level bootstrap interval, stratified permutation p with
Holm's correction, the design's minimal detectable effect); a sweep of seeds alone whose jobs each evaluated
the curriculum and the pipeline's end (experiment=ablation_rl) compares those two. Without a seed sweep every
completed job is compared with the first one on the same problems (paired differences, McNemar p-values).
Both go to `sweep.md` and `<multirun dir>/compare/`. The Hydra callback `SweepReport` (configured in conf/config.yaml) rewrites it after
every job, so a failed or interrupted sweep still has its summary; by hand:

    python -m reasoning_lab.sweep_report logs/curriculum/multiruns/<time>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from reasoning_lab.compare import (
    POOLED_NOTE,
    compare_arms,
    compare_runs,
    mean_sd,
    pooled_table,
    speed_table,
    write_outputs,
)
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.report import collect_results
from reasoning_lab.timing import PHASES
from reasoning_lab.tracking import sweep_group

JOB_ERROR = "job_error.txt"


def job_rows(sweep_dir: str | Path) -> list[dict]:
    rows = []
    jobs = sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    for job in jobs:
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = [line[2:].strip() for line in overrides_file.read_text().splitlines() if line.startswith("- ")] \
            if overrides_file.exists() else []
        stages = [json.loads(p.read_text()) for p in job.glob("*/metrics.json")]
        failed = [m for m in stages if m.get("status") != "completed"]
        error = (job / JOB_ERROR).read_text().strip() if (job / JOB_ERROR).exists() else ""
        if failed and not error:
            error = failed[0].get("error") or failed[0].get("status", "")
        final = final_results(job)
        rows.append({
            "job": job.name, "overrides": overrides,
            "status": "failed" if error or failed else ("completed" if stages else "not run"),
            "error": error.splitlines()[-1] if error else "",
            "wall_seconds": round(sum(m.get("wall_seconds", 0.0) for m in stages), 1),
            # seconds per phase (reasoning_lab.timing), over the job's stages
            "timing": {name: round(sum(m.get("timing", {}).get(name, 0.0) for m in stages), 1)
                       for name in (*PHASES, "other")},
            "accuracy": {name: m["accuracy"] for name, m in final.items()},
        })
    return rows


def final_results(job: Path) -> dict:
    """Per dataset, the numbers of a job's last evaluation ({} before any)."""
    results = collect_results(job)
    return results[-1]["datasets"] if results else {}


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def write_sweep_report(sweep_dir: str | Path, wandb_group: str | None = None) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir = Path(sweep_dir)
    rows = job_rows(sweep_dir)
    datasets = list(dict.fromkeys(name for r in rows for name in r["accuracy"]))
    # the keys that vary across jobs name each row; the rest are listed once
    parsed = [dict(o.split("=", 1) for o in r["overrides"] if "=" in o) for r in rows]
    swept = [k for k in dict.fromkeys(k for p in parsed for k in p) if len({p.get(k) for p in parsed}) > 1]
    common = [o for o in (rows[0]["overrides"] if rows else []) if o.split("=", 1)[0] not in swept]
    header = ["job", *swept, "status", "wall s", *[f"{name} s" for name in (*PHASES, "other")], *datasets, "mean",
              "error"]
    lines = [f"# Sweep {sweep_dir}", "", "Final greedy accuracy (strict) per dataset, from each job's last evaluation; "
             "where the time went (seconds per phase over the job's stages: reasoning_lab/timing.py).",
             "", f"Common overrides: `{' '.join(common) or '-'}`", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r, p in zip(rows, parsed):
        acc = [r["accuracy"].get(name) for name in datasets]
        known = [a for a in acc if a is not None]
        r["mean"] = sum(known) / len(known) if known else None
        cells = [r["job"], *[p.get(k, "-") for k in swept], r["status"], f"{r['wall_seconds']:.0f}",
                 *[f"{s:.0f}" for s in r["timing"].values()], *[f"{a:.3f}" if a is not None else "-" for a in acc],
                 f"{r['mean']:.3f}" if r["mean"] is not None else "-", r["error"].replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += seed_summary(rows, parsed, swept, datasets)
    lines += pooled_over_seeds(rows, parsed, swept, sweep_dir) if "seed" in swept else paired_against_first(rows, sweep_dir)
    markdown = sweep_dir / "sweep.md"
    markdown.write_text("\n".join(lines) + "\n")

    # x: the first swept key whose values are all numbers (e.g. model.lora.r); one line per other combination
    x_key = next((k for k in swept if all(isinstance(_value(p.get(k, "")), float) for p in parsed)), None)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines_of: dict[str, list[tuple]] = {}
    for r, p in zip(rows, parsed):
        if r["mean"] is None:
            continue
        label = " ".join(f"{k}={p[k]}" for k in swept if k != x_key and k in p) or "all jobs"
        x = _value(p[x_key]) if x_key else int(r["job"])
        lines_of.setdefault(label, []).append((x, r["mean"]))
    for label, points in lines_of.items():
        points.sort()
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
    ax.set_xlabel(x_key or "job")
    ax.set_ylabel("final accuracy (mean over datasets)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Sweep: {', '.join(swept) or 'jobs'}")
    if lines_of:
        ax.legend(fontsize=8)
    fig.tight_layout()
    chart = sweep_dir / "sweep.png"
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    if wandb_group:
        log_sweep_table(rows, datasets, sweep_dir, wandb_group, chart)
    return markdown, chart


def seed_summary(rows: list[dict], parsed: list[dict], swept: list[str], datasets: list[str]) -> list[str]:
    """Mean and spread (standard deviation, min-max) across seeds of each configuration's final accuracy."""
    if "seed" not in swept:
        return []
    groups: dict[str, list[dict]] = {}
    for r, p in zip(rows, parsed):
        if r["status"] == "completed":
            groups.setdefault(" ".join(f"{k}={p[k]}" for k in swept if k != "seed" and k in p) or "all", []).append(r)
    lines = ["", "## Across seeds", "", "Mean ± standard deviation [min, max] of the final greedy accuracy over the "
             "seeds of each configuration.", "", "| configuration | seeds | " + " | ".join([*datasets, "mean"]) + " |",
             "|---|---:|" + "---|" * (len(datasets) + 1)]
    for label, members in groups.items():
        cells = []
        for name in [*datasets, "mean"]:
            values = [m["mean"] if name == "mean" else m["accuracy"].get(name) for m in members]
            values = [v for v in values if v is not None]
            if not values:
                cells.append("-")
                continue
            cells.append(f"{mean_sd(values)} [{min(values):.3f}, {max(values):.3f}]")
        lines.append(f"| {label} | {len(members)} | " + " | ".join(cells) + " |")
    return lines


def seed_arms(rows: list[dict], parsed: list[dict], swept: list[str], sweep_dir: Path) -> dict[str, list[Path]]:
    """Arm name -> its completed runs in the order of the seeds that every arm completed."""
    jobs: dict[str, dict[str, Path]] = {}
    for r, p in zip(rows, parsed):
        if r["status"] == "completed":
            label = " ".join(f"{k}={p[k]}" for k in swept if k != "seed" and k in p) or "all"
            jobs.setdefault(label, {})[p.get("seed")] = sweep_dir / r["job"]
    seeds = [seed for seed in next(iter(jobs.values()), {}) if all(seed in runs for runs in jobs.values())]
    if len(jobs) == 1:  # seeds alone: the curriculum's final evaluation against the pipeline's end, if both ran
        (runs,) = jobs.values()
        if all((runs[seed] / "curriculum" / "final" / "predictions").is_dir() and (runs[seed] / "eval" / "predictions").is_dir()
               for seed in seeds):
            return {"curriculum/final": [runs[s] / "curriculum" / "final" for s in seeds],
                    "eval": [runs[s] / "eval" for s in seeds]}
        return {}
    return {label: [runs[seed] for seed in seeds] for label, runs in jobs.items()}


def pooled_over_seeds(rows: list[dict], parsed: list[dict], swept: list[str], sweep_dir: Path) -> list[str]:
    """Every arm against the first, same-seed jobs paired, pooled over the seeds (reasoning_lab.compare --arms)."""
    arms = seed_arms(rows, parsed, swept, sweep_dir)
    if len(arms) < 2 or not next(iter(arms.values())):
        return []
    try:
        result = compare_arms(arms)
    except ReasoningLabError as error:
        return ["", f"Pooled comparison not possible: {error}"]
    write_outputs(result, sweep_dir / "compare")
    mdes = [c["mde"] for c in result["comparisons"]]
    lines = ["", f"## Pooled paired comparison with {result['baseline']}", "", POOLED_NOTE, "",
             *[f"- {name}: jobs {', '.join(str(Path(r).relative_to(sweep_dir)) for r in runs)}"
               for name, runs in arms.items()], ""]
    if mdes:
        lines += [f"Minimal detectable effect of this design: {min(mdes):.3f} to {max(mdes):.3f} by set "
                  "(80% power, alpha 0.05).", ""]
    return lines + pooled_table(result) + speed_table(result) + [f"- not compared: {line}"
                                                                 for line in result["not_compared"]]


def paired_against_first(rows: list[dict], sweep_dir: Path) -> list[str]:
    """Every completed job against the first completed one, on the problems both evaluated."""
    done = [sweep_dir / r["job"] for r in rows if r["status"] == "completed"]
    if len(done) < 2:
        return []
    try:
        result = compare_runs(done)
    except ReasoningLabError as error:
        return ["", f"Paired comparison not possible: {error}"]
    write_outputs(result, sweep_dir / "compare")
    lines = ["", f"## Paired comparison with job {done[0].name}", "",
             "delta = job - first job on the same problems, paired bootstrap 95% interval, exact McNemar p, "
             "Holm-corrected over all rows (`compare/compare.md`).", "",
             "| job | dataset | n | delta [95% CI] | p | p_holm | maj delta | maj p |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in result["comparisons"]:
        lines.append(f"| {Path(c['b']).relative_to(sweep_dir).parts[0]} | {c['dataset']} | {c['n']} | "
                     f"{c['delta']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] | {c['p_value']:.3g} | "
                     f"{c['p_holm']:.3g} | " + ("- | - |" if c["maj_p_value"] is None else
                                                f"{c['maj_delta']:+.3f} | {c['maj_p_value']:.3g} |"))
    lines += [f"- not compared: {line}" for line in result["not_compared"]]
    return lines


def log_sweep_table(rows: list[dict], datasets: list[str], sweep_dir: Path, group: str, chart: Path) -> None:
    """The summary as a W&B table in the sweep's group (offline without WANDB_API_KEY)."""
    import os

    import wandb

    mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "reasoning_lab"), group=group, job_type="sweep_report",
                     name=f"{group}-summary", dir=str(sweep_dir), mode=mode, reinit="finish_previous")
    columns = ["job", "overrides", "status", "wall_seconds", *datasets, "mean", "error"]
    data = [[r["job"], " ".join(r["overrides"]), r["status"], r["wall_seconds"],
             *[r["accuracy"].get(name) for name in datasets], r["mean"], r["error"]] for r in rows]
    run.log({"sweep/summary": wandb.Table(columns=columns, data=data), "sweep/chart": wandb.Image(str(chart))})
    run.finish()


class SweepReport(Callback):
    """Hydra callback: records a failed job's error, rewrites the summary after every job and at the end."""

    def on_job_end(self, config, job_return, **kwargs) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        job_dir = Path(config.hydra.runtime.output_dir)
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value
            (job_dir / JOB_ERROR).write_text(f"{type(error).__name__}: {error}")
        write_sweep_report(job_dir.parent)

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.exists():
            group = None
            if config.logger.backend == "wandb":
                group = config.logger.group or sweep_group(config.stage.name, sweep_dir)
            write_sweep_report(sweep_dir, wandb_group=group)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        raise SystemExit("usage: python -m reasoning_lab.sweep_report <multirun dir>")
    markdown, chart = write_sweep_report(args[0])
    print(markdown.read_text())
    print(f"chart: {chart}")


if __name__ == "__main__":
    main()
