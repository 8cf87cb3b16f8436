"""Benchmark 7: generation paths against the limit of this CPU, and an evaluation before and after.

    python experiments/bench_generation.py [--problems 64] [--tokens 128] [--checkpoint DIR] [--quick]

Part 1, the paths. Greedy answers to the same synthetic GSM8K prompts from the base model merged into an
`eval.dtype` copy, `eval.batch_size` sequences at a time, by:
- transformers `generate`, batched: left-padded batches in the prompts' order, every row until end of turn or
  the budget (what a TRL script does);
- transformers continuous batching (`generate_batch`: paged KV cache, requests join and leave every step);
- the project's loop as it was at commit `BEFORE` (transformers' `generate` in rounds of 16 steps on a
  `DynamicCache`: between rounds the rows that ended left and waiting prompts joined, the cache concatenated,
  re-padded and cut each time);
- the project's loop now (`reasoning_lab.decoding.generate`: its own decode step on a `SlotCache` allocated once;
  a waiting prompt's prefill is written into the row that ended, at once).
Each path's wall time, generated tokens, tokens/s, its share of the decode step's matrix-product ceiling
(`bench.decode_matmul_limit`: the model's own shapes at `eval.batch_size` rows) and how many of its answers equal
the project loop's (its text begins with the loop's, which ends at the answer line). A profile of the project's
loop splits its time into matrix products, attention, KV-cache copies and the rest.

Part 2, an evaluation. The default run's final evaluation (`cfg.eval`: every embedded set, greedy + k samples +
the pass without the prompt) of a checkpoint (`--checkpoint`, default: the final adapter of the newest curriculum
run under logs/, as its metrics.json names it; without one, the base model) with the loop at `BEFORE` and now: wall
time, whether every greedy and every direct completion is the same, and pass@1 of the samples (drawn from the same seed, but
the rows share batches differently, so the draws differ).

Prints the tables and writes experiments/results/generation.md.
"""

from __future__ import annotations

import argparse
import functools
import logging
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import torch
from bench import compose, decode_matmul_limit, decode_shapes, machine, newest_last_stage, save_table
from omegaconf import OmegaConf
from transformers import GenerationConfig

ROOT = Path(__file__).resolve().parents[1]


# the project's loop before the slot cache (issue 48): transformers' generate in rounds on a DynamicCache
BEFORE = "6d6a76a"


@functools.cache
def loop_before():
    """`reasoning_lab/decoding.py` as it was at commit `BEFORE`, loaded from git as a module of its own."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(["git", "show", f"{BEFORE}:reasoning_lab/decoding.py"], cwd=ROOT, capture_output=True,
                            text=True)
    if source.returncode:
        raise SystemExit(f"cannot read reasoning_lab/decoding.py at {BEFORE} ({source.stderr.strip()}); run this "
                         f"benchmark in a full clone of the repository (git fetch --unshallow)")
    path = Path(tempfile.mkdtemp()) / "decoding_before.py"
    path.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location("decoding_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def plain_generate(model, tokenizer, encoded: list[list[int]], budget: int, batch: int) -> list[tuple[int, str]]:
    from reasoning_lab.decoding import left_pad

    out, eos = [], tokenizer.eos_token_id
    for start in range(0, len(encoded), batch):
        input_ids, attention = left_pad(encoded[start : start + batch], tokenizer.pad_token_id)
        sequences = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=budget,
                                   do_sample=False, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        for ids in sequences[:, input_ids.shape[1]:].tolist():
            ids = ids[: ids.index(eos) + 1] if eos in ids else ids
            out.append((len(ids), tokenizer.decode(ids, skip_special_tokens=True)))
    return out


def continuous_batching(model, tokenizer, encoded: list[list[int]], budget: int, batch: int):
    from transformers import ContinuousBatchingConfig

    config = GenerationConfig(max_new_tokens=budget, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    results = model.generate_batch(encoded, generation_config=config, warmup=False, continuous_batching_config=
                                   ContinuousBatchingConfig(max_requests_per_batch=batch, use_async_batching=False))
    return [(len(r.generated_tokens), tokenizer.decode(r.generated_tokens, skip_special_tokens=True))
            for r in results.values()]


def project_loop(model, tokenizer, prompts, budget: int, batch: int, module=None):
    from reasoning_lab import decoding

    out = (module or decoding).generate(model, tokenizer, prompts, budget, batch_size=batch)
    return [(c.tokens, c.text) for (c,) in out]


def profile_split(fn) -> dict:
    """Shares of `fn`'s wall time: matrix products, attention, KV-cache copies (cat) and the rest."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        began = time.perf_counter()
        fn()
        wall = time.perf_counter() - began
    groups = {"matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
              "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                            "aten::_scaled_dot_product_attention_math"),
              "KV-cache copies (cat, index_select)": ("aten::cat", "aten::index_select")}
    seconds = {name: 0.0 for name in groups}
    for event in prof.key_averages():
        for name, ops in groups.items():
            if event.key in ops:
                seconds[name] += event.self_cpu_time_total / 1e6
    seconds["the rest (norms, rotary, activations, sampling, Python)"] = wall - sum(seconds.values())
    return {name: s / wall for name, s in seconds.items()}


def bench_paths(cfg, tokenizer, model, problems: int, budget: int) -> dict:
    from reasoning_lab.data import source_rows
    from reasoning_lab.problem import chat_prompt

    rows = source_rows("synthetic_gsm8k", "test", cfg.data)[:problems]
    prompts = [chat_prompt(p.question, cfg.data.system_prompt) for p in rows]
    encoded = [tokenizer.apply_chat_template(p, add_generation_prompt=True)["input_ids"] for p in prompts]
    batch, before = cfg.eval.batch_size, loop_before()
    paths = {
        "transformers generate, batched": lambda: plain_generate(model, tokenizer, encoded, budget, batch),
        "transformers continuous batching (generate_batch)":
            lambda: continuous_batching(model, tokenizer, encoded, budget, batch),
        f"project loop at {BEFORE} (before)": lambda: project_loop(model, tokenizer, prompts, budget, batch, before),
        "project loop, slot cache (now)": lambda: project_loop(model, tokenizer, prompts, budget, batch),
    }
    project_loop(model, tokenizer, prompts[:4], 8, batch)  # warm-up: allocator, kernels
    results = {}
    for name, fn in paths.items():
        began = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - began
        tokens = sum(count for count, _ in out)  # every path returns (tokens, text) per prompt
        results[name] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
                         "texts": [text for _, text in out]}
        print(f"{name}: {seconds:.1f} s, {tokens} tokens, {tokens / seconds:.0f} tokens/s", flush=True)
    # the loop's text ends at the answer line; the other paths' go on to the end of turn or the budget
    reference = results["project loop, slot cache (now)"]["texts"]
    for r in results.values():
        r["same"] = sum(text.startswith(mine) for text, mine in zip(r.pop("texts"), reference))
    results_split = profile_split(paths["project loop, slot cache (now)"])
    shapes = decode_shapes(model)
    limit = {name: decode_matmul_limit(shapes, batch, dtype)
             for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))}
    return {"paths": results, "split": results_split, "limit": limit, "n": len(prompts), "batch": batch}


def bench_evaluation(cfg, tokenizer, checkpoint: Path | None) -> dict:
    """The final evaluation budget before (the loop at `BEFORE`) and now on `checkpoint`: seconds, equal outputs."""
    from reasoning_lab.errors import ReasoningLabError
    from reasoning_lab.evaluation import eval_problems, evaluate_sets, inference_model
    from reasoning_lab.model import load_base_model, load_model
    from reasoning_lab.stats import mcnemar_p

    model = (load_model(cfg.model, init_from=str(checkpoint), trainable=False).merge_and_unload() if checkpoint
             else load_base_model(cfg.model))
    model = inference_model(model, cfg.model.quantization, cfg.eval.dtype, cfg.eval.attn_implementation)
    sets = {}
    for source in cfg.eval.datasets:  # as `evaluation.evaluate`: benchmarks without data are left out
        try:
            sets[source] = eval_problems(cfg.data, source, cfg.eval.limit)
        except ReasoningLabError:
            pass
    runs, before = {}, loop_before()
    for label in ("before", "now"):
        torch.manual_seed(0)
        with mock.patch("reasoning_lab.evaluation.generate", before.generate) if label == "before" else nullcontext():
            began = time.perf_counter()
            results = evaluate_sets(model, tokenizer, sets, cfg.eval, cfg.data.system_prompt, cfg.seed, label)
            runs[label] = {"seconds": time.perf_counter() - began, "results": results}
        print(f"evaluation {label}: {runs[label]['seconds']:.0f} s", flush=True)
    # how much the loop at BEFORE changes its own greedy completions when only its batch size changes: bfloat16
    # (and small float32) matrix products on this CPU give results that depend on the rows multiplied together
    half = OmegaConf.merge(cfg.eval, {"k": 0, "direct_limit": 0, "batch_size": cfg.eval.batch_size // 2})
    with mock.patch("reasoning_lab.evaluation.generate", before.generate):
        runs["before, half the batch"] = {"results": evaluate_sets(model, tokenizer, sets, half, cfg.data.system_prompt,
                                                                   cfg.seed, "before, half the batch")}
    def column(key: str) -> dict[str, list]:
        """`key` of every prediction row of every set, per run."""
        return {label: [row.get(key) for _, predictions in run["results"].values() for row in predictions]
                for label, run in runs.items()}

    greedy, correct, direct = column("greedy"), column("correct"), column("direct")
    return {"before_s": runs["before"]["seconds"], "now_s": runs["now"]["seconds"],
            "prompts": len(greedy["now"]), "same_greedy": sum(a == b for a, b in zip(greedy["before"], greedy["now"])),
            "same_greedy_half": sum(a == b for a, b in zip(greedy["before"], greedy["before, half the batch"])),
            "accuracy": {label: statistics.mean(c) for label, c in correct.items()},
            "mcnemar_p": mcnemar_p(correct["before"], correct["now"]),
            "same_direct": sum(a == b for a, b in zip(direct["before"], direct["now"])),
            "pass1": {label: statistics.mean(metrics["pass@1"] for metrics, _ in run["results"].values())
                      for label, run in runs.items() if label in ("before", "now")},
            "checkpoint": str(checkpoint) if checkpoint else "the base model"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=96)
    parser.add_argument("--tokens", type=int, default=128, help="token budget per answer in part 1")
    parser.add_argument("--checkpoint", default=None, help="adapter evaluated in part 2 (default: newest run's)")
    parser.add_argument("--quick", action="store_true", help="8 problems, 32 tokens, a 4-problem evaluation")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "generation.md"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # progress lines of the evaluation
    from reasoning_lab.model import dtype_name, inference_model, load_base_model, load_tokenizer

    overrides = ["eval.limit=4"] if args.quick else []
    cfg = compose(*overrides)
    cfg.eval.dtype = dtype_name(cfg.eval.dtype)  # auto: as this machine runs it
    tokenizer = load_tokenizer(cfg.model)
    problems, budget = (8, 32) if args.quick else (args.problems, args.tokens)
    model = inference_model(load_base_model(cfg.model), cfg.model.quantization, cfg.eval.dtype,
                            cfg.eval.attn_implementation)
    part1 = bench_paths(cfg, tokenizer, model, problems, budget)
    del model
    checkpoint = Path(args.checkpoint) if args.checkpoint else newest_last_stage()
    part2 = bench_evaluation(cfg, tokenizer, checkpoint)

    limit = part1["limit"][cfg.eval.dtype]["tokens_per_s"]
    now = part1["paths"]["project loop, slot cache (now)"]
    lines = ["# Benchmark 7: generation", "", f"Machine: {machine()}",
             f"Command: python experiments/bench_generation.py{' --quick' if args.quick else ''}"
             + (f" --checkpoint {args.checkpoint}" if args.checkpoint else ""), "",
             f"## The paths: {part1['n']} synthetic GSM8K prompts, greedy, at most {budget} new tokens, base model "
             f"merged into {cfg.eval.dtype}, {part1['batch']} sequences at a time", "",
             f"The decode step's matrix products alone (the model's own shapes at {part1['batch']} rows) allow "
             + ", ".join(f"{name} {v['tokens_per_s']:.0f} tokens/s ({v['gflop_per_s']:.0f} GFLOP/s)"
                         for name, v in part1["limit"].items()) + ".", "",
             "| path | seconds | tokens | tokens/s | vs now | share of the " + cfg.eval.dtype
             + " limit | answers equal to now's |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in part1["paths"].items():
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['tokens']} | {r['tokens_per_s']:.0f} | "
                     f"{now['seconds'] / r['seconds']:.2f}x | {r['tokens_per_s'] / limit:.0%} | "
                     f"{r['same']}/{part1['n']} |")
    lines += ["", "Where the project loop's time goes (torch profiler, one greedy pass, shares of wall time): "
              + ", ".join(f"{name} {share:.0%}" for name, share in part1["split"].items()) + ".", "",
              f"## An evaluation: the default final budget (eval.limit={cfg.eval.limit} a set, k={cfg.eval.k}, "
              f"the pass without the prompt) on {part2['checkpoint']}", "",
              f"| before (the loop at {BEFORE}) | now | ratio | greedy completions equal | direct completions equal "
              "| pass@1 of the samples, before / now |", "|---:|---:|---:|---:|---:|---:|",
              f"| {part2['before_s']:.0f} s | {part2['now_s']:.0f} s | {part2['before_s'] / part2['now_s']:.2f}x | "
              f"{part2['same_greedy']}/{part2['prompts']} | {part2['same_direct']}/{part2['prompts']} | "
              f"{part2['pass1']['before']:.3f} / {part2['pass1']['now']:.3f} |", "",
              f"Greedy accuracy over the {part2['prompts']} problems: before {part2['accuracy']['before']:.3f}, now "
              f"{part2['accuracy']['now']:.3f} (exact McNemar p = {part2['mcnemar_p']:.2f}). The loop at {BEFORE} "
              f"itself, at half the batch size ({cfg.eval.batch_size // 2} sequences), keeps "
              f"{part2['same_greedy_half']}/{part2['prompts']} of its own greedy completions (accuracy "
              f"{part2['accuracy']['before, half the batch']:.3f}): which rows share a matrix product changes the "
              f"bfloat16 results on this CPU, and a near-tie can then flip a greedy token.", ""]
    print("\n".join(lines))
    save_table(lines, args.out)


if __name__ == "__main__":
    main()
