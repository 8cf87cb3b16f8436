"""Which process of a distributed job (accelerate launch, torchrun) writes files and logs to W&B: rank 0."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """Rank 0 of an `accelerate launch` (or torchrun) job, or a plain single process: the one that writes
    files and logs to W&B."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    """A barrier across the processes of a distributed job (nothing in a single process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()
