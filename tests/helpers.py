"""What the tests share besides fixtures: composed configs, the tiny model factory, app runs in subprocesses
(offline, in a scratch working directory) and the tiny overrides of those runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from hydra import compose, initialize_config_dir

from reasoning_lab.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = Path(os.environ.get("REASONING_LAB_TEST_DATA", ROOT.parent / "shared" / "data"))

register_configs()


def make_config(*overrides: str):
    """The app's config composed with these overrides (no Hydra run dir involved)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def sft_settings(**values):
    """The settings both SFT stages share (config.SFTSettings), as sft_arguments reads them: a constant learning
    rate, batches of 8, no accumulation, a log line per step, no checkpoints, unless `values` say otherwise."""
    return SimpleNamespace(**{"batch_size": 8, "grad_accum": 1, "learning_rate": 1e-4, "lr_scheduler": "constant",
                              "warmup_ratio": 0.0, "logging_steps": 1, "save_steps": 0, "max_tokens_per_batch": None,
                              "padding_free": False, **values})


def tiny_model(*overrides: str, trainable: bool = True):
    """(config, model, tokenizer) of tiny_random with these overrides: the model factory of the in-process tests."""
    from reasoning_lab.model import load_model, load_tokenizer

    cfg = make_config("model=tiny_random", *overrides)
    return cfg, load_model(cfg.model, trainable=trainable), load_tokenizer(cfg.model)


def tiny_adapter(folder: Path) -> Path:
    """A freshly initialised tiny_random adapter saved as a checkpoint at `folder`."""
    from reasoning_lab.checkpoints import save_adapter

    cfg, model, tokenizer = tiny_model()
    return save_adapter(model, tokenizer, folder, cfg.model)


# the working directory of the tests and of every app they start: nothing is read from or left in the checkout's logs/
WORKDIR = Path(tempfile.mkdtemp(prefix="reasoning_lab_tests_"))
# offline, in this process and in every process it starts: no test reaches the hub
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_API_KEY="")


# whether the running test may start the app: tests/conftest.py sets it from the test's `app` marker, so a test
# that starts the app without the marker fails instead of slipping into `make test-fast`
APP_RUNS = {"allowed": True}


def run_cli(*args: str, timeout: float = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m reasoning_lab ARGS` in a subprocess, as a user runs it (offline: tests never reach the hub),
    from a scratch working directory. Only in a test marked `app`."""
    if not APP_RUNS["allowed"]:
        raise RuntimeError("this test starts the app: mark it @pytest.mark.app (make test-fast leaves those out)")
    return subprocess.run(
        [sys.executable, "-m", "reasoning_lab", *args],
        cwd=WORKDIR, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "WANDB_API_KEY": "", "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def finished(run_dir: Path, result: subprocess.CompletedProcess, stage: str) -> dict:
    """The metrics of `stage` in run_dir, after checking that the app exited 0 and the stage completed."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((run_dir / stage / "metrics.json").read_text())
    assert metrics["stage"] == stage and metrics["status"] == "completed"
    return metrics


def with_overrides(base: list[str], *overrides: str) -> list[str]:
    """`base` with `overrides` in place of the keys they set (one value a key on the command line)."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [a for a in base if a.split("=", 1)[0] not in keys] + list(overrides)


# The app runs of the tests: `debug=tiny` (conf/debug/tiny.yaml: each stage at its smallest, on tiny_random), or the
# debug preset that adds what a family of tests reads (conf/debug/tiny_*.yaml), with the stage to run.
# a tiny four-stage curriculum (curriculum=stages) of 4 steps a stage, two evaluation sets (test_curriculum)
TINY_CURRICULUM = ["debug=tiny_curriculum", "stage=curriculum", "curriculum=stages", "logger=none"]
# the smallest curriculum job, one step a stage, for multiruns and presets (test_scale)
TINY_SWEEP = ["debug=tiny_sweep"]
# a two-step RL stage, a held-out evaluation after each step (test_rl)
TINY_RL = ["debug=tiny_rl", "stage=rl"]
# stage=answer with k=4 short paths (test_answer_stage)
TINY_ANSWER = ["debug=tiny_answer", "stage=answer", "logger=none"]
# a tiny_random warm-up that only trains (no evaluation); the kill, full-disk, SIGTERM and two-process tests add steps
TINY_WARMUP_TRAINING = ["debug=tiny_training", "stage=warmup"]
# a two-step warm-up with an evaluation: shared by the tests that read its outputs or start from its checkpoint
TINY_WARMUP = ["debug=tiny_warmup", "stage=warmup"]
