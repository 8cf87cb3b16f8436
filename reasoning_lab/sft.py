"""Supervised fine-tuning with TRL, shared by the warm-up and curriculum stages.

- `sft_arguments`: TRL's SFTConfig from our settings (loss on completions only; lengths were already
  handled, and counted, by reasoning_lab.data.tokenize).
- `OrderedSFTTrainer`: SFTTrainer that draws its batches from a given sampler (the curriculum's).
Its checkpoints are marked complete by reasoning_lab.checkpoints (`MarkComplete`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from trl import SFTConfig, SFTTrainer


def sft_arguments(output_dir: Path, *, max_steps: int, batch_size: int, grad_accum: int, learning_rate: float,
                  lr_scheduler: str, warmup_ratio: float, logging_steps: int, seed: int, report_to: str,
                  num_epochs: float = 1.0, eval_steps: int = 0, save_steps: int = 0,
                  eval_on_start: bool = False, group_by_length: bool = False) -> SFTConfig:
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=max_steps,
        num_train_epochs=num_epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        # batches of similar lengths pad less (make bench, benchmark 2); order stays random across batches
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        gradient_accumulation_steps=grad_accum,
        learning_rate=learning_rate,
        lr_scheduler_type=lr_scheduler,
        warmup_steps=warmup_ratio,  # a float below 1 is a share of the steps
        logging_steps=logging_steps,
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps or None,
        eval_on_start=eval_on_start,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        completion_only_loss=True,  # loss on the answer tokens only
        max_length=None,  # lengths are handled (and counted) by reasoning_lab.data.tokenize
        report_to=report_to,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),  # mixed precision on GPUs only
    )


class OrderedSFTTrainer(SFTTrainer):
    """SFTTrainer whose training batches follow `sampler` (e.g. reasoning_lab.curriculum.CurriculumSampler)."""

    def __init__(self, *args, sampler=None, **kwargs):
        self.ordered_sampler = sampler
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        return self.ordered_sampler or super()._get_train_sampler(train_dataset)


