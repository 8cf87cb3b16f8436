"""Sweeps, presets and scale-out: the 3x3 LoRA-rank x pacing sweep with its report and W&B group, every
experiment preset, Optuna and SLURM configs, and two data-parallel CPU processes through accelerate."""

import json
import os
import re
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from reasoning_lab.tracking import tensors_digest
from tests.helpers import ROOT, TINY_SWEEP, TINY_WARMUP_TRAINING, run_cli
from tests.wandb_files import find_wandb_files, read_wandb_file

PRESETS = sorted(p.stem for p in (ROOT / "experiments" / "presets" / "experiment").glob("*.yaml"))


def test_presets_exist():
    assert {"quickstart", "llama32_3b", "sweep_lora_pacing", "slurm"} <= set(PRESETS)


@pytest.mark.app
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_says_what_it_is_for(preset):
    text = (ROOT / "experiments" / "presets" / "experiment" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_\n# " + preset + ":")
    result = run_cli(f"experiment={preset}", "--cfg", "job" if preset != "slurm" else "hydra")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.app
def test_llama32_3b_preset_prints_the_design_values():
    result = run_cli("experiment=llama32_3b", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    import yaml

    cfg = yaml.safe_load(result.stdout)
    assert cfg["model"]["source"] == "meta-llama/Llama-3.2-3B" and cfg["model"]["quantization"] == "8bit"
    assert cfg["model"]["lora"] == {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
    assert (cfg["warmup"]["num_epochs"], cfg["warmup"]["learning_rate"], cfg["warmup"]["batch_size"]) == (2, 5e-5, 4)
    assert cfg["warmup"]["max_steps"] == -1
    assert (cfg["curriculum"]["max_steps"], cfg["curriculum"]["num_epochs"]) == (-1, 3.0)
    assert cfg["stage"]["stages"] == ["warmup", "curriculum", "rl", "eval"]
    assert cfg["rl"]["algorithm"] == "grpo" and cfg["eval"]["k"] == 8


@pytest.mark.app
def test_presets_load_from_any_working_directory(tmp_path):
    result = subprocess.run([sys.executable, "-m", "reasoning_lab", "experiment=quickstart", "--cfg", "job"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "name: curriculum" in result.stdout, result.stderr[-2000:]


@pytest.mark.app
def test_slurm_preset_uses_the_submitit_launcher():
    result = run_cli("experiment=slurm", "--cfg", "hydra")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in result.stdout
    assert "gpus_per_node: 1" in result.stdout and "timeout_min: 720" in result.stdout


@pytest.mark.app
@pytest.mark.slow
def test_quickstart_preset_runs_on_tiny_random(tmp_path):
    result = run_cli("experiment=quickstart", *TINY_SWEEP, "logger=none", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "curriculum" / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.app
@pytest.mark.slow
def test_lora_pacing_sweep_leaves_one_job_per_combination_one_wandb_group_and_a_summary(tmp_path):
    """The preset's sweep (3 x 3 in the preset; 2 x 2 here, overridden on the command line, to save CI time)."""
    sweep = tmp_path / "sweep"
    result = run_cli("experiment=sweep_lora_pacing", *TINY_SWEEP, "model.lora.r=4,8", "curriculum.pacing=fixed,root",
                     "curriculum.stage_evals=false", "logger=wandb", f"hydra.sweep.dir={sweep}")  # the final evaluation only
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 4
    trained = set()
    for job in jobs:
        metrics = json.loads((job / "curriculum" / "metrics.json").read_text())
        adapter = json.loads((job / "curriculum" / "stage_4" / "adapter_config.json").read_text())
        assert metrics["status"] == "completed"
        trained.add((adapter["r"], metrics["pacing"]))
    assert trained == {(4, "fixed"), (4, "root"), (8, "fixed"), (8, "root")}  # each job trained what it says
    runs = [read_wandb_file(f) for job in jobs for f in find_wandb_files(job)]
    assert len(runs) == 4
    assert len({r["group"] for r in runs}) == 1 and runs[0]["group"] == f"curriculum-{sweep.name}"
    names = {r["name"] for r in runs}
    assert names == {f"model.lora.r={r},curriculum.pacing={p}" for r in (4, 8) for p in ("fixed", "root")}
    assert all("model.lora.r" in " ".join(r["config"]["overrides"]) for r in runs)

    table = (sweep / "sweep.md").read_text()
    rows = [line for line in table.split("## ")[0].splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 4 and all("| completed |" in row for row in rows)
    assert ("| job | model.lora.r | curriculum.pacing | status | wall s | setup s | data s | training s | signal s | "
            "evaluation s | saving s | other s | generic | mean | error |") in table
    assert sum(float(row.split(" | ")[7]) for row in rows) > 0  # the training seconds of the jobs
    assert (sweep / "sweep.png").stat().st_size > 10_000
    summary = [f for f in find_wandb_files(sweep)]
    assert len(summary) == 1 and read_wandb_file(summary[0])["job_type"] == "sweep_report"


@pytest.mark.app
@pytest.mark.slow
def test_curriculum_ablation_pools_same_seed_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    # two seeds of the preset's three, on 2 of its 300 problems a set
    result = run_cli("experiment=ablation_curriculum", *TINY_SWEEP, "logger=none", "seed=1,2", "eval.limit=2",
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 8
    stages = [json.loads((job / "curriculum" / "metrics.json").read_text())["stages"] for job in jobs]
    assert [len(s) for s in stages] == [1, 1, 1, 1, 1, 1, 4, 4]  # mix, adaptive and faded: one stage of every set
    assert all(s[0]["adaptive"]["buckets"] for s in stages[2:4]) and stages[0][0]["adaptive"] is None
    assert not any("eval" in stage for job in stages for stage in job)  # curriculum.stage_evals=false: final only
    assert all(json.loads((job / "curriculum" / "final" / "eval_results.json").read_text())["datasets"]["generic"]["n"]
               == 2 for job in jobs)
    table = (sweep / "sweep.md").read_text()
    assert "## Across seeds" in table
    assert all(f"| curriculum={arm} | 2 |" in table for arm in ("shuffled_mix", "adaptive", "faded", "stages"))
    assert "## Pooled paired comparison with curriculum=shuffled_mix" in table and "Minimal detectable effect" in table
    assert ("- curriculum=shuffled_mix: jobs 0, 1" in table and "- curriculum=adaptive: jobs 2, 3" in table
            and "- curriculum=faded: jobs 4, 5" in table and "- curriculum=stages: jobs 6, 7" in table)
    result = json.loads((sweep / "compare" / "compare.json").read_text())
    comparisons = result["comparisons"]
    assert [c["b"] for c in comparisons] == ["curriculum=adaptive", "curriculum=faded", "curriculum=stages"]
    # every job recorded the accuracy curve (curriculum.curve_every): steps to the mix's final accuracy, each arm
    assert [row["arm"] for row in result["steps_to_target"]] == [
        "curriculum=shuffled_mix", "curriculum=adaptive", "curriculum=faded", "curriculum=stages"]
    assert "Steps to reach arm curriculum=shuffled_mix's final validation accuracy" in table
    assert all(c["dataset"] == "generic" and c["seeds"] == 2 and c["n"] == [2, 2] for c in comparisons)


@pytest.mark.app
@pytest.mark.slow
def test_optuna_search_runs_trials_and_reports_the_best(tmp_path):
    sweep = tmp_path / "optuna"
    result = run_cli("hparams_search=curriculum_optuna", "hydra.sweeper.n_trials=2", *TINY_SWEEP, "logger=none",
                     "curriculum.stage_evals=false", "curriculum.final_eval=false",  # the objective is a validation loss
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_params:" in best and "model.lora.r" in best and "best_value: " in best
    assert len([p for p in sweep.iterdir() if p.name.isdigit()]) == 2


@pytest.mark.app
@pytest.mark.slow
def test_two_cpu_processes_train_one_adapter_and_only_rank_0_writes(tmp_path):
    run_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "reasoning_lab", *TINY_WARMUP_TRAINING, "warmup.max_steps=2", "logger=wandb",
               f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "WANDB_API_KEY": ""}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    digests = dict(re.findall(r"rank (\d) of 2: adapter digest ([0-9a-f]{64})", output))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    saved = load_file(str(run_dir / "warmup" / "checkpoint" / "adapter_model.safetensors"))
    assert tensors_digest(saved) == digests["0"]
    assert len(find_wandb_files(run_dir)) == 1  # one W&B run, from rank 0
    metrics = json.loads((run_dir / "warmup" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["train"]["steps"] == 2


@pytest.mark.app
def test_multi_process_run_without_a_run_dir_is_refused():
    result = run_cli("stage=warmup", "model=tiny_random", env={"WORLD_SIZE": "2"})
    assert result.returncode == 2 and "needs hydra.run.dir=<dir>" in result.stderr


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED"),
                                        ("deepspeed_zero3", "DEEPSPEED")])
def test_the_accelerate_configs_load_as_accelerate_reads_them(name, kind):
    """accelerate's own loader refuses unknown keys and bad values: the files the README launches with load."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "experiments" / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.name == kind and config.num_processes >= 2
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == int(name[-1])
