"""Benchmark: batched self-consistency sampling against the design sketch's loop.

The sketch calls `generate` once per sample, per problem. reasoning_lab.decoding.generate encodes
each prompt once, takes the k samples from one `generate` call (num_return_sequences=k) and puts
several problems in one left-padded batch. Same model (the embedded SmolLM2-135M), same problems,
same k, same token budget and sampling settings; the two run alternately in one process, after a
warm-up, and each figure is the median over repeats.

    python experiments/bench_self_consistency.py [--problems 8] [--k 8] [--max-new-tokens 64] [--repeats 3]

Prints a table and writes experiments/results/self_consistency.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from bench import batched_sampling, machine, save_table, sketch_loop

from reasoning_lab.config import register_configs
from reasoning_lab.model import load_model, load_tokenizer
from reasoning_lab.problem import chat_prompt

ROOT = Path(__file__).resolve().parents[1]


def questions(n: int) -> list[str]:
    import json

    path = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
    if path.exists():
        return [json.loads(line)["question"] for line in path.read_text().splitlines()[:n]]
    from reasoning_lab.synthetic import synthetic_gsm8k

    return [p.question for p in synthetic_gsm8k(n, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="problems per generate call (batched)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "self_consistency.md"))
    args = parser.parse_args()

    register_configs()
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config")
    model = load_model(cfg.model, trainable=False)
    tokenizer = load_tokenizer(cfg.model)
    system = cfg.data.system_prompt
    prompts = [chat_prompt(q, system) for q in questions(args.problems)]
    settings = dict(k=args.k, max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.95)

    runs = {"sketch loop (generate per sample)": lambda: sketch_loop(model, tokenizer, prompts[:1], **{**settings, "k": 1}),
            "batched (num_return_sequences, batches)": lambda: batched_sampling(model, tokenizer, prompts[:1], **{**settings, "k": 1},
                                                                      batch_size=args.batch_size)}
    for warm in runs.values():  # warm-up: allocator, kernels, caches
        warm()
    timings = {"sketch": [], "batched": []}
    for repeat in range(args.repeats):
        torch.manual_seed(repeat)
        began = time.perf_counter()
        sketch_tokens = sketch_loop(model, tokenizer, prompts, **settings)
        timings["sketch"].append((time.perf_counter() - began, sketch_tokens))
        torch.manual_seed(repeat)
        began = time.perf_counter()
        batch_tokens = batched_sampling(model, tokenizer, prompts, **settings, batch_size=args.batch_size)
        timings["batched"].append((time.perf_counter() - began, batch_tokens))
        print(f"repeat {repeat}: sketch {timings['sketch'][-1][0]:.1f} s, batched {timings['batched'][-1][0]:.1f} s",
              flush=True)

    def summary(name):
        seconds = statistics.median(t for t, _ in timings[name])
        rate = statistics.median(n / t for t, n in timings[name])
        return seconds, rate

    sketch_s, sketch_rate = summary("sketch")
    batch_s, batch_rate = summary("batched")
    table = [
        "# Self-consistency decoding: batched vs the design sketch's loop",
        "",
        f"Machine: {machine()}",
        f"Model: {cfg.model.name} ({cfg.model.dtype}); {args.problems} GSM8K test questions, k={args.k} samples each,"
        f" max_new_tokens={args.max_new_tokens}, temperature 0.7, top_p 0.95; batched: {args.batch_size} problems"
        f" x {args.k} samples per generate call; median of {args.repeats} alternating repeats after a warm-up.",
        f"Command: python experiments/bench_self_consistency.py --problems {args.problems} --k {args.k} "
        f"--max-new-tokens {args.max_new_tokens} --batch-size {args.batch_size} --repeats {args.repeats}",
        "",
        "| decoding | wall time (s) | generated tokens/s | speed-up |",
        "|---|---:|---:|---:|",
        f"| sketch loop (one generate per sample) | {sketch_s:.1f} | {sketch_rate:.1f} | 1.00x |",
        f"| batched (reasoning_lab.decoding) | {batch_s:.1f} | {batch_rate:.1f} | {sketch_s / batch_s:.2f}x |",
        "",
        f"Target on the 2-core CPU: at least 3x at k=8. Result: {sketch_s / batch_s:.2f}x "
        f"({'met' if sketch_s / batch_s >= 3 else 'not met'}).",
        "",
    ]
    save_table(table, args.out)


if __name__ == "__main__":
    main()
