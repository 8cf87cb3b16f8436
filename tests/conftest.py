"""Fixtures and hooks: the scratch working directory, the shared tiny warm-up run, the real benchmark files in
../shared/data, the `app` marker's guard and the test order. Helpers the tests import are in tests/helpers.py."""

from __future__ import annotations

import os

# Transparent huge pages for torch's large CPU buffers, set before torch is imported, here and in every app the tests
# start: tiny_random's logits (49,152 columns) are fresh buffers of hundreds of MB each step, whose 4 KB page faults
# took a quarter of a tiny curriculum run (89 s -> 68 s with this). The embedded model's training steps gain
# nothing from it (experiments/results/tests.md), so the app leaves it to the user.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import APP_RUNS, SHARED_DATA, TINY_WARMUP, WORKDIR, finished, run_cli


@pytest.fixture(autouse=True, scope="session")
def scratch_working_directory():
    previous = os.getcwd()
    os.chdir(WORKDIR)
    yield WORKDIR
    os.chdir(previous)


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test marked `app` may start the app (tests.helpers.run_cli), its fixtures included; any other test that
    tries fails, naming the marker."""
    APP_RUNS["allowed"] = item.get_closest_marker("app") is not None


def pytest_collection_modifyitems(items):
    """The heaviest modules first: `make test` hands whole modules to its workers in this order, so they end
    together."""
    weight = Counter()
    for item in items:
        weight[item.module.__name__] += 3 * bool(item.get_closest_marker("slow")) + bool(item.get_closest_marker("app"))
    items.sort(key=lambda item: -weight[item.module.__name__])
