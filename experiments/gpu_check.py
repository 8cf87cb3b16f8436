"""`make gpu-check`: every stage on Llama 3.2 3B's shape on a CUDA GPU, with speed against the device's peak.

Runs the project's own command line (`python -m reasoning_lab ...`) with `model=llama3_2_3b_shape` (random
weights of the design's shape, the embedded tokenizer; no hub access needed) at a small budget, for
`model.quantization` none (bf16), 8bit and 4bit side by side, and writes experiments/results/gpu.md:
per stage the wall time, optimizer steps/s, trained tokens/s, generated tokens/s, peak GPU memory and MFU
against the device's measured bf16 matrix-product peak (model FLOPs of LoRA training: 4 x parameters per
token, the frozen base's forward and input gradients; recomputation not counted).

The cheapest measurements come first (the SFT warm-ups of all three precisions, then evaluation, then RL and the
curriculum), a line is printed per stage, and the run stops cleanly at `--budget-s` seconds (default 480, for a
short GPU loan): a stage still running then is stopped, and it and every stage after it are marked "not run
(budget)". The table is rewritten after every stage, so it always holds what was measured. The warm-up rows train
by a token budget (`warmup.max_tokens_per_batch`, `--sft-tokens`) as well as by 8 examples a step.

On a machine without a GPU it says so in one line and exits 0 (`--cpu-dry-run --model tiny_random` tests it).

    python experiments/gpu_check.py [--budget-s 480] [--plan "none:warmup;8bit:warmup,eval,grpo"]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "gpu.md"
STAGES = ("warmup", "warmup_tokens", "eval", "grpo", "ppo", "curriculum")
# cheapest first: every precision's SFT, then generation, then RL and the curriculum
PLAN = ("none:warmup,warmup_tokens;8bit:warmup,warmup_tokens;4bit:warmup,warmup_tokens;none:eval;8bit:eval;"
        "none:grpo;8bit:grpo;8bit:ppo;4bit:eval;8bit:curriculum")


def matmul_peak() -> float:
    """Measured bf16 matrix-product FLOP/s of this device (8192^3, mean of 10 after 3 warm-ups)."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (time.perf_counter() - began)


def parameters_of_shape(model: str) -> float:
    """Parameters of a random-weights model config (tied embeddings), from its shape."""
    sys.path.insert(0, str(ROOT))
    from experiments.bench import compose

    shape = compose(f"model={model}").model.tiny
    h, layers, inter = shape.hidden_size, shape.num_hidden_layers, shape.intermediate_size
    kv = h * shape.num_key_value_heads // shape.num_attention_heads
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter + 2 * h
    return layers * per_layer + 49152 * h + h


def run(args: list[str], log: Path, seconds: float) -> tuple[int | None, float]:
    """`python -m reasoning_lab ARGS` with its output in `log`; (exit code, or None when stopped after
    `seconds`, and the wall time)."""
    began = time.perf_counter()
    with open(log, "w") as handle:
        try:
            code = subprocess.run([sys.executable, "-m", "reasoning_lab", *args], cwd=ROOT, stdout=handle,
                                  stderr=subprocess.STDOUT, env={**os.environ, "WANDB_MODE": "disabled"},
                                  timeout=max(seconds, 1)).returncode
        except subprocess.TimeoutExpired:
            code = None
    return code, time.perf_counter() - began


def planned(plan: str) -> list[tuple[str, str]]:
    """(quantization, stage) pairs in the order of `plan` ("q:stage,stage;q:stage")."""
    pairs = [(quant, stage) for step in plan.split(";") for quant, stages in [step.split(":")]
             for stage in stages.split(",")]
    unknown = sorted({stage for _, stage in pairs if stage not in STAGES})
    if unknown:
        raise SystemExit(f"gpu-check: unknown stage(s) {unknown} in --plan; stages are {', '.join(STAGES)}")
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", default=PLAN,
                        help="quantization:stage,stage;... in the order to run (the table is rewritten after each)")
    parser.add_argument("--budget-s", type=float, default=480, help="stop cleanly after this many seconds in all")
    parser.add_argument("--sft-tokens", type=int, default=0,
                        help="warmup_tokens rows: tokens per batch (0: the budget that fills the GPU, probed)")
    parser.add_argument("--out", default=str(OUT), help="the table (markdown)")
    parser.add_argument("--model", default="llama3_2_3b_shape", help="model config (tiny_random: a CPU dry run)")
    parser.add_argument("--cpu-dry-run", action="store_true", help="run on the CPU anyway (tests the script)")
    parser.add_argument("--data-root", default=os.environ.get("REASONING_LAB_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--steps", type=int, default=10, help="warm-up optimizer steps")
    args = parser.parse_args()
    pairs, out, began = planned(args.plan), Path(args.out), time.perf_counter()
    if not torch.cuda.is_available() and not args.cpu_dry_run:
        print("gpu-check: no CUDA GPU on this machine; run `make gpu-check` on one (nothing was measured)")
        return 0

    peak = matmul_peak() if torch.cuda.is_available() else float("nan")
    n_params = parameters_of_shape(args.model)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (dry run)"
    base = [f"model={args.model}", "data=real", f"data.root={args.data_root}", "logger=none",
            "eval.datasets=[gsm8k]", "eval.with_base=false"]
    rows = []

    def write():
        lines = ["# make gpu-check", "", f"Device: {device}, torch {torch.__version__}; measured bf16 matrix-product "
                 f"peak {peak / 1e12:.0f} TFLOP/s; model Llama 3.2 3B shape ({n_params / 1e9:.2f}B parameters, random "
                 "weights), LoRA r=8 on q/v, GSM8K rows.", "",
                 "| quantization | stage | result | wall s | steps/s | trained tokens/s | MFU | generated tokens/s | "
                 "peak GPU memory GiB | notes |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
                 *["| " + " | ".join(str(x) for x in r) + " |" for r in rows],
                 *[f"| {q} | {s} | not run (budget) | | | | | | | |" for q, s in pairs[len(rows):]], "",
                 f"Command: `python experiments/gpu_check.py --plan \"{args.plan}\" --budget-s {args.budget_s:.0f} "
                 f"--sft-tokens {args.sft_tokens}` ({time.perf_counter() - began:.0f} s).", ""]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines))
        if os.environ.get("OUT"):  # the device tool's folder of files that come back
            (Path(os.environ["OUT"]) / "gpu.md").write_text("\n".join(lines))
        print("\n".join(lines), flush=True)

    def result(code: int | None) -> str:
        return "ok" if code == 0 else "stopped (budget)" if code is None else f"exit {code}"

    with tempfile.TemporaryDirectory() as tmp:
        for quant, stage in pairs:
            left = args.budget_s - (time.perf_counter() - began)
            if left <= 0:
                break
            q = [*base, f"model.quantization={quant}"]
            run_dir = Path(tmp) / quant
            checkpoint = run_dir / "warmup" / "checkpoint"
            if not checkpoint.exists() and (run_dir / "tokens" / "warmup" / "checkpoint").exists():
                checkpoint = run_dir / "tokens" / "warmup" / "checkpoint"
            log = run_dir.with_suffix(f".{stage}.log")
            if stage in ("warmup", "warmup_tokens"):
                by_tokens = stage == "warmup_tokens"
                folder = run_dir / "tokens" if by_tokens else run_dir
                code, wall = run([*q, "stage=warmup", f"warmup.max_steps={args.steps}", "warmup.eval_steps=0",
                                  "warmup.eval_sets=[]", "data.train=[gsm8k]", f"hydra.run.dir={folder}",
                                  *([f"warmup.max_tokens_per_batch={args.sft_tokens}"] if by_tokens else [])],
                                 log, left)
                m = json.loads((folder / "warmup" / "metrics.json").read_text()) if code == 0 else {}
                train = m.get("train", {})
                final = next((h for h in reversed(train.get("history", [])) if "train_runtime" in h), {})
                tokens = max((h.get("num_tokens", 0) for h in train.get("history", [])), default=0)
                runtime = final.get("train_runtime") or float("nan")
                tps = tokens / runtime if tokens else float("nan")
                rows.append((quant, f"warmup (SFT{', by tokens' if by_tokens else ''})", result(code), f"{wall:.0f}",
                             f"{train.get('steps', 0) / runtime:.2f}", f"{tps:,.0f}",
                             f"{100 * tps * 4 * n_params / peak:.1f}%", "-", m.get("peak_gpu_memory_gib", "-"),
                             f"{args.steps} steps of " + (f"up to {train.get('max_tokens_per_batch')} tokens"
                                                          + (" (probed)" if args.sft_tokens == 0 else "")
                                                          if by_tokens else "batch 8")))
            elif stage == "eval":
                code, wall = run([*q, "stage=eval", f"checkpoint.eval={checkpoint}", "eval.datasets=[gsm8k]",
                                  "eval.limit=32", "eval.k=4", "eval.max_new_tokens=64",
                                  "eval.direct_max_new_tokens=16", f"hydra.run.dir={run_dir}/e"], log, left)
                res = json.loads((run_dir / "e" / "eval" / "eval_results.json").read_text()) if code == 0 else {}
                preds = run_dir / "e" / "eval" / "predictions" / "gsm8k.jsonl"
                generated = 0
                if code == 0 and preds.exists():
                    for line in preds.read_text().splitlines():
                        row = json.loads(line)
                        generated += row["greedy_tokens"] + sum(s["tokens"] for s in row["samples"])
                seconds = res.get("wall_seconds") or float("nan")
                m = json.loads((run_dir / "e" / "eval" / "metrics.json").read_text()) if code == 0 else {}
                rows.append((quant, "eval", result(code), f"{wall:.0f}", "-", "-", "-",
                             f"{generated / seconds:,.0f}", m.get("peak_gpu_memory_gib", "-"),
                             "32 problems x (greedy + 4 samples + direct), 64 new tokens (direct answers not counted)"))
            elif stage in ("grpo", "ppo"):
                code, wall = run([*q, "stage=rl", f"rl={stage}", f"checkpoint.init_from={checkpoint}", "rl.max_steps=3",
                                  "rl.prompts_per_step=4", "rl.num_generations=4", "rl.max_completion_length=64",
                                  "rl.eval_every=0", "rl.eval_sets=[]", "rl.prompt_sets=[gsm8k]",
                                  f"hydra.run.dir={run_dir}/{stage}"], log, left)
                m = json.loads((run_dir / stage / "rl" / "metrics.json").read_text()) if code == 0 else {}
                t = m.get("train", {})
                steps = t.get("steps") or 3
                seconds = t.get("train_seconds") or float("nan")
                rows.append((quant, stage, result(code), f"{wall:.0f}",
                             f"{steps / seconds:.2f}", "-", "-", "-", m.get("peak_gpu_memory_gib", "-"),
                             f"3 steps of 4 prompts x 4 completions x 64 tokens; generating "
                             f"{100 * t.get('generate_share', float('nan')):.0f}% of the step"))
            elif stage == "curriculum":
                code, wall = run([*q, "stage=curriculum", f"checkpoint.init_from={checkpoint}", "curriculum=stages",
                                  "curriculum.stages=[{name:simple,data:[gsm8k_simple]},{name:all,data:[gsm8k]}]",
                                  "curriculum.max_steps=4", "curriculum.max_extensions=0",
                                  "curriculum.val_limit=8", "curriculum.val_max_new_tokens=64",
                                  "curriculum.final_eval=false", "data.val_size=16", "eval.during_training.limit=8",
                                  "eval.during_training.max_new_tokens=64", f"hydra.run.dir={run_dir}/c"], log, left)
                m = json.loads((run_dir / "c" / "curriculum" / "metrics.json").read_text()) if code == 0 else {}
                rows.append((quant, "curriculum", result(code), f"{wall:.0f}",
                             "-", "-", "-", "-", m.get("peak_gpu_memory_gib", "-"),
                             "2 stages x 4 steps, validation and after-stage evaluation included"))
            print(f"gpu-check: {quant} {stage}: {result(code)} in {wall:.0f} s", flush=True)
            write()
            if code is None:
                break
            if code != 0:
                print(f"--- {quant} {stage} failed; log tail:\n{log.read_text()[-3000:]}", flush=True)
    write()  # also when the budget ran out before the first stage
    return 0


if __name__ == "__main__":
    sys.exit(main())
