"""Supervised fine-tuning with TRL, shared by the warm-up and curriculum stages.

- `sft_arguments`: TRL's SFTConfig from our settings (loss on completions only; lengths were already
  handled, and counted, by reasoning_lab.data.tokenize; padding-free batches with `*.padding_free`).
- `token_batches`: the warm-up's batches under `*.max_tokens_per_batch` (reasoning_lab.batching), None without.
- `batch_token_budget`: that setting, with 0 resolved on a GPU by `gpu_budget` (two probe steps' peak memory).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from trl import SFTConfig

from reasoning_lab.batching import LengthBatches, probed_budget
from reasoning_lab.model import liger_kernels

log = logging.getLogger(__name__)


def sft_arguments(output_dir: Path, settings, *, max_steps: int, seed: int, report_to: str,
                  learning_rate: float | None = None, num_epochs: float = 1.0, eval_steps: int = 0,
                  eval_on_start: bool = False, group_by_length: bool = False) -> SFTConfig:
    """TRL's SFTConfig from `settings`, what both SFT stages share (reasoning_lab.config.SFTSettings: batch
    size, accumulation, learning rate and schedule, logging and save steps), and what each decides per run
    (`learning_rate` replaces the settings' one, e.g. for the curriculum's extension rounds)."""
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=max_steps,
        num_train_epochs=num_epochs,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        # batches of similar lengths pad less (make bench, benchmark 2); order stays random across batches
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.learning_rate if learning_rate is None else learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a share of the steps
        logging_steps=settings.logging_steps,
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps or None,
        eval_on_start=eval_on_start,
        save_strategy="steps" if settings.save_steps else "no",
        save_steps=settings.save_steps or 500,
        completion_only_loss=True,  # loss on the answer tokens only
        padding_free=settings.padding_free,  # one row a batch, position ids restarting at each example
        max_length=None,  # lengths are handled (and counted) by reasoning_lab.data.tokenize
        report_to=report_to,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),  # mixed precision on GPUs only
        use_liger_kernel=liger_kernels(),  # on a GPU with liger-kernel installed
    )


def token_batches(settings, lengths: list[int], seed: int, model=None):
    """Batches within the token budget (`batch_token_budget`), similar lengths together (None: count examples)."""
    budget = batch_token_budget(settings, lengths, model)
    return None if budget is None else LengthBatches(lengths, budget, settings.padding_free, seed)


def batch_token_budget(settings, lengths: list[int], model=None) -> int | None:
    """`settings.max_tokens_per_batch`; 0: the budget that fills this GPU (`gpu_budget`)."""
    if settings.max_tokens_per_batch != 0:
        return settings.max_tokens_per_batch
    return gpu_budget(model, max(lengths))


def gpu_budget(model, length: int, share: float = 0.85) -> int:
    """Tokens a batch may hold so that a training step's peak memory reaches `share` of this GPU: one forward and
    backward of random tokens in rows of `length` (the longest example) at two budgets, their peaks on a line."""
    vocab, device = model.get_input_embeddings().weight.shape[0], model.get_input_embeddings().weight.device

    def peak_at(tokens: int) -> float:
        ids = torch.randint(0, vocab, (max(1, tokens // length), length), device=device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        model.train()
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        model.zero_grad(set_to_none=True)
        return torch.cuda.max_memory_allocated(device)

    low = 2 * length
    budget, measured = probed_budget(peak_at, low, 4 * low, torch.cuda.get_device_properties(device).total_memory,
                                     share)
    gib = {tokens: f"{peak / 2**30:.1f} GiB" for tokens, peak in measured["peaks"].items()}
    log.info("max_tokens_per_batch=0: a step's peak memory %s (tokens: peak) -> %d tokens a batch, %.0f%% of %.1f GiB",
             gib, budget, 100 * share, measured["capacity"] / 2**30)
    return budget
