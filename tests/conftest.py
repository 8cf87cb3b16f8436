"""Shared fixtures: composed configs, the tiny model factory, the shared tiny warm-up run, the real benchmark
files in ../shared/data, app runs in subprocesses (offline, in a scratch working directory), test order."""

from __future__ import annotations

import os

# Transparent huge pages for torch's large CPU buffers, set before torch is imported, here and in every app the tests
# start: tiny_random's logits (49,152 columns) are fresh buffers of hundreds of MB each step, whose 4 KB page faults
# took a quarter of a tiny curriculum run (89 s -> 68 s with this). The embedded model's training steps gain
# nothing from it (README, Tests), so the app leaves it to the user.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
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
                              "warmup_ratio": 0.0, "logging_steps": 1, "save_steps": 0, **values})


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


@pytest.fixture(autouse=True, scope="session")
def scratch_working_directory():
    previous = os.getcwd()
    os.chdir(WORKDIR)
    yield WORKDIR
    os.chdir(previous)


def run_cli(*args: str, timeout: float = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m reasoning_lab ARGS` in a subprocess, as a user runs it (offline: tests never reach the hub),
    from a scratch working directory."""
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


# The tiny overrides of the app runs, in one place: each stage's smallest run that still takes its code path.
# a tiny curriculum of 4 steps a stage, two evaluation sets (test_curriculum)
TINY_CURRICULUM = ["stage=curriculum", "model=tiny_random", "curriculum.batch_size=2", "curriculum.steps_per_stage=4", "curriculum.save_steps=2",
                   "curriculum.extend_steps=2", "curriculum.val_limit=2", "curriculum.val_max_new_tokens=4",
                   "curriculum.learning_rate=0.01", "data.generic.size_per_level=8", "data.synthetic_size=48",
                   "data.val_size=8", "eval.during_training.limit=2", "eval.during_training.k=2",
                   "eval.during_training.max_new_tokens=4", "eval.during_training.direct_limit=1", "eval.limit=3", "eval.k=2",
                   "eval.max_new_tokens=4", "eval.datasets=[generic,synthetic_gsm8k]", "logger=none"]
# the smallest curriculum job, one step a stage, for multiruns and presets (test_scale)
TINY_SWEEP = ["model=tiny_random", "curriculum.batch_size=2", "warmup.batch_size=2", "curriculum.steps_per_stage=1", "curriculum.save_steps=1", "curriculum.extend_steps=1",
              "curriculum.max_extensions=0", "curriculum.val_limit=1", "curriculum.val_max_new_tokens=4",
              "data.generic.size_per_level=8", "data.synthetic_size=48", "eval.during_training.limit=1",
              "eval.during_training.k=2", "eval.during_training.max_new_tokens=4", "eval.during_training.direct_limit=1",
              "eval.limit=2", "eval.k=2", "eval.max_new_tokens=4", "eval.direct_max_new_tokens=4", "data.val_size=4",
              "eval.datasets=[generic]"]
# a two-step RL stage (test_rl)
TINY_RL = ["stage=rl", "model=tiny_random", "rl.max_steps=2", "rl.batch_size=2", "rl.num_generations=2",
           "rl.max_completion_length=8", "rl.eval_every=1", "rl.eval_sets=[synthetic_gsm8k]",
           "eval.during_training.limit=2", "eval.during_training.k=2", "eval.during_training.max_new_tokens=8",
           "eval.during_training.direct_limit=1", "data.generic.size_per_level=8", "data.synthetic_size=48"]
# stage=answer with k=4 short paths (test_answer)
TINY_ANSWER = ["stage=answer", "model=tiny_random", "eval.k=4", "eval.max_new_tokens=12", "logger=none"]
# a tiny_random warm-up that only trains (no evaluation); the kill, full-disk, SIGTERM and two-process tests add steps
TINY_WARMUP_TRAINING = ["stage=warmup", "model=tiny_random", "warmup.batch_size=2", "warmup.eval_steps=0",
                        "warmup.eval_sets=[]", "data.generic.size_per_level=8"]


def with_overrides(base: list[str], *overrides: str) -> list[str]:
    """`base` with `overrides` in place of the keys they set (one value a key on the command line)."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [a for a in base if a.split("=", 1)[0] not in keys] + list(overrides)


# a two-step warm-up on tiny_random: shared by the tests that read its outputs or start from its checkpoint
TINY_WARMUP = ["stage=warmup", "model=tiny_random", "warmup.batch_size=2", "warmup.max_steps=2", "warmup.eval_steps=1",
               "warmup.learning_rate=0.05", "eval.during_training.limit=2", "eval.during_training.k=2",
               "eval.during_training.max_new_tokens=8", "data.generic.size_per_level=8", "eval.datasets=[generic]"]


@pytest.fixture(scope="session")
def tiny_warmup(tmp_path_factory) -> Path:
    """The run directory of one TINY_WARMUP run with its offline W&B run (read it, never write to it)."""
    run_dir = tmp_path_factory.mktemp("tiny_warmup") / "run"
    finished(run_dir, run_cli(*TINY_WARMUP, f"hydra.run.dir={run_dir}"), "warmup")
    return run_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "gsm8k" / "test.jsonl").exists():
        if os.environ.get("CI"):
            pytest.fail(f"benchmark files missing at {SHARED_DATA}: CI must have ../shared beside the checkout")
        pytest.skip(f"benchmark files not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_collection_modifyitems(items):
    """Tests that start the app in a subprocess, or read a fixture that does, are marked `app` (`make test-fast`
    leaves them out)."""
    import inspect

    for item in items:
        function = getattr(item, "function", None)
        source = inspect.getsource(function) if function is not None else ""
        starts_the_app = "run_cli(" in source or "subprocess." in source or "finished(" in source
        if starts_the_app or {"tiny_warmup", "tiny_run"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.app)
    # the heaviest modules first: `make test` hands whole modules to its workers in this order, so they end together
    weight = Counter()
    for item in items:
        weight[item.module.__name__] += 3 * bool(item.get_closest_marker("slow")) + bool(item.get_closest_marker("app"))
    items.sort(key=lambda item: -weight[item.module.__name__])
