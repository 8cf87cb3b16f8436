"""Benchmark 8: `torch.compile` on the decode step, against the loop as it runs (issue 48, point 2).

    python experiments/bench_compile.py [--problems 96] [--tokens 128]

Greedy answers to the same synthetic GSM8K prompts from the base model merged into `eval.dtype`, `eval.batch_size`
rows at a time, by `reasoning_lab.decoding.generate` as it is (eager; each decode step attends over the longest
row's columns, and the cache shrinks once half the rows are done) and by the same loop with its decode step
compiled (`torch.compile(dynamic=False)`: fixed shapes, so every step attends over all of the cache's columns and
the rows never shrink; a shape change would compile again). The compiled path is run twice: the first run pays the
compilation, the second is what a process that generates again would see. Prints the table and writes
experiments/results/compile.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import torch
from bench import compose, machine, save_table

ROOT = Path(__file__).resolve().parents[1]


def compiled_generate(model, tokenizer, prompts, budget: int, batch: int):
    """`decoding.generate` with a compiled decode step on fixed shapes (all columns, no shrinking)."""
    from reasoning_lab import decoding

    forward = torch.compile(model.forward, dynamic=False)

    def step_mask(cache):
        device = cache.layers[0].keys.device
        at = cache.lengths.to(device)
        for layer in cache.layers:
            layer.at, layer.width = at, cache.columns
        return (torch.arange(cache.columns, device=device)[None, :] <= at[:, None])[:, None, None, :]

    class Compiled(decoding.Decoder):
        def step(self):
            real = self.model
            self.model = _Forward(real, forward)
            try:
                return super().step()
            finally:
                self.model = real

    class _Forward:
        """The model for `Decoder.step`'s one call: its forward compiled; the rest (config, dtype) the model's."""

        def __init__(self, model, fn):
            self._model, self._fn = model, fn

        def __call__(self, **kwargs):
            return self._fn(**kwargs)

        def __getattr__(self, name):
            return getattr(self._model, name)

    with mock.patch.object(decoding.SlotCache, "step_mask", step_mask), \
            mock.patch.object(decoding.Decoder, "shrink", lambda self: None), \
            mock.patch.object(decoding, "Decoder", Compiled):
        out = decoding.generate(model, tokenizer, prompts, budget, batch_size=batch)
    return [(c.tokens, c.text) for (c,) in out], forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=96)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "compile.md"))
    args = parser.parse_args()
    from reasoning_lab import decoding
    from reasoning_lab.data import source_rows
    from reasoning_lab.model import dtype_name, inference_model, load_base_model, load_tokenizer
    from reasoning_lab.problem import chat_prompt

    cfg = compose()
    dtype = dtype_name(cfg.eval.dtype)
    tokenizer = load_tokenizer(cfg.model)
    model = inference_model(load_base_model(cfg.model), cfg.model.quantization, dtype, cfg.eval.attn_implementation)
    rows = source_rows("synthetic_gsm8k", "test", cfg.data)[: args.problems]
    prompts = [chat_prompt(p.question, cfg.data.system_prompt) for p in rows]
    batch = cfg.eval.batch_size
    decoding.generate(model, tokenizer, prompts[:4], 8, batch_size=batch)  # warm-up: allocator, kernels

    results = {}
    began = time.perf_counter()
    eager = [(c.tokens, c.text) for (c,) in decoding.generate(model, tokenizer, prompts, args.tokens, batch_size=batch)]
    results["eager (the loop as it runs)"] = (time.perf_counter() - began, eager)
    print(f"eager: {results['eager (the loop as it runs)'][0]:.1f} s", flush=True)
    for run in ("compiled, first run (compiles)", "compiled, second run"):
        began = time.perf_counter()
        out, _ = compiled_generate(model, tokenizer, prompts, args.tokens, batch)
        results[run] = (time.perf_counter() - began, out)
        print(f"{run}: {results[run][0]:.1f} s", flush=True)

    base = results["eager (the loop as it runs)"][0]
    table = ["| path | seconds | tokens | tokens/s | x eager | answers equal to eager's |", "|---|---:|---:|---:|---:|---:|"]
    for name, (seconds, out) in results.items():
        tokens = sum(n for n, _ in out)
        same = sum(text == mine for (_, text), (_, mine) in zip(out, eager))
        table.append(f"| {name} | {seconds:.1f} | {tokens} | {tokens / seconds:.0f} | {base / seconds:.2f} | "
                     f"{same}/{len(out)} |")
    lines = ["# Benchmark 8: torch.compile on the decode step", "", f"Machine: {machine()}",
             "Command: python experiments/bench_compile.py" + (
                 f" --problems {args.problems}" if args.problems != 96 else "")
             + (f" --tokens {args.tokens}" if args.tokens != 128 else ""), "",
             f"{len(prompts)} synthetic GSM8K prompts, greedy, at most {args.tokens} new tokens, base model merged "
             f"into {dtype}, {batch} rows at a time, torch {torch.__version__}.", ""]
    save_table(lines + table, args.out)


if __name__ == "__main__":
    main()
