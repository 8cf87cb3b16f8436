"""Benchmark: seconds per RL step and the share spent generating vs updating, for grpo, rloo and ppo.

Each algorithm runs the real RL stage (reasoning_lab.stages.rl) in this process on the embedded model,
with the same prompts x generations x token budget and one optimisation pass per batch, no held-out
evaluation, logger off. The first step is a warm-up and is left out of the median.

    python experiments/bench_rl.py [--steps 4] [--prompts 4] [--generations 4] [--tokens 64] [--init-from DIR]

Prints a table and writes experiments/results/rl_step.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import bench_rl, machine, save_table

ROOT = Path(__file__).resolve().parents[1]
ALGORITHMS = ("grpo", "rloo", "ppo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="measured steps per algorithm (plus one warm-up)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--init-from", default=None, help="adapter to start from (default: fresh adapters)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "rl_step.md"))
    args = parser.parse_args()

    rows = []
    for algorithm in ALGORITHMS:
        result = bench_rl(algorithm, args.steps, args.prompts, args.generations, args.tokens, args.init_from)
        rows.append((algorithm, result["step_s"], result["generate_share"], result["completion_tokens"]))
        print(f"{algorithm}: median {rows[-1][1]:.2f} s/step, generating {100 * rows[-1][2]:.0f}%", flush=True)

    command = (f"python experiments/bench_rl.py --steps {args.steps} --prompts {args.prompts} "
               f"--generations {args.generations} --tokens {args.tokens}"
               + (f" --init-from {args.init_from}" if args.init_from else ""))
    base = rows[0][1]
    lines = [
        "# RL step: seconds per step and the generation / update split",
        "",
        f"Machine: {machine()}",
        f"Model: embedded SmolLM2-135M-Instruct ({'adapter ' + args.init_from if args.init_from else 'fresh LoRA'}); "
        f"{args.prompts} prompts x {args.generations} completions x at most {args.tokens} tokens per step, one "
        f"optimisation pass per batch (PPO: one minibatch of all rollouts), KL coefficient from each rl preset; "
        f"median over {args.steps} steps after one warm-up step.",
        f"Command: {command}",
        "",
        "| algorithm | s/step | vs grpo | generating | updating (log-probs, reference, backward) | mean completion tokens |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {a} | {s:.2f} | {s / base:.2f}x | {100 * g:.0f}% | {100 * (1 - g):.0f}% | {t:.1f} |"
          for a, s, g, t in rows],
        "",
        "The generation share is `model.generate` time over the whole training loop (all steps, warm-up "
        "included). PPO's update also runs the value head and a second reference pass per rollout batch.",
        "",
    ]
    save_table(lines, args.out)


if __name__ == "__main__":
    main()
