"""Which process writes (reasoning_lab.distributed): rank 0 of a distributed job, or a plain single process."""

from reasoning_lab.distributed import is_main_process, wait_for_everyone


def test_only_rank_0_writes(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()


def test_a_single_process_does_not_wait(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    wait_for_everyone()  # returns at once: no process group to join
