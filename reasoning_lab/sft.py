"""Supervised fine-tuning with TRL, shared by the warm-up and curriculum stages.

- `sft_arguments`: TRL's SFTConfig from our settings (loss on completions only; lengths were already
  handled, and counted, by reasoning_lab.data.tokenize).
- `OrderedSFTTrainer`: SFTTrainer that draws its batches from a given sampler (the curriculum's).
- `MarkComplete` + `latest_complete_checkpoint`: the Trainer writes `checkpoint-N/` file by file; a
  marker written after the save finished tells a complete checkpoint from a half-written one.
- `stop_if_asked`: the kill tests' hook, a process that stops itself right after a given checkpoint.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

COMPLETE = "reasoning_lab.complete"


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


class MarkComplete(TrainerCallback):
    """Marks each trainer checkpoint complete once the Trainer has written all of it."""

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.exists() and state.is_world_process_zero:
            (folder / COMPLETE).write_text(str(state.global_step))
            stop_if_asked(folder)


def stop_if_asked(saved: Path) -> None:
    """With REASONING_LAB_STOP_AFTER=<path suffix> set, the process sends itself REASONING_LAB_STOP_SIGNAL (TERM,
    or KILL) right after the checkpoint at that path is complete (PPO's state at step N: `ppo_state/step-N`): the
    kill tests stop a run at a known point."""
    target = os.environ.get("REASONING_LAB_STOP_AFTER")
    if target and Path(saved).as_posix().endswith(target):
        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("REASONING_LAB_STOP_SIGNAL", "TERM")))


def latest_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` under `output_dir` that was written completely."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if (p / COMPLETE).exists()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None
