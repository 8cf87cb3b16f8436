"""Files that must be whole or absent (reasoning_lab.files): atomic writes and folders built once."""

import multiprocessing
from pathlib import Path

import pytest

from reasoning_lab import files


def _build_together(target: str, marker: str, barrier, results) -> None:
    def build(out: Path) -> None:
        (out / "who").write_text(marker)
        barrier.wait(timeout=60)  # all four builds are complete before any is renamed into place: a real race

    files.build_once(Path(target), build)
    results.put((marker, (Path(target) / "who").read_text()))


def test_build_once_is_safe_when_processes_race(tmp_path):
    target = tmp_path / "race" / "thing"
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_build_together, args=(str(target), str(i), barrier, results)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    seen = dict(results.get(timeout=10) for _ in procs)
    winner = (target / "who").read_text()
    assert set(seen) == {"0", "1", "2", "3"} and set(seen.values()) == {winner}  # three lost and used the winner's
    assert [p.name for p in target.parent.iterdir()] == ["thing"]  # no temp folder left behind


def test_interrupted_build_leaves_nothing_behind(tmp_path):
    def build(out: Path) -> None:
        (out / "half").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.build_once(tmp_path / "thing", build)
    assert list(tmp_path.iterdir()) == []


def test_an_atomic_write_that_fails_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    files.write_json(target, {"status": "running"})

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        files.write_json(target, {"status": "completed"})
    monkeypatch.undo()
    assert files.read_json(target, None) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    assert files.read_json(tmp_path / "absent.json", {"stages": []}) == {"stages": []}
