"""`make bench` (python experiments/bench.py): the performance figures of the project on this machine.

Every figure is a median over repeats after a warm-up, and every comparison is a ratio of two paths
measured side by side in this process, on the embedded model (SmolLM2-135M-Instruct with LoRA):

1. self-consistency decoding: batched k samples (reasoning_lab.decoding) vs one `generate` per sample
2. SFT throughput: loss-bearing tokens/s of the batches our stages' Trainers draw (padded to the batch's
   longest example, before and after length grouping; by a token budget, padded or padding-free), with the loss
   as their Trainer takes it (TRL's fused head: the output layer only at loss-bearing positions), vs the design
   sketch (every example padded to 256, longer ones cut, the model's own loss over the full logits)
3. efficiency: model FLOPs/s of a LoRA training step over the measured fp32 matrix-product peak
4. RL step: seconds per step and the generate share for grpo, rloo and ppo (experiments/bench_rl.py
   measures the same with more steps)
5. memory: peak resident memory of `stage=warmup` with quantization none vs 8bit
6. whole run: the wall time of the newest default `stage=curriculum` under logs/ (a 12-minute run does
   not fit this benchmark's budget, so it is read from that run's metrics, with its path)
7. generation (experiments/bench_generation.py, run by `make bench` after this script): the generation paths
   (transformers' generate, its continuous batching, the project's loop before and now) against the limit that
   the decode step's matrix products set on this CPU (`decode_matmul_limit`), and an evaluation before and now

Writes experiments/results/benchmarks.md with the machine description.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from reasoning_lab.checkpoints import final_adapter

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """CPU model, torch threads, torch version and GPU, for the header of every result table."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"CPU {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, GPU {gpu}, "
            f"Python {platform.python_version()}")


def save_table(lines: list[str], out: str | Path) -> None:
    """Print a result table and write it to `out`."""
    text = "\n".join(lines)
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from reasoning_lab.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def float32_sdpa(model_cfg):
    """`model_cfg` as the CPU default was before bfloat16 training: float32 weights, sdpa attention."""
    return OmegaConf.merge(model_cfg, {"dtype": "float32", "attn_implementation": "sdpa"})


def median_time(fn, repeats: int, warm_up=None) -> float:
    (warm_up or fn)()  # allocator, kernels, caches
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------
# 1. self-consistency decoding
# ------------------------------------------------------------------------------------------------

@torch.no_grad()
def sketch_loop(model, tokenizer, prompts, k: int, max_new_tokens: int, temperature=0.7, top_p=0.95) -> int:
    """The design sketch: one `generate` call per sample, per problem. Returns the tokens generated."""
    tokens = 0
    for prompt in prompts:
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        for _ in range(k):
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                                 top_p=top_p, pad_token_id=tokenizer.pad_token_id)
            new = out[0, ids["input_ids"].shape[1]:].tolist()
            tokens += new.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in new else len(new)
    return tokens


def batched_sampling(model, tokenizer, prompts, k: int, max_new_tokens: int, temperature=0.7, top_p=0.95,
                     batch_size: int | None = None) -> int:
    """Ours (reasoning_lab.decoding.generate): k samples per prompt from one call, problems batched."""
    from reasoning_lab.decoding import generate

    out = generate(model, tokenizer, prompts, max_new_tokens, k=k, do_sample=True, temperature=temperature,
                   top_p=top_p, batch_size=batch_size or len(prompts))
    return sum(c.tokens for group in out for c in group)


def bench_self_consistency(model, tokenizer, prompts, k: int, max_new_tokens: int, repeats: int) -> dict:
    torch.manual_seed(0)
    sketch_s = median_time(lambda: sketch_loop(model, tokenizer, prompts, k, max_new_tokens), repeats,
                           warm_up=lambda: sketch_loop(model, tokenizer, prompts[:1], 2, 8))
    batched_s = median_time(lambda: batched_sampling(model, tokenizer, prompts, k, max_new_tokens), repeats,
                            warm_up=lambda: batched_sampling(model, tokenizer, prompts[:1], 2, 8))
    return {"sketch_s": sketch_s, "batched_s": batched_s, "ratio": sketch_s / batched_s}


# ------------------------------------------------------------------------------------------------
# 2 and 3. SFT throughput and model FLOPs utilisation
# ------------------------------------------------------------------------------------------------

def gsm8k_examples(cfg, tokenizer, n: int):
    """`n` GSM8K training examples in our chat format, tokenized whole (with their difficulty scores)."""
    from reasoning_lab.data import format_example, load_problems, tokenize

    problems = load_problems(cfg.data, "gsm8k", "train")
    problems = random.Random(0).sample(problems, min(n, len(problems)))
    examples = [{**format_example(p, True, cfg.data.system_prompt), "source": p.source} for p in problems]
    dataset, _ = tokenize(examples, tokenizer, max_length=100_000, overflow="drop")
    return dataset, [p.difficulty for p in problems]


def sketch_batches(dataset, batch_size: int, pad: int, width: int = 256):
    """The design sketch's batches: random order, every example padded to `width` and cut beyond it."""
    order = list(range(len(dataset)))
    random.Random(0).shuffle(order)
    out, truncated = [], 0
    for start in range(0, len(order) - batch_size + 1, batch_size):
        input_ids = torch.full((batch_size, width), pad)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        labels = torch.full((batch_size, width), -100)
        for row, i in enumerate(order[start:start + batch_size]):
            ids, mask = dataset[i]["input_ids"], dataset[i]["completion_mask"]
            truncated += len(ids) > width
            seq, mask = ids[:width], mask[:width]
            input_ids[row, :len(seq)] = torch.tensor(seq)
            attention[row, :len(seq)] = 1
            labels[row, :len(seq)] = torch.tensor([t if m else -100 for t, m in zip(seq, mask)])
        out.append({"input_ids": input_ids, "attention_mask": attention, "labels": labels})
    return out, truncated


def stage_batches(model, tokenizer, dataset, n: int | None, batch_size: int, *, group_by_length=False, sampler=None,
                  max_tokens: int | None = None, padding_free: bool = False):
    """The first `n` batches (None: one epoch) that a stage's Trainer draws (our sft_arguments, TRL's collator, the
    sampler; with `max_tokens`, the warm-up's token-budget batches, reasoning_lab.sft.token_batches), as model
    inputs: input_ids, labels and attention_mask, or position_ids when padding-free."""
    from reasoning_lab.sft import sft_arguments, token_batches
    from reasoning_lab.trl_trainers import OrderedSFTTrainer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        settings = SimpleNamespace(batch_size=batch_size, grad_accum=1, learning_rate=1e-5, lr_scheduler="constant",
                                   warmup_ratio=0.0, logging_steps=1, save_steps=0, max_tokens_per_batch=max_tokens,
                                   padding_free=padding_free)
        batches = token_batches(settings, [len(ids) for ids in dataset["input_ids"]], seed=0)
        n = n or (len(batches) if batches is not None else len(dataset) // batch_size)
        args = sft_arguments(Path(tmp), settings, max_steps=n, seed=0, report_to="none",
                             group_by_length=group_by_length)
        trainer = OrderedSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                    sampler=sampler, batches=batches)
        keys = ("input_ids", "labels", "position_ids" if padding_free else "attention_mask")
        return [{k: b[k] for k in keys} for b, _ in zip(trainer.get_train_dataloader(), range(n))]


def trainer_loss(model, batch) -> torch.Tensor:
    """The loss as TRL's SFTTrainer.compute_loss takes it: the fused head its constructor puts on the model (the
    output head and the log-softmax only at loss-bearing positions, in tiles), the mean over those tokens."""
    outputs = model(**batch, fused_lm_head=True)
    return -outputs.log_probs.sum() / outputs.label_mask.sum().clamp(min=1)


def bench_sft(model, batches, fused: bool = False) -> dict:
    """Loss-bearing and real tokens per second of LoRA training steps (forward, backward, AdamW) on `batches`
    (model inputs; without a KV cache, as TRL's SFTTrainer calls the model). `fused`: TRL's fused head (`trainer_loss`,
    the stages' loss on a GPU; the model must have passed through an SFTTrainer), else the model's own loss over the
    full logits (the design sketch's, and the stages' on the CPU)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    model.train()
    times, loss_tokens, real_tokens = [], 0, 0
    for batch in batches:
        began = time.perf_counter()
        (trainer_loss(model, batch) if fused else model(**batch, use_cache=False).loss).backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - began)
        loss_tokens += int((batch["labels"][:, 1:] != -100).sum())
        real_tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    seconds = sum(times)
    return {"loss_tokens_per_s": loss_tokens / seconds, "tokens_per_s": real_tokens / seconds,
            "step_s": statistics.median(times)}


def matmul_peak(dtype: torch.dtype = torch.float32, size: int = 1024, repeats: int = 20) -> float:
    """Measured dense matrix-product FLOP/s of this machine in `dtype` (torch.mm, all threads)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = median_time(lambda: [torch.mm(a, b) for _ in range(4)], repeats) / 4
    return 2 * size**3 / seconds


def decode_shapes(model) -> list[tuple[int, int]]:
    """(in, out) of every matrix a decode step multiplies by, once each: the linear layers and the output head."""
    shapes = [(m.in_features, m.out_features) for name, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and "lora_" not in name]
    head = model.get_output_embeddings()
    if head is not None and not isinstance(head, torch.nn.Linear):
        shapes.append(tuple(head.weight.shape[::-1]))
    return shapes


def decode_matmul_limit(shapes: list[tuple[int, int]], batch: int, dtype: torch.dtype, repeats: int = 5) -> dict:
    """The tokens/s that a decode step's matrix products alone allow at `batch` sequences: each distinct shape
    timed as one [batch, in] x [in, out] product in `dtype` (the model's own shapes, not a square probe), summed
    over the step. Attention over the KV cache, sampling and Python are not counted: a ceiling, not a forecast."""
    step = 0.0
    for (fan_in, fan_out), count in sorted(Counter(shapes).items()):
        x, w = torch.randn(batch, fan_in, dtype=dtype), torch.randn(fan_out, fan_in, dtype=dtype)
        step += count * median_time(lambda x=x, w=w: [torch.nn.functional.linear(x, w) for _ in range(20)], repeats) / 20
    flops = 2 * batch * sum(i * o for i, o in shapes)
    return {"tokens_per_s": batch / step, "gflop_per_s": flops / step / 1e9, "step_s": step}


def training_flops_per_token(model) -> float:
    """Forward 2N + input-gradient 2N per token for the frozen base's matrix weights, 6N for the adapters."""
    frozen = sum(m.weight.numel() for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lora_" not in name and not m.weight.requires_grad)
    lm_head = model.get_output_embeddings()
    if lm_head is not None and not isinstance(lm_head, torch.nn.Linear):
        frozen += lm_head.weight.numel()
    adapters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return 4 * frozen + 6 * adapters


# ------------------------------------------------------------------------------------------------
# 5. memory
# ------------------------------------------------------------------------------------------------

def peak_rss(command: list[str]) -> tuple[float, int]:
    """Peak resident memory (GiB) of a command and its children, polled every 0.1 s; and its exit code."""
    import psutil

    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**__import__("os").environ, "WANDB_API_KEY": ""})
    peak, parent = 0, psutil.Process(process.pid)
    stop = threading.Event()

    def poll():
        nonlocal peak
        while not stop.is_set():
            try:
                rss = parent.memory_info().rss + sum(c.memory_info().rss for c in parent.children(recursive=True))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    process.wait()
    stop.set()
    thread.join()
    return peak / 2**30, process.returncode


# ------------------------------------------------------------------------------------------------
# 4. RL step (the stage itself, in this process)
# ------------------------------------------------------------------------------------------------

def bench_rl(algorithm: str, steps: int, prompts: int, generations: int, tokens: int, init_from: str | None,
             warm_up: bool = True, overrides: tuple[str, ...] = ()) -> dict:
    """Median seconds per step of `steps` RL steps (after one warm-up step when `warm_up`) and the generate share,
    with the RL stage's settings changed by `overrides` (e.g. rl.continuous_batching=true)."""
    from reasoning_lab.stages import rl

    settings = [f"rl={algorithm}", "stage=rl", f"rl.max_steps={steps + warm_up}", f"rl.prompts_per_step={prompts}",
                 f"rl.num_generations={generations}", f"rl.max_completion_length={tokens}", "rl.num_iterations=1",
                 f"rl.ppo.minibatch_size={prompts * generations}", "rl.eval_every=0", "rl.eval_sets=[]", "logger=none",
                 *overrides]
    if init_from:
        settings.append(f"checkpoint.init_from={init_from}")
    with tempfile.TemporaryDirectory() as run_dir:
        train = rl.run(compose(*settings), run_dir)["train"]
    key = "step_seconds" if algorithm == "ppo" else "step_time"
    seconds = [float(h[key]) for h in train["history"] if key in h][int(warm_up):]
    tokens = [float(h.get("completions/mean_length", h.get("completion_length", 0))) for h in train["history"]]
    return {"step_s": statistics.median(seconds), "generate_share": train["generate_share"],
            "completion_tokens": statistics.mean(tokens)}


def newest_last_stage() -> Path | None:
    """The final adapter of the newest finished curriculum run under logs/ (what its metrics.json names), or None."""
    return final_adapter(ROOT / "logs", "curriculum") if (ROOT / "logs").exists() else None


def newest_curriculum_run() -> tuple[float, str] | None:
    found = []
    for path in (ROOT / "logs" / "curriculum" / "runs").glob("*/curriculum/metrics.json"):
        metrics = json.loads(path.read_text())
        overrides = (path.parents[1] / ".hydra" / "overrides.yaml").read_text().split()
        if metrics.get("status") == "completed" and overrides in ([], ["[]"], ["-", "stage=curriculum"]):
            found.append((path.stat().st_mtime, metrics["wall_seconds"], str(path.relative_to(ROOT))))
    return max(found)[1:] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description="reasoning_lab benchmarks")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer problems and steps (a smoke run)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "benchmarks.md"))
    parser.add_argument("--only", default="1,2,3,4,5,6", help="which benchmarks, e.g. 2,3 (SFT throughput and MFU)")
    args = parser.parse_args()
    quick, only = args.quick, {int(n) for n in args.only.split(",")}

    from reasoning_lab.model import load_model, load_tokenizer

    cfg = compose("data=real", f"data.root={ROOT.parent / 'shared' / 'data'}")
    tokenizer = load_tokenizer(cfg.model)
    began = time.perf_counter()
    rows = []

    def row(name, baseline, ours, ratio, target, met, note=""):
        rows.append((name, baseline, ours, ratio, target, "met" if met else "not met", note))
        print(" | ".join(str(x) for x in rows[-1]), flush=True)

    if 1 in only:
        # 1. self-consistency
        model = load_model(cfg.model, trainable=False)
        from reasoning_lab.data import load_problems
        from reasoning_lab.problem import chat_prompt

        questions = [p.question for p in load_problems(cfg.data, "gsm8k", "test")[: 1 if quick else 2]]
        prompts = [chat_prompt(q, cfg.data.system_prompt) for q in questions]
        sc = bench_self_consistency(model, tokenizer, prompts, k=8, max_new_tokens=32 if quick else 64,
                                    repeats=1 if quick else args.repeats)
        row("1. self-consistency, k=8", f"{sc['sketch_s']:.1f} s", f"{sc['batched_s']:.1f} s", f"{sc['ratio']:.2f}x",
            ">= 3x (CPU)", sc["ratio"] >= 3, f"{len(prompts)} GSM8K questions x 8 samples x {32 if quick else 64} tokens")

    if 2 in only or 3 in only:
        # 2. SFT throughput (the sketch vs the batches our stages draw, before and after length grouping), 3. efficiency
        from reasoning_lab.curriculum import CurriculumSampler

        # Every warm-up variant trains one whole epoch of the same GSM8K examples, so only the batching differs;
        # the curriculum variants draw the same examples per window of batches (so window 1 vs window w differ
        # only in how those examples are batched).
        model = load_model(cfg.model)
        dataset, difficulties = gsm8k_examples(cfg, tokenizer, 48 if quick else 80)
        batch, curriculum_steps = 8, 8 if quick else 12
        sketch, truncated = sketch_batches(dataset, batch, tokenizer.pad_token_id)
        bench_sft(model, sketch[:1])  # warm-up: allocator, kernels
        base = bench_sft(model, sketch)["loss_tokens_per_s"]
        window = cfg.curriculum.length_window

        def curriculum(length_window):
            return CurriculumSampler(difficulties, 0, batch, curriculum_steps, "root", cfg.curriculum.c0, 0.0, 0,
                                     lengths=[len(x) for x in dataset["input_ids"]], length_window=length_window)

        budget = batch * 256  # the sketch's tokens per batch: the same memory a step
        variants = {
            "warm-up, random order (before)": (len(sketch), dict(group_by_length=False)),
            "warm-up, grouped by length (now the default)": (len(sketch), dict(group_by_length=True)),
            f"warm-up, max_tokens_per_batch={budget}": (None, dict(max_tokens=budget)),
            f"warm-up, max_tokens_per_batch={budget}, padding_free": (None, dict(max_tokens=budget, padding_free=True)),
            "curriculum, per-step batches (before)": (curriculum_steps, dict(sampler=curriculum(1))),
            f"curriculum, length_window={window} (now the default)": (curriculum_steps, dict(sampler=curriculum(window))),
        }
        # the loss as the stages take it (OrderedSFTTrainer.compute_loss): TRL's fused head on a GPU, the model's own
        # over the full logits on the CPU
        stages_fused = torch.cuda.is_available()
        results, drawn = {}, {}
        for label, (n, how) in variants.items():
            drawn[label] = stage_batches(model, tokenizer, dataset, n, batch, **how)
            results[label] = bench_sft(model, drawn[label], fused=stages_fused)
            ratio = results[label]["loss_tokens_per_s"] / base
            size = "of 8" if "max_tokens" not in how else f"of up to {budget} tokens, one epoch"
            row(f"2. SFT loss-bearing tokens/s, {label}", f"{base:.0f}", f"{results[label]['loss_tokens_per_s']:.0f}",
                f"{ratio:.2f}x", ">= 1.5x, 0 truncated", ratio >= 1.5,
                f"{len(drawn[label])} batches {size}; the sketch (padded to 256) truncated {truncated} of {len(dataset)} "
                "examples, ours none")
        # the same grouped batches with the other loss path (on the CPU: TRL's fused head, the stages' path before)
        grouped = "warm-up, grouped by length (now the default)"
        other = bench_sft(model, drawn[grouped], fused=not stages_fused)
        plain = results[grouped]
        paths = ("TRL's fused head", "the model's own loss (full logits)")
        row(f"2. SFT loss-bearing tokens/s, grouped by length, {paths[stages_fused]}", f"{base:.0f}",
            f"{other['loss_tokens_per_s']:.0f}", f"{other['loss_tokens_per_s'] / base:.2f}x", "recorded", True,
            f"the rows above take the loss as the stages do here: {paths[not stages_fused]} "
            f"(OrderedSFTTrainer.compute_loss)")
        # the same grouped batches on the model in float32 with sdpa attention (the CPU default before)
        float32 = load_model(float32_sdpa(cfg.model))
        before = bench_sft(float32, drawn[grouped])["step_s"]
        del float32
        now = plain["step_s"]
        row("2. SFT step time, precision", f"{before:.2f} s (float32, sdpa)",
            f"{now:.2f} s ({cfg.model.dtype}, {cfg.model.attn_implementation})", f"{before / now:.2f}x", "recorded", True,
            f"{len(drawn[grouped])} length-grouped batches of 8; LoRA adapters in float32 either way")
        peak = matmul_peak(model.dtype)
        flops = training_flops_per_token(model)
        best = max(r["tokens_per_s"] for r in results.values())
        mfu = best * flops / peak
        row("3. MFU of a LoRA training step", f"peak {peak / 1e9:.0f} GFLOP/s ({str(model.dtype)[6:]} mm)",
            f"{best * flops / 1e9:.1f} GFLOP/s", f"{100 * mfu:.1f}%", ">= 30%", mfu >= 0.30,
            f"{flops / 1e6:.0f} MFLOP per token (4N frozen + 6N adapters); batch 8, "
            f"{statistics.mean(len(x) for x in dataset['input_ids']):.0f} tokens per example on average")
        del model

    if 4 in only:
        # 4. RL step
        init = newest_last_stage()
        init_from = str(init) if init else None
        rl_steps = 1 if quick else 2
        # one warm-up step for the process (allocator, kernels), then every step of every algorithm counts
        timings = {a: bench_rl(a, rl_steps, 2 if quick else 4, 4, 32 if quick else 64, init_from, warm_up=a == "grpo")
                   for a in ("grpo", "rloo", "ppo")}
        for algorithm, t in timings.items():
            row(f"4. RL step, {algorithm}", f"grpo {timings['grpo']['step_s']:.1f} s", f"{t['step_s']:.1f} s",
                f"{t['step_s'] / timings['grpo']['step_s']:.2f}x", "recorded", True,
                f"generating {100 * t['generate_share']:.0f}%, updating {100 * (1 - t['generate_share']):.0f}%")

    if 5 in only:
        # 5. memory
        warm = [sys.executable, "-m", "reasoning_lab", "stage=warmup", "warmup.max_steps=2", "warmup.eval_steps=0",
                "warmup.eval_sets=[]", "logger=none"]
        with tempfile.TemporaryDirectory() as tmp:  # one after the other: two at once oversubscribe the cores
            none_gib, rc1 = peak_rss([*warm, "model.quantization=none", f"hydra.run.dir={tmp}/none"])
            q8_gib, rc2 = peak_rss([*warm, "model.quantization=8bit", f"hydra.run.dir={tmp}/8bit"])
        row("5. peak RSS of stage=warmup", f"none {none_gib:.2f} GiB", f"8bit {q8_gib:.2f} GiB",
            f"{q8_gib / none_gib:.2f}x", "recorded", rc1 == rc2 == 0,
            "measured on the CPU; the saving 8-bit is for is GPU memory, not measured here (no GPU)")

    if 6 in only:
        # 6. whole run
        whole = newest_curriculum_run()
        if whole:
            row("6. python -m reasoning_lab stage=curriculum", "-", f"{whole[0] / 60:.1f} min", "-", "<= 15 min",
                whole[0] <= 900, f"from {whole[1]}")
        else:
            row("6. python -m reasoning_lab stage=curriculum", "-", "not run", "-", "<= 15 min", False,
                "no completed default curriculum run under logs/; run it to record this")

    total = time.perf_counter() - began
    lines = ["# Benchmarks", "", f"Machine: {machine()}",
             f"Command: python experiments/bench.py{' --quick' if quick else ''}"
             f"{'' if args.only == '1,2,3,4,5,6' else ' --only ' + args.only} (took {total / 60:.1f} min)", "",
             "| benchmark | baseline | ours | ratio | target | result | notes |", "|---|---|---|---|---|---|---|",
             *["| " + " | ".join(str(x) for x in r) + " |" for r in rows], ""]
    save_table(lines, args.out)


if __name__ == "__main__":
    main()
