"""Adapter checkpoints (reasoning_lab.checkpoints): the adapter a finished stage names as its result, found in its
own run or the newest finished run, never by a folder's name."""

import json

from reasoning_lab.checkpoints import final_adapter


def finished_curriculum(run, adapter_name: str, model: str = "tiny_random", status: str = "completed"):
    adapter = run / "curriculum" / adapter_name
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "reasoning_lab.json").write_text(json.dumps({"model": model}))
    (run / "curriculum" / "metrics.json").write_text(json.dumps({"stage": "curriculum", "status": status,
                                                                 "checkpoint": str(adapter)}))
    return adapter


def test_the_adapter_a_run_names_not_its_last_stage_folder(tmp_path):
    run = tmp_path / "run"
    named = finished_curriculum(run, "stage_1")
    (run / "curriculum" / "stage_4").mkdir()  # a folder name is no answer
    (run / "curriculum" / "stage_4" / "adapter_config.json").write_text("{}")
    assert final_adapter(run, "curriculum") == named


def test_the_newest_finished_run_of_the_model_under_a_folder(tmp_path):
    old = finished_curriculum(tmp_path / "a", "stage_4")
    finished_curriculum(tmp_path / "b", "stage_1", model="smollm2_135m")
    finished_curriculum(tmp_path / "c", "stage_1", status="failed")
    assert final_adapter(tmp_path, "curriculum", model="tiny_random") == old
    assert final_adapter(tmp_path / "c", "curriculum") is None
    assert final_adapter(tmp_path / "nothing", "curriculum") is None
