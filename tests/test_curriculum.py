"""Curriculum: pacing formulas, sampled order and replay, decisions, resume after a kill, multirun."""

import json
import math
import random
import re
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from reasoning_lab.curriculum import CurriculumSampler, competence, decide
from tests.helpers import TINY_CURRICULUM, make_config, run_cli, sft_settings, tiny_model, with_overrides
from tests.wandb_files import find_wandb_files, read_wandb_file, wandb_records


@pytest.mark.parametrize(
    "pacing, step, expected",
    [("fixed", 0, 1.0), ("linear", 0, 0.2), ("linear", 5, 0.6), ("linear", 10, 1.0), ("linear", 30, 1.0),
     ("root", 0, 0.2), ("root", 5, math.sqrt(0.5 * 0.96 + 0.04)), ("root", 10, 1.0),
     ("step", 0, 0.2), ("step", 2, 0.2), ("step", 3, 0.2 + 0.8 / 3), ("step", 5, 0.2 + 1.6 / 3), ("step", 8, 1.0)],
)
def test_competence_matches_the_formulas(pacing, step, expected):
    assert competence(pacing, step, 10, 0.2) == pytest.approx(expected)


def test_root_pacing_opens_up_faster_than_linear():
    assert all(competence("root", t, 100, 0.1) >= competence("linear", t, 100, 0.1) for t in range(101))


def sampled(pacing, replay=0.25, steps=40, batch=8, n=200, n_replay=50):
    difficulties = [i % 10 for i in range(n)]  # 10 difficulty levels, 20 examples each
    sampler = CurriculumSampler(difficulties, n_replay, batch, steps, pacing, c0=0.2, replay=replay, seed=3)
    return difficulties, list(sampler.batches())


@pytest.mark.parametrize("pacing", ["linear", "root", "step"])
def test_batches_draw_only_within_competence_and_get_harder(pacing):
    difficulties, batches = sampled(pacing)
    ranked = sorted(difficulties)
    for step, batch in enumerate(batches):
        allowed = math.ceil(competence(pacing, step, 40, 0.2) * 200)  # examples with CDF <= c(t)
        assert all(difficulties[i] <= ranked[allowed - 1] for i in batch if i < 200)
    assert max(difficulties[i] for i in batches[0] if i < 200) <= 1  # the easiest 20%: levels 0 and 1
    mean = [sum(difficulties[i] for i in b if i < 200) / sum(1 for i in b if i < 200) for b in batches]
    assert sum(mean[-10:]) > sum(mean[:10]) + 20


def test_length_windows_regroup_the_same_examples_with_less_padding():
    n, n_replay, batch, steps, window = 200, 50, 8, 40, 4
    lengths = [random.Random(i).randint(40, 400) for i in range(n + n_replay)]
    difficulties = [i % 10 for i in range(n)]
    plain = list(CurriculumSampler(difficulties, n_replay, batch, steps, "root", 0.2, 0.25, seed=3).batches())
    grouped = list(CurriculumSampler(difficulties, n_replay, batch, steps, "root", 0.2, 0.25, seed=3,
                                     lengths=lengths, length_window=window).batches())
    assert len(grouped) == steps and all(len(b) == batch for b in grouped)
    for start in range(0, steps, window):  # each window holds the very same examples, so pacing and replay hold
        assert sorted(i for b in plain[start:start + window] for i in b) == \
               sorted(i for b in grouped[start:start + window] for i in b)
    def padded(batches):
        return sum(batch * max(lengths[i] for i in b) for b in batches)
    assert padded(grouped) < 0.8 * padded(plain)
    assert list(CurriculumSampler(difficulties, n_replay, batch, steps, "root", 0.2, 0.25, seed=3, lengths=lengths,
                                  length_window=1).batches()) == plain


@pytest.mark.parametrize("pacing", ["fixed", "linear", "root", "step"])
def test_replay_share_is_exact_and_from_the_replay_pool(pacing):
    _, batches = sampled(pacing, replay=0.25)
    drawn = [i for b in batches for i in b]
    assert len(drawn) == 40 * 8
    assert sum(i >= 200 for i in drawn) == 0.25 * len(drawn)
    assert all(i < 250 for i in drawn)
    _, no_replay = sampled(pacing, replay=0.0)
    assert all(i < 200 for b in no_replay for i in b)


def test_fixed_pacing_trains_the_whole_data_each_epoch():
    _, batches = sampled("fixed", replay=0.0, steps=50)  # 400 draws = two epochs of 200
    counts = Counter(i for b in batches for i in b)
    assert set(counts) == set(range(200)) and set(counts.values()) == {2}


def test_sampler_order_depends_only_on_the_seed():
    assert sampled("root")[1] == sampled("root")[1]


class Settings:
    significance, min_delta, forgetting_tolerance, replay_boost, max_replay = 0.05, 0.02, 0.05, 0.1, 0.5


def losses(mean, n=32, noise=0.4, seed=0):
    """Per-example validation losses around `mean` (the same examples: shared per-example difficulty)."""
    rng = random.Random(seed)
    return [mean + rng.gauss(0, noise) for _ in range(n)]


@pytest.mark.parametrize(
    "now, previous, left, action, words",
    [(0.60, 1.00, True, "extend", "still improving"),
     (0.99, 1.00, True, "advance", "stopped improving"),
     (0.60, 1.00, False, "advance", "budget spent")],
)
def test_decisions_on_scripted_validation_losses(now, previous, left, action, words):
    base = losses(0.0)
    decision = decide([now + b for b in base], [previous + b for b in base], left, {}, {}, 0.2, Settings)
    assert decision.action == action and words in decision.reason and decision.next_replay == 0.2


def test_equal_models_trigger_no_more_often_than_alpha():
    """Two equal models: per-example losses differ by noise only. Over 400 simulated validations, "still
    improving" and "forgetting" fire at most alpha (0.05) of the time, plus three standard errors."""
    fired_improving = fired_forgetting = 0
    trials = 400
    for t in range(trials):
        shared = losses(1.0, seed=10_000 + t)  # example difficulty, the same for both checkpoints
        rng = random.Random(t)
        a = [x + rng.gauss(0, 0.1) for x in shared]
        b = [x + rng.gauss(0, 0.1) for x in shared]
        decision = decide(a, b, True, {"earlier": a}, {"earlier": b}, 0.2, Settings)
        fired_improving += decision.action == "extend"
        fired_forgetting += bool(decision.forgotten)
    limit = trials * (0.05 + 3 * math.sqrt(0.05 * 0.95 / trials))
    assert fired_improving <= limit and fired_forgetting <= limit


def test_a_real_difference_triggers():
    shared = losses(1.0, seed=1)
    rng = random.Random(2)
    after = [x - 0.15 + rng.gauss(0, 0.1) for x in shared]  # the stage's loss fell by 0.15
    worse = [x + 0.15 + rng.gauss(0, 0.1) for x in shared]  # an earlier stage's loss rose by 0.15
    decision = decide(after, shared, True, {"generic": worse}, {"generic": shared}, 0.2, Settings)
    assert decision.action == "extend" and decision.forgotten == ["generic"]
    assert decision.next_replay == pytest.approx(0.3) and "generic: loss" in decision.reason


def test_forgetting_raises_replay_up_to_the_ceiling():
    shared = losses(1.0, seed=3)
    worse = [x + 0.5 for x in shared]
    assert decide(shared, shared, True, {"a": worse}, {"a": shared}, 0.45, Settings).next_replay == 0.5




def curriculum_metrics(run_dir):
    return json.loads((run_dir / "curriculum" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny curriculum run, shared by the tests that read its outputs."""
    run_dir = tmp_path_factory.mktemp("tiny_curriculum")
    result = run_cli(*TINY_CURRICULUM, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.app
def test_tiny_curriculum_writes_every_stage(tiny_run):
    tmp_path = tiny_run
    metrics = curriculum_metrics(tmp_path)
    assert metrics["status"] == "completed" and [s["stage"] for s in metrics["stages"]] == [1, 2, 3, 4]
    assert [s["data"] for s in metrics["stages"]] == [["generic"], ["gsm8k_simple"], ["gsm8k_medium", "aqua"],
                                                      ["gsm8k", "aqua", "strategyqa", "generic"]]
    for k, stage in enumerate(metrics["stages"], 1):
        assert stage["steps"] >= 4 and 0 <= stage["val_accuracy"] <= 1 and stage["decision"]
        assert (tmp_path / "curriculum" / f"stage_{k}" / "adapter_config.json").exists()
        evaluation = tmp_path / "curriculum" / (f"stage_{k}" if k < 4 else "final") / "eval_results.json"
        assert set(json.loads(evaluation.read_text())["datasets"]) == {"generic", "synthetic_gsm8k"}
    assert metrics["stages"][0]["replay_pool"] is None and metrics["stages"][1]["replay_pool"]["examples"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "| base | curriculum/stage_1 | curriculum/stage_2 | curriculum/stage_3 | final (stage_4) |" in report
    final = json.loads((tmp_path / "curriculum" / "final" / "eval_results.json").read_text())
    assert final["checkpoint"].endswith("stage_4") and final["datasets"]["generic"]["n"] == 3
    assert metrics["base_eval"]["generic"]["n"] == 3 and "accuracy_direct" in metrics["final_eval"]["generic"]
    trained_on = json.loads((tmp_path / "curriculum" / "stage_4" / "reasoning_lab.json").read_text())["trained_on"]
    assert trained_on[-1]["sets"] == ["generic", "gsm8k_simple", "gsm8k_medium", "aqua", "gsm8k", "strategyqa"]


@pytest.mark.app
@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path, tiny_run):
    clean, killed = tiny_run, tmp_path / "killed"

    with_wandb = [a for a in TINY_CURRICULUM if a != "logger=none"]  # an offline W&B run: the resumed stage must rejoin it
    # the run stops itself with SIGTERM right after stage 2's checkpoint-2 is complete (reasoning_lab.sft.stop_if_asked)
    stopped = run_cli(*with_wandb, f"hydra.run.dir={killed}",
                      env={"REASONING_LAB_STOP_AFTER": "stage_2.work/round_0.work/trainer/checkpoint-2"})
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert curriculum_metrics(killed)["status"] == "interrupted"
    assert not (killed / "curriculum" / "stage_2").exists()

    resumed = run_cli(*with_wandb, f"hydra.run.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first, second = (read_wandb_file(f) for f in find_wandb_files(killed))  # one W&B run, its history in two files
    assert first["id"] == second["id"] and first["job_type"] == second["job_type"] == "curriculum"
    stages = [list(dict.fromkeys(h["curriculum/stage"] for h in run["history"] if "curriculum/stage" in h))
              for run in (first, second)]
    assert stages == [[1], [2, 3, 4]]  # the resumed run goes on where the killed one ended
    log = resumed.stdout + resumed.stderr
    assert "curriculum stage 1 (warmup_reasoning) already finished" in log and "resuming from" in log
    a, b = curriculum_metrics(clean), curriculum_metrics(killed)
    assert [s["decision"] for s in a["stages"]] == [s["decision"] for s in b["stages"]]
    assert [s["steps"] for s in a["stages"]] == [s["steps"] for s in b["stages"]]
    weights_a = load_file(clean / "curriculum" / "stage_4" / "adapter_model.safetensors")
    weights_b = load_file(killed / "curriculum" / "stage_4" / "adapter_model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.allclose(weights_a[name], weights_b[name], atol=1e-5), name


def test_merged_export_loads_without_peft(tmp_path):
    from transformers import AutoModelForCausalLM

    from reasoning_lab.checkpoints import save_adapter
    from reasoning_lab.model import export_merged

    cfg, model, tokenizer = tiny_model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)
    adapter = save_adapter(model, tokenizer, tmp_path / "adapter", cfg.model)
    merged_dir = export_merged(cfg.model, adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    ids = torch.tensor([[1, 2, 3, 4]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, model(ids).logits, atol=1e-4)
    assert not (merged_dir / "adapter_config.json").exists()


@pytest.mark.app
@pytest.mark.slow
def test_the_llama32_3b_preset_chains_warmup_curriculum_rl_and_eval(tmp_path, shared_data):
    """The design's full recipe (`experiment=llama32_3b`: stage=pipeline on the real benchmarks) with tiny_random
    and a few steps a stage: each stage starts from the last one's checkpoint; one report, card and W&B group."""
    tiny = [a for a in TINY_CURRICULUM if a not in ("stage=curriculum", "logger=none")]
    args = with_overrides(tiny, "eval.datasets=[gsm8k,generic]", "warmup.batch_size=2", "warmup.max_steps=1",
                          "curriculum.max_extensions=0", "warmup.eval_steps=0", "warmup.eval_sets=[]", "eval.limit=2",
                          "eval.k=2", "eval.max_new_tokens=4", "eval.direct_limit=1", "rl.max_steps=1", "rl.prompts_per_step=2",
                          "rl.num_generations=2", "rl.max_completion_length=4", "rl.eval_every=0")
    result = run_cli("experiment=llama32_3b", *args, f"data.root={shared_data}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    warmup = json.loads((tmp_path / "warmup" / "metrics.json").read_text())
    curriculum = curriculum_metrics(tmp_path)
    evaluation = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    assert warmup["status"] == curriculum["status"] == "completed"
    rl = json.loads((tmp_path / "rl" / "metrics.json").read_text())
    assert curriculum["init_from"] == warmup["checkpoint"]
    assert rl["status"] == "completed" and rl["init_from"] == curriculum["checkpoint"]
    assert evaluation["checkpoint"] == rl["checkpoint"]
    header = next(line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| dataset"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert columns[:5] == ["base", "curriculum/stage_1", "curriculum/stage_2", "curriculum/stage_3", "final (stage_4)"]
    # RL's own evaluation before training, RL as the last training column, then its final evaluation
    assert columns[5:] == ["rl/before", "rl", "eval: rl"]
    # W&B: one run per stage, all in the run directory's group; the last one's summary holds the report
    runs = {run["job_type"]: run for run in map(read_wandb_file, find_wandb_files(tmp_path))}
    assert sorted(runs) == ["curriculum", "eval", "rl", "warmup"] and len({r["id"] for r in runs.values()}) == 4
    assert len({r["group"] for r in runs.values()}) == 1 and tmp_path.name in runs["eval"]["group"]
    assert {"report/accuracy", "report/plot"} <= set(runs["eval"]["summary"])
    # the adapters as artifacts, with lineage: each stage logs what it trained and declares what it started from
    logged, used = {}, {}
    runs_by_id = {run["id"]: job for job, run in runs.items()}
    for file in find_wandb_files(tmp_path):
        for record in wandb_records(file):
            if record.WhichOneof("record_type") == "artifact" and record.artifact.type == "lora-adapter":
                artifact = record.artifact
                (used if artifact.use_after_commit else logged).setdefault(runs_by_id[artifact.run_id], []).append(
                    artifact)
    assert sorted(logged) == ["curriculum", "rl", "warmup"] and sorted(used) == ["curriculum", "eval", "rl"]
    for made, user in (("warmup", "curriculum"), ("curriculum", "rl"), ("rl", "eval")):
        (out,), (into,) = logged[made], used[user]
        assert out.type == into.type == "lora-adapter" and out.name == into.name and out.digest == into.digest
        assert set(out.aliases) == {"latest", made}
        meta = json.loads(out.metadata)
        assert meta["base_model"] == "tiny_random" and meta["lora"]["r"] > 0 and meta["trained_on"]
        assert {entry.path for entry in out.manifest.contents} >= {"adapter_model.safetensors", "adapter_config.json"}
    assert json.loads(logged["rl"][0].metadata)["steps"] == 1
    assert set(json.loads(logged["curriculum"][0].metadata)["evaluation"]) == {"gsm8k", "generic"}
    # the model card: what the adapter is, every stage, the evaluation table with n, contamination, the command
    card = (tmp_path / "model_card.md").read_text()
    assert card.startswith("---\nlibrary_name: peft\n") and "tags: [reasoning_lab, lora, reasoning, warmup, curriculum, rl]" in card
    section = card.split("## Stages")[1].split("##")[0].splitlines()
    stages = [line.split("|")[1].strip() for line in section if line.startswith("| ") and not line.startswith("| stage")]
    assert stages == ["warmup", "curriculum", "rl"]
    assert "pacing root; 1: generic" in card and "grpo, 1 steps of 2 prompts x 2 completions" in card
    assert "| dataset | base | curriculum/stage_1 |" in card and "\n| n | 2 | 2 |" in card
    # the real benchmarks: the warm-up's mix (data.train), then the curriculum's stages as data.sets defines them
    mix = ", ".join(f"{name} {count}" for name, count in warmup["train_data"]["per_source"].items())
    assert f"- warm-up: {mix} examples" in card and warmup["train_data"]["per_source"]["gsm8k"] > 7000
    assert "- curriculum stage 1 (warmup_reasoning): generic 26 examples" in card
    simple = re.search(r"- curriculum stage 2 \(gsm8k_simple\): gsm8k (\d+) examples\n", card)
    assert simple and 1000 < int(simple.group(1)) < 7000  # GSM8K's rows of at most 2 calculator steps
    assert "- curriculum: 12 training->evaluation pairs checked" in card  # 6 training sets x gsm8k, generic
    assert "python -m reasoning_lab experiment=llama32_3b debug=tiny" in card


@pytest.mark.slow
def test_scripted_losses_drive_extension_revert_forgetting_and_replay(tmp_path, monkeypatch):
    """The tiny model's losses carry no signal, so the validation losses are scripted: stage 1 falls (extend),
    then rises in its extension (undone: the stage keeps round 0's adapter); stage 2 falls while generic is
    forgotten (replay 0.2 -> 0.3, which stage 3 then trains with)."""
    from reasoning_lab.stages import curriculum as stage

    script = [{"generic": 2.0}, {"generic": 1.0}, {"generic": 1.3},  # stage 1: baseline, main, extension
              {"gsm8k_simple": 2.0, "generic": 1.0}, {"gsm8k_simple": 1.0, "generic": 1.6},  # stage 2
              {"gsm8k_simple": 0.9, "generic": 1.6}]
    noise = [0.01 * ((7 * i) % 5) for i in range(16)]

    def scripted(model, tokenizer, data_cfg, names):
        levels = script.pop(0) if script else {}
        return {n: [levels.get(n, 1.0) + e for e in noise] for n in names}

    monkeypatch.setattr(stage, "validation_losses", scripted)
    cfg = make_config(*TINY_CURRICULUM, "curriculum.val_limit=0", "curriculum.max_steps=1", "curriculum.extend_steps=1",
                      "curriculum.save_steps=1", "curriculum.max_extra_epochs=1.0", "curriculum.final_eval=false",
                      "curriculum.warmup_ratio=0")
    stage.run(cfg, str(tmp_path))
    s1, s2, s3 = (json.loads((tmp_path / "curriculum" / f"stage_{k}" / "metrics.json").read_text()) for k in (1, 2, 3))
    assert [r["decision"] for r in s1["rounds"]] == ["extend", "advance"]
    assert s1["rounds"][1]["reverted"] and "kept round 0's adapter" in s1["decision"]
    assert s1["val_loss"]["generic"] == pytest.approx(1.0 + sum(noise) / 16, abs=1e-3)
    kept = load_file(tmp_path / "curriculum" / "stage_1" / "adapter_model.safetensors")
    round_0 = load_file(tmp_path / "curriculum" / "stage_1.work" / "round_0" / "adapter_model.safetensors")
    assert all(torch.equal(kept[k], round_0[k]) for k in round_0)
    undone = load_file(tmp_path / "curriculum" / "stage_1.work" / "round_1.work" / "trainer" / "checkpoint-1" /
                       "adapter_model.safetensors")
    assert any(not torch.equal(undone[k], round_0[k]) for k in round_0)  # the extension did move the adapter
    assert s1["rounds"][1]["learning_rate"] == pytest.approx(0.01 * cfg.curriculum.extend_lr_scale)
    assert [r["decision"] for r in s2["rounds"]] == ["extend", "advance"]
    assert "extension budget spent" in s2["decision"] and "forgetting (generic" in s2["decision"]
    assert s2["forgotten"] == ["generic"] and s2["next_replay"] == pytest.approx(0.3)
    assert s3["replay"] == pytest.approx(0.3) and s1["replay"] == s2["replay"] == pytest.approx(0.2)


def test_resume_takes_the_newest_complete_checkpoint_not_a_half_written_one(tmp_path):
    from reasoning_lab.checkpoints import COMPLETE, latest_complete_checkpoint

    for step in (1, 2, 3):
        (tmp_path / f"checkpoint-{step}").mkdir()
    for step in (1, 2):
        (tmp_path / f"checkpoint-{step}" / COMPLETE).write_text(str(step))
    (tmp_path / "checkpoint-10").mkdir()  # numeric order, not text order
    (tmp_path / "checkpoint-10" / COMPLETE).write_text("10")
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    (tmp_path / "checkpoint-10" / COMPLETE).unlink()  # killed while writing checkpoint-10
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert latest_complete_checkpoint(tmp_path / "nothing") is None


def test_the_curriculum_trainer_draws_its_batches_from_the_curriculum_sampler():
    from datasets import Dataset

    from reasoning_lab.sft import sft_arguments
    from reasoning_lab.trl_trainers import OrderedSFTTrainer

    _, model, tokenizer = tiny_model()
    rows = [{"input_ids": [5, 6 + i, 7], "completion_mask": [0, 1, 1]} for i in range(40)]
    difficulties = [i % 4 for i in range(40)]
    sampler = CurriculumSampler(difficulties, 0, 4, 5, "linear", c0=0.25, replay=0.0, seed=1)
    args = sft_arguments("/tmp/unused", sft_settings(batch_size=4, learning_rate=1e-3), max_steps=5, seed=0,
                         report_to="none")
    trainer = OrderedSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer, sampler=sampler)
    drawn = [batch["input_ids"][:, 1].tolist() for batch in trainer.get_train_dataloader()]
    assert drawn == [[6 + i for i in batch] for batch in sampler.batches()]
    assert all(difficulties[i] == 0 for i in next(iter(sampler.batches())))  # the paced start: easiest only


def test_an_extension_that_raised_the_loss_is_undone_and_forgetting_judged_on_the_kept_adapter():
    base = losses(0.0)
    kept, raised = [0.50 + b for b in base], [0.58 + b for b in base]
    earlier_before = {"generic": [1.0 + b for b in base]}
    earlier_kept = {"generic": [1.0 + b for b in base]}  # the kept adapter forgot nothing
    earlier_raised = {"generic": [1.5 + b for b in base]}  # the undone round forgot a lot
    decision = decide(raised, kept, True, earlier_raised, earlier_before, 0.2, Settings, extended_round=0,
                      earlier_previous=earlier_kept)
    assert decision.revert and decision.action == "advance" and decision.forgotten == []
    change = f"validation loss {sum(kept) / len(kept):.3f} -> {sum(raised) / len(raised):.3f} in the extension"
    assert decision.reason == f"{change}: kept round 0's adapter"
    assert decision.next_replay == 0.2
    # the same losses after a main round (nothing to undo): the round stands, and the forgetting counts
    decision = decide(raised, kept, True, earlier_raised, earlier_before, 0.2, Settings)
    assert not decision.revert and decision.forgotten == ["generic"] and decision.next_replay == pytest.approx(0.3)
    # an extension that lowered the loss is kept
    assert not decide(kept, raised, True, earlier_kept, earlier_before, 0.2, Settings, extended_round=0,
                      earlier_previous=earlier_kept).revert


@pytest.mark.parametrize("with_base", [True, False])
def test_the_final_evaluation_reports_the_base_model_unless_told_not_to(tmp_path, monkeypatch, with_base):
    """eval.with_base=false leaves the base model's evaluation out of the curriculum's final evaluation (an
    ablation that compares adapters does not need it); by default it is beside the final numbers."""
    from types import SimpleNamespace

    from reasoning_lab.stages import curriculum as stage

    cfg = make_config(f"eval.with_base={str(with_base).lower()}")
    asked = []
    monkeypatch.setattr(stage, "base_results", lambda *a, **k: asked.append("base") or {"datasets": {"g": {}}})

    def evaluate(model, tokenizer, cfg, budget, label, out_dir):
        (out_dir / "eval_results.json").parent.mkdir(parents=True, exist_ok=True)
        (out_dir / "eval_results.json").write_text(json.dumps({"datasets": {"g": {"accuracy": 0.5}}}))
        return {"datasets": {"g": {"accuracy": 0.5}}}

    monkeypatch.setattr(stage, "evaluate", evaluate)
    monkeypatch.setattr(stage, "record_evaluation", lambda *a, **k: None)
    cur = SimpleNamespace(cfg=cfg, tokenizer=None, cur_dir=tmp_path, wandb_run=None, stages=list(cfg.curriculum.stages))
    metrics = {}
    stage.final_evaluation(cur, object(), "adapter", str(tmp_path), metrics)
    assert metrics["final_eval"] == {"g": {"accuracy": 0.5}}
    assert (asked == ["base"] and "base_eval" in metrics) if with_base else (asked == [] and "base_eval" not in metrics)


@pytest.mark.app
@pytest.mark.slow
def test_faded_curriculum_saves_each_phase_and_both_schedules_record_the_accuracy_curve(tmp_path):
    """curriculum=faded trains one stage of 8 steps over the four stages' sets and saves the adapter at each phase's
    end (steps 2, 4, 6); the curve has a point every 2 steps of the run. With curriculum=stages the curve counts the
    run's steps across the stages."""
    curve = ("curriculum.curve_every=2", "curriculum.curve_limit=2", "curriculum.val_max_new_tokens=4")
    faded = run_cli(*with_overrides(TINY_CURRICULUM, "curriculum=faded", "curriculum.max_steps=8", *curve),
                    f"hydra.run.dir={tmp_path / 'faded'}")
    assert faded.returncode == 0, faded.stderr[-3000:]
    metrics = curriculum_metrics(tmp_path / "faded")
    assert len(metrics["stages"]) == 1 and metrics["stages"][0]["steps"] == 8
    folder = tmp_path / "faded" / "curriculum"
    stage = json.loads((folder / "stage_1" / "metrics.json").read_text())
    assert stage["rounds"][0]["faded"]["boundaries"] == {"warmup_reasoning": 2, "gsm8k_simple": 4, "multi_step": 6,
                                                          "mixed": 8}
    weights = []
    for k, step in ((1, 2), (2, 4), (3, 6)):
        info = json.loads((folder / f"phase_{k}" / "reasoning_lab.json").read_text())
        assert info["stage"] == f"curriculum/phase_{k}" and info["step"] == step
        weights.append(load_file(str(folder / f"phase_{k}" / "adapter_model.safetensors")))
    weights.append(load_file(str(folder / "stage_1" / "adapter_model.safetensors")))
    for before, after in zip(weights, weights[1:]):  # training moved the adapter between the phases' ends
        assert any(not before[key].equal(after[key]) for key in before)
    points = metrics["accuracy_curve"]
    assert [p["step"] for p in points] == [0, 2, 4, 6, 8]
    assert all(len(p["correct"]) == 6 and all(len(v) == 2 for v in p["correct"].values()) for p in points)
    assert (folder / "accuracy_curve.png").read_bytes()[:4] == b"\x89PNG"

    stages = run_cli(*with_overrides(TINY_CURRICULUM, "curriculum.max_steps=2", "curriculum.max_extensions=0",
                                     "curriculum.stage_evals=false", "curriculum.final_eval=false", *curve),
                     f"hydra.run.dir={tmp_path / 'stages'}")
    assert stages.returncode == 0, stages.stderr[-3000:]
    assert [p["step"] for p in curriculum_metrics(tmp_path / "stages")["accuracy_curve"]] == [0, 2, 4, 6, 8]
