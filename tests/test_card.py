"""The model card and the guarded push to the Hugging Face Hub (offline: the hub is never reached)."""

import pytest

from reasoning_lab.card import base_model_id, check_push, final_checkpoint, push
from reasoning_lab.errors import ReasoningLabError
from tests.helpers import make_config, run_cli
from tests.test_failures import one_line_exit_2


def test_base_model_ids():
    assert base_model_id("embedded") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model_id("meta-llama/Llama-3.2-3B-Instruct") == "meta-llama/Llama-3.2-3B-Instruct"
    assert base_model_id("tiny_random") is None and base_model_id("/models/llama") is None


def test_the_final_checkpoint_of_a_stage_and_of_a_pipeline():
    assert final_checkpoint({"checkpoint": "run/warmup/checkpoint"}) == "run/warmup/checkpoint"
    pipeline = {"warmup": {"checkpoint": "w"}, "curriculum": {"checkpoint": "c"}, "eval": {"checkpoint": None}}
    assert final_checkpoint(pipeline) == "c" and final_checkpoint({"eval": {}}) is None


def test_a_push_without_a_token_is_refused_before_training(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # no stored token either
    with pytest.raises(ReasoningLabError, match=r"export.push_to_hub=me/adapter: no Hugging Face token; run `hf auth login`"):
        check_push(make_config("export.push_to_hub=me/adapter"))
    check_push(make_config())  # no push asked: nothing to check


@pytest.mark.app
def test_a_push_with_the_hub_offline_is_one_line_and_nothing_trains(tmp_path):
    result = run_cli("stage=warmup", "model=tiny_random", "export.push_to_hub=me/adapter", "logger=none",
                     f"hydra.run.dir={tmp_path}", timeout=120)
    one_line_exit_2(result, "export.push_to_hub=me/adapter", "HF_HUB_OFFLINE")
    assert not (tmp_path / "warmup").exists()


def test_an_unreachable_hub_is_one_line_and_the_run_stays(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    (tmp_path / "warmup" / "checkpoint").mkdir(parents=True)
    (tmp_path / "warmup" / "checkpoint" / "adapter_config.json").write_text("{}")
    (tmp_path / "model_card.md").write_text("# card\n")
    with pytest.raises(ReasoningLabError, match="export.push_to_hub=me/adapter: the upload failed .* stay in"):
        push(make_config("export.push_to_hub=me/adapter"), tmp_path, tmp_path / "warmup" / "checkpoint")
    assert (tmp_path / "warmup" / "checkpoint" / "adapter_config.json").exists()
