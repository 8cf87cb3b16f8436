"""The warm-up stage end to end, through the command line as a user runs it."""

import json

import pytest
import torch
from peft import PeftModel

from reasoning_lab.model import load_base_model
from tests.helpers import TINY_WARMUP, TINY_WARMUP_TRAINING, make_config, run_cli
from tests.helpers import finished as finished_stage
from tests.wandb_files import find_wandb_files, read_wandb_file


def finished(run_dir, result):
    return finished_stage(run_dir, result, "warmup")


TINY = [a for a in TINY_WARMUP if a != "stage=warmup"]


@pytest.mark.app
def test_tiny_run_leaves_adapter_metrics_and_offline_wandb_run(tiny_warmup):
    run_dir = tiny_warmup
    metrics = json.loads((run_dir / "warmup" / "metrics.json").read_text())
    assert metrics["stage"] == "warmup" and metrics["status"] == "completed"
    assert metrics["train"]["steps"] == 2
    from reasoning_lab.data import source_rows

    cfg = make_config("data.generic.size_per_level=8")
    train = source_rows("generic", "train", cfg.data)  # 2 tasks x 2 levels x 8, less the held-out buckets
    assert 16 <= len(train) < 32 and metrics["train_data"]["per_source"] == {"generic": len(train)}
    assert metrics["contamination"]["pairs"]["generic->generic"]["overlapping"] == 0
    assert metrics["eval"]["generic"]["n"] == 2
    assert json.loads((run_dir / "warmup" / "eval_results.json").read_text())["label"] == "warmup"
    # where the time went: every phase, adding up to the stage's wall time
    timing = metrics["timing"]
    assert set(timing) == {"setup", "data", "training", "signal", "evaluation", "saving", "other"}
    assert timing["setup"] > 0 and timing["training"] > 0 and timing["evaluation"] > 0 and timing["saving"] > 0
    assert sum(timing.values()) == pytest.approx(metrics["wall_seconds"], abs=1.0)

    cfg = make_config("model=tiny_random")
    adapter = PeftModel.from_pretrained(load_base_model(cfg.model), run_dir / "warmup" / "checkpoint")
    assert any("lora_" in name for name, _ in adapter.named_parameters())

    (wandb_file,) = find_wandb_files(run_dir)
    logged = read_wandb_file(wandb_file)
    assert logged["summary"]["warmup/status"] == "completed"
    assert logged["summary"]["warmup/train/eval_loss_after"] == pytest.approx(metrics["train"]["eval_loss_after"])
    assert [h["eval/loss"] for h in logged["history"] if "eval/loss" in h][0] == pytest.approx(
        metrics["train"]["eval_loss_before"])
    assert logged["config"]["model"]["name"] == "tiny_random"


@pytest.mark.app
def test_init_from_continues_from_a_checkpoint_and_bad_paths_fail_cleanly(tmp_path, tiny_warmup):
    first, second = tiny_warmup, tmp_path / "second"
    before = json.loads((first / "warmup" / "metrics.json").read_text())
    after = finished(second, run_cli("stage=warmup", *TINY, "logger=none", f"checkpoint.init_from={first}/warmup/checkpoint",
                                     f"hydra.run.dir={second}"))
    assert after["train"]["eval_loss_before"] == pytest.approx(before["train"]["eval_loss_after"], rel=1e-4)
    assert after["train"]["eval_loss_before"] < before["train"]["eval_loss_before"]

    bad = tmp_path / "bad"
    result = run_cli("stage=warmup", *TINY, "logger=none", f"checkpoint.init_from={tmp_path}", f"hydra.run.dir={bad}")
    assert result.returncode == 2 and "not an adapter checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads((bad / "warmup" / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.app
def test_real_mix_trains_on_benchmark_rows(tmp_path, shared_data):
    run_dir = tmp_path / "run"
    args = ["debug=tiny", "stage=warmup", "warmup.learning_rate=0.05", "eval.during_training.direct_limit=null",
            "warmup.max_steps=1", "warmup.eval_steps=0"]  # debug=tiny_warmup but the default evaluation sets
    metrics = finished(run_dir, run_cli(*args, "data=real", f"data.root={shared_data}", "data.max_length=1024",
                                        "logger=none", f"hydra.run.dir={run_dir}"))
    sources = metrics["train_data"]["per_source"]
    assert sources["gsm8k"] > 7000 and sources["strategyqa"] > 1800 and 100 < sources["aqua"] < 254
    assert metrics["contamination"]["dropped"]["aqua"] > 0
    assert metrics["train"]["steps"] == 1 and metrics["train"]["train_loss"] > 0


@pytest.mark.app
@pytest.mark.slow
def test_embedded_model_learns_the_format(tmp_path):
    run_dir = tmp_path / "run"
    metrics = finished(run_dir, run_cli("stage=warmup", "warmup.max_steps=6", "warmup.eval_steps=3",
                                        "eval.during_training.limit=4", "eval.during_training.k=2",
                                        "eval.during_training.max_new_tokens=48", f"hydra.run.dir={run_dir}"))
    assert metrics["train"]["eval_loss_after"] < metrics["train"]["eval_loss_before"]
    generic = metrics["eval"]["generic"]
    assert generic["n"] == 4 and 0 <= generic["accuracy"] <= 1
    predictions = (run_dir / "warmup" / "predictions" / "generic.jsonl").read_text().splitlines()
    assert len(predictions) == 4 and all(json.loads(p)["greedy"] for p in predictions)
    assert "| generic |" in (run_dir / "report.md").read_text()
    assert find_wandb_files(run_dir)


@pytest.mark.app
@pytest.mark.slow
def test_embedded_model_in_8bit_on_the_cpu(tmp_path):
    run_dir = tmp_path / "run"
    metrics = finished(run_dir, run_cli("stage=warmup", "model.quantization=8bit", "warmup.max_steps=2",
                                        "warmup.batch_size=4", "warmup.eval_steps=0", "warmup.eval_sets=[]",
                                        "data.val_size=8", "logger=none",
                                        f"hydra.run.dir={run_dir}"))
    assert metrics["train"]["steps"] == 2
    config = json.loads((run_dir / "warmup" / "checkpoint" / "adapter_config.json").read_text())
    assert config["r"] == 16
    assert torch.isfinite(torch.tensor(metrics["train"]["train_loss"]))
    assert metrics["parameters"]["quantized_layers"] == 30 * 7  # every linear layer of the 30 blocks is 8-bit


@pytest.mark.app
@pytest.mark.slow
@pytest.mark.parametrize("batches", [[], ["warmup.max_tokens_per_batch=200"]], ids=["by_count", "by_tokens"])
def test_killed_warmup_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(tmp_path, batches):
    from safetensors.torch import load_file

    args = [*TINY_WARMUP_TRAINING, "warmup.max_steps=6", "warmup.save_steps=2", "warmup.learning_rate=0.01",
            "logger=none", *batches]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    finished(clean, run_cli(*args, f"hydra.run.dir={clean}"))
    stopped = run_cli(*args, f"hydra.run.dir={killed}",  # SIGKILL right after checkpoint-2: no chance to clean up
                      env={"REASONING_LAB_STOP_AFTER": "trainer/checkpoint-2", "REASONING_LAB_STOP_SIGNAL": "KILL"})
    assert stopped.returncode == -9
    assert not (killed / "warmup" / "checkpoint").exists()

    resumed = run_cli(*args, f"hydra.run.dir={killed}")
    metrics = finished(killed, resumed)
    assert metrics["resumed_from"].endswith("checkpoint-2") and metrics["train"]["steps"] == 6
    a = load_file(clean / "warmup" / "checkpoint" / "adapter_model.safetensors")
    b = load_file(killed / "warmup" / "checkpoint" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = run_cli(*args, f"hydra.run.dir={killed}")  # finished: not trained again
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr
