"""Run-directory files and W&B offline runs (reasoning_lab.tracking)."""

import json
import time

import pytest

from reasoning_lab.files import write_json
from tests.wandb_files import read_wandb_file


def test_write_json_replaces_atomically(tmp_path):
    path = tmp_path / "a" / "metrics.json"
    write_json(path, {"status": "running"})
    write_json(path, {"status": "completed"})
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_wandb_offline_run_reads_back(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="t", dir=str(tmp_path), mode="offline", config={"model": {"name": "x"}})
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1)})
    run.summary.update({"warmup/status": "completed"})
    run.finish()
    (path,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    logged = read_wandb_file(path)
    for _ in range(100):  # the background writer may still be flushing the file
        if logged["finished"]:
            break
        time.sleep(0.1)
        logged = read_wandb_file(path)
    assert [h["loss"] for h in logged["history"]] == pytest.approx([1.0, 0.5, 1 / 3])
    assert logged["summary"]["warmup/status"] == "completed"
    assert logged["config"]["model"] == {"name": "x"}


def test_not_a_wandb_file(tmp_path):
    (tmp_path / "x.wandb").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a W&B run file"):
        read_wandb_file(tmp_path / "x.wandb")
