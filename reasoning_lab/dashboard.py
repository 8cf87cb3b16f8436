"""W&B dashboards as code: the project's workspace, and a report per sweep or ablation.

    python -m reasoning_lab.dashboard workspace [overrides...]   # e.g. logger.entity=<team> data=real
    python -m reasoning_lab.dashboard report <multirun dir>

`workspace` builds the project's W&B workspace with `wandb-workspaces`, a section per stage: the training curves,
accuracy per set after each stage (and the report table with its intervals), the adaptive curriculum's bucket
weights and losses, RL's reward components, KL and generation share, and the predictions and rollout tables. Its
panels name the keys the stages log (`workspace_keys` lists them; tests/test_dashboard.py reads them back from an
offline pipeline run), for the sets and rewards of the composed config (`logger.project`, `logger.entity`,
`eval.datasets`, `rl.rewards`).

`report` builds a report of a multirun directory from the same data as its `sweep.md` (each job's accuracy per set
with its 95% interval, and its time per phase) and `compare/compare.json` (the pooled table and per-seed deltas of
a seed sweep, or the paired table), with the command that made it. Offline it writes `<dir>/dashboard/report.json`
(the report's content) and `<dir>/dashboard/index.html` (the same tables and charts in one static page).

Online (WANDB_API_KEY set, WANDB_MODE not offline) each command saves to W&B and prints the URL; without a key
nothing reaches for the network: the workspace's spec goes to `dashboard/workspace.json`, and one line says which
command publishes it once online.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path

from reasoning_lab.config import compose_config
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.files import read_json, write_json, write_text
from reasoning_lab.stages.rl import held_out_sets
from reasoning_lab.sweep_report import final_results, job_rows
from reasoning_lab.timing import PHASES
from reasoning_lab.tracking import swept_keys, wandb_online

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


# -- the workspace ---------------------------------------------------------------------------------------------------
def workspace_sections(cfg) -> list[tuple[str, list[dict]]]:
    """Each section's panels as plain specs (kind: line, bar or table; title; the keys it reads), for the sets,
    votes and rewards of the composed config."""
    step, sets, k = "train/global_step", list(cfg.eval.datasets), cfg.eval.k
    rewards = [spec.name for spec in cfg.rl.rewards]
    return [
        ("Training curves", [
            {"kind": "line", "title": "training loss", "x": step, "y": ["train/loss"]},
            {"kind": "line", "title": "token accuracy", "x": step, "y": ["train/mean_token_accuracy"]},
            {"kind": "line", "title": "learning rate", "x": step, "y": ["train/learning_rate"]},
            {"kind": "line", "title": "gradient norm", "x": step, "y": ["train/grad_norm"]},
            {"kind": "line", "title": "warm-up evaluation loss", "x": step, "y": ["eval/loss"]}]),
        ("Accuracy after each stage", [
            {"kind": "table", "title": "accuracy per set with 95% intervals (every evaluation)", "table": "report/accuracy"},
            {"kind": "bar", "title": "warm-up", "metrics": [f"warmup/eval/{s}/accuracy" for s in cfg.warmup.eval_sets]},
            {"kind": "bar", "title": "base model", "metrics": [f"curriculum/base_eval/{s}/accuracy" for s in sets]},
            {"kind": "bar", "title": "curriculum, final", "metrics": [f"curriculum/final/{s}/accuracy" for s in sets]},
            {"kind": "bar", "title": "evaluation stage", "metrics": [f"eval/{s}/accuracy" for s in sets]},
            {"kind": "bar", "title": "majority vote (evaluation stage)", "metrics": [f"eval/{s}/maj@{k}" for s in sets]}]),
        ("Adaptive curriculum", [
            {"kind": "line", "title": "bucket weights", "x": "curriculum/adaptive_step", "regex": "curriculum/weight/.*"},
            {"kind": "line", "title": "bucket losses", "x": "curriculum/adaptive_step",
             "regex": "curriculum/bucket_loss/.*"},
            {"kind": "line", "title": "validation loss per set", "regex": "curriculum/val_loss/.*"},
            {"kind": "line", "title": "validation accuracy over the steps (curriculum.curve_every)",
             "x": "curriculum/curve_step", "regex": "curriculum/val_accuracy.*"}]),
        ("RL", [
            {"kind": "line", "title": "reward", "x": step, "y": ["train/reward"]},
            {"kind": "line", "title": "reward components", "x": step, "y": [f"train/rewards/{r}/mean" for r in rewards]},
            {"kind": "line", "title": "KL to the reference", "x": step, "y": ["train/kl"]},
            {"kind": "line", "title": "held-out accuracy", "x": step,
             "y": [f"rl/heldout/{s}/accuracy" for s in held_out_sets(cfg.rl, cfg.data)]},
            {"kind": "bar", "title": "share of training time spent generating", "metrics": ["rl/train/generate_share"]}]),
        ("Tables", [
            {"kind": "table", "title": "predictions (evaluation stage)", "table": "eval/predictions"},
            {"kind": "table", "title": "predictions (curriculum, final)", "table": "curriculum/final/predictions"},
            {"kind": "table", "title": "RL rollouts", "table": "rl/rollouts"}]),
    ]


def workspace_keys(sections: list[tuple[str, list[dict]]]) -> tuple[set[str], set[str]]:
    """The keys the panels read, and their regular expressions."""
    keys, patterns = set(), set()
    for _, panels in sections:
        for p in panels:
            keys |= set(p.get("y", [])) | set(p.get("metrics", [])) | {p[k] for k in ("x", "table") if k in p}
            if "regex" in p:
                patterns.add(p["regex"])
    return keys, patterns


def build_workspace(entity: str | None, project: str, sections: list[tuple[str, list[dict]]]):
    """The `wandb_workspaces` Workspace of these sections."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    def panel(p: dict):
        if p["kind"] == "line":
            return wr.LinePlot(title=p["title"], x=p.get("x", "Step"), y=p.get("y", []), metric_regex=p.get("regex"))
        if p["kind"] == "bar":
            return wr.BarPlot(title=p["title"], metrics=p["metrics"])
        return wr.WeavePanelSummaryTable(table_name=p["table"])

    return ws.Workspace(entity=entity or "", project=project, name=f"{project}: stages",
                        sections=[ws.Section(name=name, panels=[panel(p) for p in panels], is_open=True)
                                  for name, panels in sections])


def workspace(overrides: list[str], out: Path) -> Path | str:
    """Build the workspace from the composed config; save it online (returns the URL), else write its spec."""
    cfg = compose_config(overrides)
    sections = workspace_sections(cfg)
    built = build_workspace(cfg.logger.entity, cfg.logger.project, sections)
    if wandb_online():
        return built.save().url
    write_json(out / "workspace.json", built._spec)
    print(f"no WANDB_API_KEY: the workspace's spec is in {out / 'workspace.json'}; "
          f"`python -m reasoning_lab.dashboard workspace {' '.join(overrides)}`".rstrip() + " publishes it when online")
    return out / "workspace.json"


# -- the report ------------------------------------------------------------------------------------------------------
def report_content(sweep_dir: Path) -> dict:
    """What a sweep's report holds, as plain data: the command, each job's accuracy per set with its interval and
    time per phase, and the comparison (pooled over seeds, or paired against the first job)."""
    rows = job_rows(sweep_dir)
    if not rows:
        raise ReasoningLabError(f"{sweep_dir} has no multirun jobs (numbered folders); point at a multirun directory "
                                "(logs/<stage>/multiruns/<time>)")
    jobs = []
    for row in rows:
        final = final_results(sweep_dir / row["job"])
        jobs.append({"job": row["job"], "overrides": row["overrides"], "status": row["status"],
                     "wall_seconds": row["wall_seconds"], "timing": row["timing"],
                     "accuracy": {name: {"accuracy": v["accuracy"], "n": v["n"],
                                         "ci95": v.get("intervals", {}).get("accuracy")} for name, v in final.items()}})
    comparison = read_json(sweep_dir / "compare" / "compare.json", {})
    return {"title": f"{sweep_dir.name}: {', '.join(swept_keys(sweep_dir)) or 'jobs'}", "sweep_dir": str(sweep_dir),
            "command": command_of(sweep_dir), "jobs": jobs, "comparison": comparison,
            "sweep_md": (sweep_dir / "sweep.md").read_text() if (sweep_dir / "sweep.md").exists() else ""}


def command_of(sweep_dir: Path) -> str:
    """The multirun's command, from Hydra's `multirun.yaml`."""
    from omegaconf import OmegaConf

    saved = sweep_dir / "multirun.yaml"
    overrides = list(OmegaConf.load(saved).hydra.overrides.task) if saved.exists() else []
    return " ".join(["python -m reasoning_lab -m", *overrides])


def pooled_rows(comparison: dict) -> list[list[str]]:
    """The comparison's table: per set and arm, the pooled delta with its interval, p (Holm) and per-seed deltas."""
    rows = []
    for c in comparison.get("comparisons", []):
        ci = c.get("ci95") or [None, None]
        rows.append([c["dataset"], str(c.get("b")), f"{c['delta']:+.3f}" if c.get("delta") is not None else "-",
                     f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci[0] is not None else "-",
                     f"{c['p_holm']:.3g}" if c.get("p_holm") is not None else "-",
                     " / ".join(f"{d:+.3f}" for d in c.get("per_seed_delta") or []) or "-"])
    return rows


def build_report(content: dict, entity: str | None, project: str):
    """The `wandb_workspaces` Report of this content (online only: W&B resolves the project)."""
    import wandb_workspaces.reports.v2 as wr

    def table(header: list[str], rows: list[list[str]]) -> str:
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                          *["| " + " | ".join(r) + " |" for r in rows]])

    blocks = [wr.H1(content["title"]), wr.P(f"Made by: {content['command']}"),
              wr.H2("Comparison"), wr.MarkdownBlock(table(COMPARISON_HEADER, pooled_rows(content["comparison"]))),
              wr.H2("Each job"), wr.MarkdownBlock(table(JOB_HEADER, job_table(content))),
              wr.H2("sweep.md"), wr.MarkdownBlock(content["sweep_md"])]
    return wr.Report(entity=entity or "", project=project, title=content["title"], blocks=blocks)


COMPARISON_HEADER = ["set", "arm", "pooled delta", "95% CI", "p (Holm)", "per-seed deltas"]
JOB_HEADER = ["job", "overrides", "set", "n", "accuracy", "95% CI", "wall s"]


def job_table(content: dict) -> list[list[str]]:
    rows = []
    for job in content["jobs"]:
        for name, a in job["accuracy"].items():
            ci = a["ci95"]
            rows.append([job["job"], " ".join(job["overrides"]), name, str(a["n"]), f"{a['accuracy']:.3f}",
                         f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-", f"{job['wall_seconds']:.0f}"])
    return rows


def accuracy_chart(content: dict) -> str:
    """Grouped bars (one group per set, one bar per job) with their 95% intervals, as inline SVG."""
    jobs = content["jobs"]
    sets = list(dict.fromkeys(name for job in jobs for name in job["accuracy"]))
    width, height, left, bottom = 720, 300, 50, 40
    group = (width - left - 20) / max(1, len(sets))
    bar = group * 0.8 / max(1, len(jobs))
    y = lambda v: height - bottom - v * (height - bottom - 20)  # noqa: E731
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="accuracy per set">',
             f'<line x1="{left}" y1="{y(0)}" x2="{width - 20}" y2="{y(0)}" stroke="#333"/>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{left - 8}" y="{y(tick) + 4}" text-anchor="end" font-size="11">{tick:.2f}</text>')
    for s, name in enumerate(sets):
        x0 = left + s * group + group * 0.1
        parts.append(f'<text x="{x0 + group * 0.4}" y="{height - bottom + 16}" text-anchor="middle" '
                     f'font-size="11">{html.escape(name)}</text>')
        for j, job in enumerate(jobs):
            a = job["accuracy"].get(name)
            if a is None:
                continue
            x, top = x0 + j * bar, y(a["accuracy"])
            parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar * 0.9:.1f}" height="{y(0) - top:.1f}" '
                         f'fill="{PALETTE[j % len(PALETTE)]}"><title>job {job["job"]}: {a["accuracy"]:.3f}</title></rect>')
            if a["ci95"]:
                mid = x + bar * 0.45
                parts.append(f'<line x1="{mid:.1f}" y1="{y(a["ci95"][0]):.1f}" x2="{mid:.1f}" '
                             f'y2="{y(a["ci95"][1]):.1f}" stroke="#000"/>')
    legend = "".join(f'<span class="key" style="background:{PALETTE[j % len(PALETTE)]}"></span>job {html.escape(job["job"])}: '
                     f'{html.escape(" ".join(job["overrides"]) or "-")} ' for j, job in enumerate(jobs))
    return "\n".join(parts) + "</svg>" + f'<p class="legend">{legend}</p>'


def html_page(content: dict) -> str:
    """The report as one static page: the same tables and a chart, no script and nothing fetched."""
    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    timing = [[job["job"], *[f"{job['timing'].get(p, 0):.0f}" for p in (*PHASES, "other")]] for job in content["jobs"]]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(content['title'])}</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:960px}}table{{border-collapse:collapse;margin:8px 0 16px}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}code{{background:#f4f4f4;padding:2px 4px}}
.key{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}}.legend{{font-size:12px}}</style></head>
<body><h1>{html.escape(content['title'])}</h1>
<p>Made by <code>{html.escape(content['command'])}</code> in <code>{html.escape(content['sweep_dir'])}</code>.</p>
<h2>Comparison</h2>
{table(COMPARISON_HEADER, pooled_rows(content['comparison'])) if content['comparison'] else '<p>No comparison: fewer than two completed arms.</p>'}
<h2>Accuracy per set, each job (bars: greedy accuracy; lines: 95% intervals)</h2>
{accuracy_chart(content)}
{table(JOB_HEADER, job_table(content))}
<h2>Where the time went (seconds per phase)</h2>
{table(["job", *PHASES, "other"], timing)}
</body></html>
"""


def report(sweep_dir: Path, entity: str | None = None, project: str = "reasoning_lab") -> Path | str:
    """The report of a multirun directory: saved online (returns the URL); always its spec and page offline."""
    content = report_content(sweep_dir)
    out = sweep_dir / "dashboard"
    write_json(out / "report.json", content)
    write_text(out / "index.html", html_page(content))
    if wandb_online():
        return build_report(content, entity, project).save().url
    print(f"no WANDB_API_KEY: the report is in {out / 'index.html'} (spec: report.json); "
          f"`python -m reasoning_lab.dashboard report {sweep_dir}` publishes it when online")
    return out / "index.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reasoning_lab.dashboard", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ws_parser = commands.add_parser("workspace", help="the project's W&B workspace")
    ws_parser.add_argument("overrides", nargs="*", help="config overrides (logger.entity=..., data=real, ...)")
    ws_parser.add_argument("--out", type=Path, default=Path("dashboard"), help="offline: where workspace.json goes")
    rp_parser = commands.add_parser("report", help="a report of a multirun directory")
    rp_parser.add_argument("sweep_dir", type=Path)
    rp_parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"))
    rp_parser.add_argument("--project", default=os.environ.get("WANDB_PROJECT", "reasoning_lab"))
    args = parser.parse_args(argv)
    try:
        if args.command == "workspace":
            made = workspace(args.overrides, args.out)
        else:
            if not args.sweep_dir.is_dir():
                raise ReasoningLabError(f"{args.sweep_dir} is not a directory; point at a multirun directory "
                                        "(logs/<stage>/multiruns/<time>)")
            made = report(args.sweep_dir, args.entity, args.project)
        if isinstance(made, str):  # online: the saved view's URL
            print(made)
    except ReasoningLabError as error:
        print(f"reasoning_lab.dashboard: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
