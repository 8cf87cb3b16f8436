"""Paired comparison of evaluated runs: is a difference larger than its noise?

    python -m reasoning_lab.compare RUN_A RUN_B [RUN_C ...] [--out DIR] [--wandb]
    python -m reasoning_lab.compare --arms NAME_A:DIR,DIR,DIR NAME_B:DIR,DIR,DIR [--out DIR] [--wandb]
    python -m reasoning_lab.compare --voting DIR [DIR ...] [--out DIR]

Each argument is a run directory or an evaluation folder inside one (a folder with `predictions/`). Two
runs evaluated on the same problems are compared problem by problem, which detects far smaller
differences than two independent intervals. For every dataset that both evaluated on the same problems
(matched by question text):
- the difference of greedy accuracy and of maj@k (B - A),
- a paired bootstrap 95% interval of that difference (problems resampled, pairs kept together),
- the exact McNemar p-value: a two-sided binomial test on the discordant pairs (A right and B wrong vs
  A wrong and B right); it ignores the problems both get right or both get wrong.
With more than two runs, each is compared with the first (the baseline) and the p-values are corrected
for the number of comparisons with Holm's step-down method (`p_holm`). Datasets whose problem sets differ
are not compared, and a line says so. Writes `compare.json`, `compare.md` and `compare.png`.

One pair of runs removes the evaluation's noise, not the training's. `--arms` compares two recipes (or more,
each against the first) trained with several seeds: the runs of each arm listed in the same seed order, the
runs at one position paired. Per dataset: each arm's mean accuracy and spread over seeds, the per-seed paired
deltas and their mean, a 95% interval from a two-level bootstrap (seeds resampled, then problems within each),
the p-value of a stratified permutation test (seeds as strata) and the minimal detectable effect of the design
(80% power, alpha 0.05, at the observed problem-level and between-seed variance); the same for maj@k where
both arms have it; Holm over datasets (and arms). Where every run has a validation accuracy curve
(curriculum.curve_every > 0): the steps each arm takes to reach the first arm's final validation accuracy, as a share
of its steps, pooled with an interval.

`--voting` asks whether self-consistency pays: in each run (evaluated with `eval.k` samples), maj@k against greedy
on the same problems, pooled over the runs as over the seeds of `--arms` (arm A greedy, arm B maj@k), with the
samples' own accuracy (pass@1) beside them, and the samples a problem would have used with `eval.adaptive_k`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from reasoning_lab.answers import settled
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.stats import POOLED_TEST, holm, mcnemar_p, paired_bootstrap, pooled_paired, steps_to_target

# where a run directory keeps its evaluations, the preferred first
EVALUATION_FOLDERS = ("eval", "curriculum/final", "rl", "warmup")


def evaluation_folder(path: str | Path) -> Path:
    """The folder holding `predictions/` for a run directory or an evaluation folder."""
    path = Path(path)
    if not path.exists():
        raise ReasoningLabError(f"{path} does not exist; pass a run directory or an evaluation folder")
    if (path / "predictions").is_dir():
        return path
    for name in EVALUATION_FOLDERS:
        if (path / name / "predictions").is_dir():
            return path / name
    found = sorted(path.glob("**/predictions"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ReasoningLabError(f"{path} holds no evaluation (no predictions/ folder); run stage=eval on it first")
    return found[-1].parent


def read_predictions(folder: Path) -> dict[str, dict[str, dict]]:
    """dataset -> question -> its prediction row."""
    sets = {}
    for file in sorted((folder / "predictions").glob("*.jsonl")):
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        sets[file.stem] = {row["question"]: row for row in rows}
    return sets


def compare_pair(a: dict[str, dict], b: dict[str, dict], seed: int = 0) -> dict:
    """Paired statistics of one dataset evaluated by two runs on the same problems."""
    questions = sorted(a)
    result = {"n": len(questions)}
    for metric, key in (("accuracy", "correct"), ("maj", "vote_correct")):
        if any(row.get(key) is None for row in (*a.values(), *b.values())):  # eval.k=0: greedy only, no vote
            result.update({f"maj_{name}": None for name in ("accuracy_a", "accuracy_b", "delta", "ci95", "p_value",
                                                            "discordant", "p_holm")})
            continue
        xa = [bool(a[q].get(key)) for q in questions]
        xb = [bool(b[q].get(key)) for q in questions]
        mean_a, mean_b = sum(xa) / len(xa), sum(xb) / len(xb)
        prefix = "" if metric == "accuracy" else "maj_"
        result.update({f"{prefix}accuracy_a": round(mean_a, 4), f"{prefix}accuracy_b": round(mean_b, 4),
                       f"{prefix}delta": round(mean_b - mean_a, 4), f"{prefix}ci95": paired_bootstrap(xa, xb, seed=seed),
                       f"{prefix}p_value": mcnemar_p(xa, xb),
                       f"{prefix}discordant": [sum(x and not y for x, y in zip(xa, xb)),
                                               sum(y and not x for x, y in zip(xa, xb))]})
    return result


def compare_runs(paths: list[str | Path], seed: int = 0) -> dict:
    """Every run against the first, per dataset evaluated on the same problems; Holm-corrected p-values."""
    if len(paths) < 2:
        raise ReasoningLabError("compare needs at least two runs: python -m reasoning_lab.compare RUN_A RUN_B")
    folders = [evaluation_folder(p) for p in paths]
    predictions = [read_predictions(f) for f in folders]
    comparisons, refused = [], []
    for folder, preds in zip(folders[1:], predictions[1:]):
        for name in sorted(set(predictions[0]) | set(preds)):
            a, b = predictions[0].get(name), preds.get(name)
            if a is None or b is None:
                refused.append(f"{name}: evaluated by only one of {folders[0]} and {folder}; not compared")
                continue
            if set(a) != set(b):
                refused.append(f"{name}: different problems ({len(a)} in {folders[0]}, {len(b)} in {folder}, "
                               f"{len(set(a) & set(b))} shared); not compared, evaluate both with the same "
                               "data.seed and eval.limit")
                continue
            comparisons.append({"dataset": name, "a": str(folders[0]), "b": str(folder), **compare_pair(a, b, seed)})
    for prefix in ("", "maj_"):
        tested = [c for c in comparisons if c[f"{prefix}p_value"] is not None]
        for c, p in zip(tested, holm([c[f"{prefix}p_value"] for c in tested])):
            c[f"{prefix}p_holm"] = p
    return {"baseline": str(folders[0]), "runs": [str(f) for f in folders], "comparisons": comparisons,
            "not_compared": refused}


def parse_arm(text: str) -> tuple[str, list[str]]:
    """`NAME:DIR,DIR,...` -> (NAME, [DIR, ...])."""
    name, _, dirs = text.partition(":")
    runs = [d for d in dirs.split(",") if d]
    if not name or not runs:
        raise ReasoningLabError(f"--arms {text!r}: write each arm as NAME:DIR,DIR,... (its runs in seed order)")
    return name, runs


def compare_arms(arms: dict[str, list[str | Path]], seed: int = 0) -> dict:
    """Every arm against the first, the runs at the same position (seed) paired; pooled over seeds per dataset."""
    if len(arms) < 2:
        raise ReasoningLabError("--arms needs at least two arms: --arms A:DIR,DIR B:DIR,DIR")
    sizes = {name: len(runs) for name, runs in arms.items()}
    if len(set(sizes.values())) > 1:
        raise ReasoningLabError(f"--arms: every arm needs one run per seed, in the same order; got {sizes}")
    folders = {name: [evaluation_folder(r) for r in runs] for name, runs in arms.items()}
    predictions = {name: [read_predictions(f) for f in runs] for name, runs in folders.items()}
    baseline, *others = list(arms)
    comparisons, refused = [], []
    for other in others:
        datasets = sorted(set.intersection(*(set(p) for p in predictions[baseline] + predictions[other])))
        for name in sorted(set().union(*(set(p) for p in predictions[baseline] + predictions[other])) - set(datasets)):
            refused.append(f"{name}: not evaluated by every run of {baseline} and {other}; not compared")
        for name in datasets:
            pairs = [(a[name], b[name]) for a, b in zip(predictions[baseline], predictions[other])]
            mismatched = [i for i, (a, b) in enumerate(pairs) if set(a) != set(b)]
            if mismatched:
                refused.append(f"{name}: seed position(s) {mismatched} evaluated on different problems in {baseline} "
                               f"and {other}; not compared, evaluate both with the same data.seed and eval.limit")
                continue
            comparisons.append({"dataset": name, "a": baseline, "b": other, **pooled_pair(pairs, seed)})
    for prefix in ("", "maj_"):
        tested = [c for c in comparisons if c[f"{prefix}p_value"] is not None]
        for c, p in zip(tested, holm([c[f"{prefix}p_value"] for c in tested])):
            c[f"{prefix}p_holm"] = p
    return {"mode": "arms", "baseline": baseline, "arms": {n: [str(f) for f in fs] for n, fs in folders.items()},
            "comparisons": comparisons, "not_compared": refused, "steps_to_target": speed(folders, seed)}


def accuracy_curve(folder: Path) -> list[tuple[int, list[int]]] | None:
    """A curriculum run's validation accuracy curve (`accuracy_curve` in the metrics.json beside its evaluation
    folder, curriculum.curve_every > 0) as (step, every problem's correctness, the sets in order); None without one."""
    for metrics in (folder / "metrics.json", folder.parent / "metrics.json"):
        if metrics.exists():
            points = json.loads(metrics.read_text()).get("accuracy_curve") or None
            return points and [(p["step"], [x for name in sorted(p["correct"]) for x in p["correct"][name]])
                               for p in points]
    return None


def speed(folders: dict[str, list[Path]], seed: int) -> list[dict]:
    """Each arm's steps to the first arm's final validation accuracy, as a share of its steps, pooled over seeds
    (reasoning_lab.stats.steps_to_target); the first arm against itself too. Only arms whose every run has a curve,
    and none unless the first arm's runs all have one."""
    curves = {name: [accuracy_curve(f) for f in runs] for name, runs in folders.items()}
    baseline = curves[next(iter(curves))]
    if any(c is None for c in baseline):
        return []
    return [{"arm": name, **steps_to_target(list(zip(baseline, runs)), seed=seed)} for name, runs in curves.items()
            if all(c is not None for c in runs)]


def speed_table(result: dict) -> list[str]:
    """The markdown of `steps_to_target` (empty without curves)."""
    if not result.get("steps_to_target"):
        return []
    ratio = lambda x: "never" if x is None else f"{x:.2f}"  # noqa: E731
    lines = ["", f"Steps to reach arm {result['baseline']}'s final validation accuracy (its last point of the "
             "accuracy curve, the same validation problems), as a share of its steps; a seed that never reaches it "
             "counts as never (infinite); 95% interval from a two-level bootstrap (seeds, then problems). An arm is "
             "faster beyond noise when the interval's upper end is below 1.", "",
             "| arm | target per seed | steps per seed | ratio per seed | pooled ratio [95% CI] |",
             "|---|---|---|---|---|"]
    for row in result["steps_to_target"]:
        lines.append(f"| {row['arm']} | {' / '.join(f'{t:.3f}' for t in row['target'])} | "
                     f"{' / '.join('never' if s is None else str(s) for s in row['steps'])} of "
                     f"{' / '.join(map(str, row['baseline_steps']))} | {' / '.join(map(ratio, row['per_seed_ratio']))} | "
                     f"{ratio(row['ratio'])} [{ratio(row['ci95'][0])}, {ratio(row['ci95'][1])}] |")
    return lines


def compare_voting(runs: list[str | Path], seed: int = 0) -> dict:
    """maj@k, and wmaj@k (votes weighted by confidence) where every run has it, against greedy within each run (the
    same problems), pooled over the runs; the samples' own accuracy and the mean samples a problem used."""
    folders = [evaluation_folder(r) for r in runs]
    predictions = [read_predictions(f) for f in folders]
    comparisons, refused = [], []
    for name in sorted(set.intersection(*(set(p) for p in predictions))):
        rows = [p[name] for p in predictions]
        if any(row.get("vote_correct") is None for r in rows for row in r.values()):
            refused.append(f"{name}: evaluated without samples (eval.k=0) by some run; rerun stage=eval with eval.k >= 2")
            continue
        own = [sum(s["correct"] for row in r.values() for s in row["samples"]) /
               sum(len(row["samples"]) for row in r.values()) for r in rows]
        samples = [sum(len(row["samples"]) for row in r.values()) / len(r) for r in rows]
        adaptive = [sum(settling_samples(row["samples"]) for row in r.values()) / len(r) for r in rows]
        votes = [("maj@k", "vote_correct")] + ([("wmaj@k", "weighted_vote_correct")] if all(
            row.get("weighted_vote_correct") is not None for r in rows for row in r.values()) else [])
        for label, key in votes:
            pairs = [({q: {"correct": row["correct"]} for q, row in r.items()},
                      {q: {"correct": row[key]} for q, row in r.items()}) for r in rows]
            comparisons.append({"dataset": name, "b": label, **pooled_pair(pairs, seed),
                                "samples_accuracy": [round(x, 4) for x in own],
                                "mean_samples": [round(x, 2) for x in samples],
                                "adaptive_samples": [round(x, 2) for x in adaptive]})
    for c, p in zip(comparisons, holm([c["p_value"] for c in comparisons])):
        c["p_holm"] = p
    return {"mode": "arms", "baseline": "greedy", "arms": {"greedy": [str(f) for f in folders],
                                                           **{c["b"]: [] for c in comparisons}},
            "comparisons": comparisons, "not_compared": refused}


def settling_samples(samples: list[dict]) -> int:
    """How many of a problem's samples, in the order drawn, `eval.adaptive_k` would have taken for the majority vote:
    k // 2 + 1, then one more while the vote could still change (reasoning_lab.answers.settled). Its vote is then
    the vote of all k (a settled vote cannot change), so this is the cost of maj@k with early stopping."""
    k, answers = len(samples), [s["answer"] for s in samples]
    m = min(k, k // 2 + 1)
    while m < k and not settled(answers[:m], [1.0] * m, k - m):
        m += 1
    return m


def pooled_pair(pairs: list[tuple[dict, dict]], seed: int) -> dict:
    """Pooled statistics of one dataset: greedy accuracy, and maj@k where every run of both arms has it."""
    result = {}
    for prefix, key in (("", "correct"), ("maj_", "vote_correct")):
        if any(row.get(key) is None for a, b in pairs for row in (*a.values(), *b.values())):
            result.update({f"{prefix}{k}": None for k in ("accuracy_a", "accuracy_b", "per_seed_delta", "delta",
                                                           "ci95", "p_value", "p_holm", "mde")})
            continue
        questions = [sorted(a) for a, _ in pairs]
        pooled = pooled_paired([[bool(a[q].get(key)) for q in qs] for (a, _), qs in zip(pairs, questions)],
                               [[bool(b[q].get(key)) for q in qs] for (_, b), qs in zip(pairs, questions)], seed=seed)
        if not prefix:
            result.update({"seeds": pooled["seeds"], "n": pooled["n"], "test": pooled["test"]})
        result.update({f"{prefix}{k}": pooled[k] for k in ("accuracy_a", "accuracy_b", "per_seed_delta", "delta",
                                                            "ci95", "p_value", "mde", "within_var", "between_var")})
    return result


def mean_sd(values: list[float]) -> str:
    """`mean ± sd` over seeds (the sample standard deviation; 0 for one seed)."""
    centre = sum(values) / len(values)
    sd = (sum((v - centre) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return f"{centre:.3f} ± {sd:.3f}"


def pooled_table(result: dict) -> list[str]:
    """The markdown table of a comparison of arms (also in sweep.md)."""
    lines = ["| dataset | arm B | seeds x n | A: mean ± sd | B: mean ± sd | per-seed B - A | pooled delta [95% CI] | p | "
             "p_holm | MDE | maj delta [95% CI] | maj p_holm | maj MDE |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in result["comparisons"]:
        maj = "- | - | - |" if c["maj_p_value"] is None else \
            (f"{c['maj_delta']:+.3f} [{c['maj_ci95'][0]:+.3f}, {c['maj_ci95'][1]:+.3f}] | {c['maj_p_holm']:.3g} | "
             f"{c['maj_mde']:.3f} |")
        lines.append(f"| {c['dataset']} | {c['b']} | {c['seeds']} x {min(c['n'])} | {mean_sd(c['accuracy_a'])} | "
                     f"{mean_sd(c['accuracy_b'])} | {' / '.join(f'{d:+.3f}' for d in c['per_seed_delta'])} | "
                     f"{c['delta']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] | {c['p_value']:.3g} | "
                     f"{c['p_holm']:.3g} | {c['mde']:.3f} | " + maj)
    return lines


POOLED_NOTE = ("delta = B - A, the mean over seeds of the paired per-seed deltas (runs at one seed position "
               "evaluated on the same problems); 95% interval from a two-level bootstrap (seeds resampled, then "
               f"problems within each); p from a {POOLED_TEST}; p_holm corrected over all rows; MDE: the smallest true delta "
               "this design (seeds x n problems) detects with 80% power at alpha 0.05, at the observed problem-level "
               "and between-seed variance. A difference is established when p_holm < 0.05 and the interval excludes 0.")


def write_outputs(result: dict, out: Path) -> tuple[Path, Path, Path]:
    """`compare.json`, `compare.md` and `compare.png` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    if result.get("mode") == "arms":
        lines = [f"# Pooled paired comparison against arm {result['baseline']}", "", POOLED_NOTE, "",
                 *[f"- arm {name}: {', '.join(runs)}" for name, runs in result["arms"].items() if runs], "",
                 *pooled_table(result), *speed_table(result)]
        lines += [f"\n{c['dataset']}: the samples' own accuracy (pass@1), per run: "
                  f"{' / '.join(f'{x:.3f}' for x in c['samples_accuracy'])}; samples a problem, per run: "
                  f"{' / '.join(f'{x:.2f}' for x in c['mean_samples'])}; with eval.adaptive_k (the same majority vote): "
                  f"{' / '.join(f'{x:.2f}' for x in c['adaptive_samples'])}"
                  for c in result["comparisons"] if "samples_accuracy" in c and c["b"] == "maj@k"]
    else:
        lines = pairs_table(result)
    for line in result["not_compared"]:
        lines.append(f"\nNot compared: {line}")
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    plot_deltas(result, out / "compare.png")
    return out / "compare.json", out / "compare.md", out / "compare.png"


def pairs_table(result: dict) -> list[str]:
    """The markdown of a comparison of single runs."""
    lines = [f"# Paired comparison against {result['baseline']}", "",
             "delta = B - A on the same problems; 95% interval from a paired bootstrap; p from the exact McNemar "
             "test on the discordant pairs (A only right, B only right); p_holm corrected for all comparisons.", "",
             "| dataset | B | n | accuracy A | accuracy B | delta [95% CI] | p | p_holm | maj A | maj B | "
             "maj delta [95% CI] | maj p |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in result["comparisons"]:
        lines.append(f"| {c['dataset']} | {c['b']} | {c['n']} | {c['accuracy_a']:.3f} | {c['accuracy_b']:.3f} | "
                     f"{c['delta']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] | {c['p_value']:.3g} | "
                     f"{c['p_holm']:.3g} | " + ("- | - | - | - |" if c["maj_p_value"] is None else
                     f"{c['maj_accuracy_a']:.3f} | {c['maj_accuracy_b']:.3f} | "
                     f"{c['maj_delta']:+.3f} [{c['maj_ci95'][0]:+.3f}, {c['maj_ci95'][1]:+.3f}] | {c['maj_p_value']:.3g} |"))
    return lines


def plot_deltas(result: dict, path: Path) -> None:
    """Each row's delta with its 95% interval (greedy and maj@k); an arms comparison adds its per-seed deltas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 * max(3, len(result["comparisons"])) + 1.5))
    arms = result.get("mode") == "arms"
    labels = [f"{c['dataset']} ({c['b'] if arms else Path(c['b']).parent.name + '/' + Path(c['b']).name})"
              for c in result["comparisons"]]
    for offset, prefix, name in ((-0.15, "", "greedy"), (0.15, "maj_", "maj@k")):
        shown = [(i, c) for i, c in enumerate(result["comparisons"]) if c[f"{prefix}delta"] is not None]
        if not shown:
            continue
        deltas = [c[f"{prefix}delta"] for _, c in shown]
        errors = [[d - c[f"{prefix}ci95"][0] for d, (_, c) in zip(deltas, shown)],
                  [c[f"{prefix}ci95"][1] - d for d, (_, c) in zip(deltas, shown)]]
        ax.errorbar(deltas, [i + offset for i, _ in shown], xerr=errors, fmt="o", capsize=3, label=name)
        if arms:
            seeds = [(d, i + offset) for i, c in shown for d in c[f"{prefix}per_seed_delta"]]
            ax.scatter([d for d, _ in seeds], [y for _, y in seeds], marker="x", s=14, color="grey",
                       label=f"{name}, per seed")
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("accuracy difference B - A (" + ("two-level" if arms else "paired") + " bootstrap 95% interval)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def seed_mean(value):
    """A number, or the mean of a per-seed list (a comparison of arms)."""
    return sum(value) / len(value) if isinstance(value, list) else value


def log_comparison(result: dict, out: Path) -> None:
    import os

    import wandb

    columns = ["dataset", "b", "n", "accuracy_a", "accuracy_b", "delta", "ci_low", "ci_high", "p_value", "p_holm", "mde"]
    rows = [[c["dataset"], c["b"], seed_mean(c["n"]), seed_mean(c["accuracy_a"]), seed_mean(c["accuracy_b"]), c["delta"], *c["ci95"],
             c["p_value"], c["p_holm"], c.get("mde")] for c in result["comparisons"]]
    run = wandb.init(project="reasoning_lab", job_type="compare", dir=str(out), mode=os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline"))
    run.log({"compare/table": wandb.Table(columns=columns, data=rows), "compare/plot": wandb.Image(str(out / "compare.png"))})
    run.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasoning_lab.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run directories or evaluation folders; the first is the baseline")
    parser.add_argument("--arms", nargs="+", metavar="NAME:DIR,DIR", help="recipes trained with several seeds, each "
                        "NAME:its runs in seed order; the first arm is the baseline, runs at one position are paired")
    parser.add_argument("--voting", nargs="+", metavar="DIR", help="maj@k against greedy within each run (evaluated "
                        "with eval.k samples), pooled over the runs")
    parser.add_argument("--out", default=None, help="output folder (default: logs/compare/<time>)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--wandb", action="store_true", help="also log the table and plot to W&B")
    args = parser.parse_args(argv)
    if sum(map(bool, (args.runs, args.arms, args.voting))) != 1:
        print("error: give one of runs (RUN_A RUN_B ...), --arms NAME_A:DIR,DIR NAME_B:DIR,DIR or --voting DIR ...",
              file=sys.stderr)
        return 2
    try:
        if args.voting:
            result = compare_voting(args.voting, args.seed)
        elif args.arms:
            arms = dict(parse_arm(text) for text in args.arms)
            if len(arms) != len(args.arms):
                raise ReasoningLabError("--arms: two arms share a name; give each arm its own NAME")
            result = compare_arms(arms, args.seed)
        else:
            result = compare_runs(args.runs, args.seed)
    except ReasoningLabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out or f"logs/compare/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    paths = write_outputs(result, out)
    print((out / "compare.md").read_text())
    if not result["comparisons"]:
        print("error: no dataset evaluated with samples by every run (eval.k >= 2); nothing compared" if args.voting
              else "error: no dataset was evaluated on the same problems by these runs; nothing compared",
              file=sys.stderr)
        return 2
    if args.wandb:
        log_comparison(result, out)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
