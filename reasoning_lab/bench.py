"""Benchmark helpers shared by the scripts under experiments/."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


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
