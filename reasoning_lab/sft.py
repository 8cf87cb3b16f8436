"""Supervised fine-tuning with TRL, shared by the warm-up and curriculum stages.

- `sft_arguments`: TRL's SFTConfig from our settings (loss on completions only; lengths were already
  handled, and counted, by reasoning_lab.data.tokenize; padding-free batches with `*.padding_free`).
- `token_batches`: the warm-up's batches under `*.max_tokens_per_batch` (reasoning_lab.batching), None without.
- `MarkComplete`: the Trainer writes `checkpoint-N/` file by file; a marker written after the save finished
  (reasoning_lab.checkpoints.mark_complete) tells a complete checkpoint from a half-written one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import TrainerCallback
from trl import SFTConfig

from reasoning_lab.batching import LengthBatches
from reasoning_lab.checkpoints import mark_complete
from reasoning_lab.model import liger_kernels


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


def token_batches(settings, lengths: list[int], seed: int):
    """Batches within `settings.max_tokens_per_batch` tokens, similar lengths together (None: count examples)."""
    if settings.max_tokens_per_batch is None:
        return None
    return LengthBatches(lengths, settings.max_tokens_per_batch, settings.padding_free, seed)


class MarkComplete(TrainerCallback):
    """Marks each trainer checkpoint complete once the Trainer has written all of it."""

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.exists() and state.is_world_process_zero:
            mark_complete(folder, state.global_step)
