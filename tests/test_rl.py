"""RL stage: AdaRFT arithmetic, prompt order, and `stage=rl` with grpo, rloo and ppo on tiny_random."""

import json
import math

import pytest
import torch

from reasoning_lab.prompt_selection import PromptSampler
from tests.helpers import TINY_RL, make_config, run_cli
from tests.helpers import finished as finished_stage
from tests.wandb_files import find_wandb_files, read_wandb_file


def finished(run_dir, result):
    return finished_stage(run_dir, result, "rl")




@pytest.mark.app
@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_rl_stage_trains_logs_saves_and_evaluates(tmp_path, algorithm, tiny_warmup):
    run_dir = tmp_path / "run"
    metrics = finished(run_dir, run_cli(f"rl={algorithm}", *TINY_RL, "logger=wandb", f"checkpoint.init_from={tiny_warmup}/warmup/checkpoint",
                                        f"hydra.run.dir={run_dir}"))
    assert metrics["init_from"] == f"{tiny_warmup}/warmup/checkpoint"
    assert metrics["algorithm"] == algorithm
    train = metrics["train"]
    assert train["steps"] == 2 and len(train["history"]) == 2
    assert all(math.isfinite(h["reward"]) for h in train["history"])
    assert 0 < train["generate_share"] < 1
    assert [e["step"] for e in metrics["eval_history"]] == [0, 1, 2]  # before, every step, after
    assert metrics["before"].keys() == metrics["after"].keys() == {"synthetic_gsm8k"}
    for when in ("before", "after"):  # rl.final_k samples beside greedy: voting, pass@k, the samples' accuracy
        assert {"accuracy", "maj@2", "pass@1", "pass@2"} <= metrics[when]["synthetic_gsm8k"].keys()
    between = metrics["eval_history"][1]["datasets"]["synthetic_gsm8k"]  # between steps: greedy only, smaller
    assert between["n"] == 2 and "maj@2" not in between and "accuracy_direct" not in between
    if algorithm == "ppo":  # the stable-PPO logs of every step
        assert {"kl_coef", "ratio_mean", "ratio_max", "clipfrac", "value_loss", "explained_variance",
                "minibatches"} <= train["history"][0].keys()
        assert "critic_warmup/value_loss_after" in train["history"][0]

    checkpoint = run_dir / "rl" / "checkpoint"
    assert (checkpoint / "adapter_model.safetensors").exists()
    assert not (checkpoint / "ref").exists()  # the frozen reference is not part of the policy
    assert (checkpoint / "value_head.safetensors").exists() == (algorithm == "ppo")
    assert json.loads((checkpoint / "reasoning_lab.json").read_text())["algorithm"] == algorithm
    assert "| dataset | rl/before | rl |" in (run_dir / "report.md").read_text()
    (comparison,) = metrics["compare"]  # before and after on the same held-out problems, paired
    assert comparison["dataset"] == "synthetic_gsm8k" and comparison["n"] == 3  # rl.eval_limit
    assert comparison["accuracy_a"] == metrics["before"]["synthetic_gsm8k"]["accuracy"]
    assert comparison["accuracy_b"] == metrics["after"]["synthetic_gsm8k"]["accuracy"]
    assert (run_dir / "rl" / "compare" / "compare.md").read_text().count("| synthetic_gsm8k |") == 1
    table = metrics["reward_table"]  # 3 problems x (greedy + 2 samples)
    assert table["n"] == 9 and sum(o["share"] for o in table["outcomes"].values()) == pytest.approx(1.0)
    assert "| format |" in (run_dir / "rl" / "rewards.md").read_text()
    curves = json.loads((run_dir / "rl" / "curves.json").read_text())
    assert len(curves["history"]) == 2 and [h["step"] for h in curves["heldout"]] == [0, 1, 2]
    rollouts = [json.loads(line) for line in (run_dir / "rl" / "rollouts.jsonl").read_text().splitlines()]
    per_step = metrics["settings"]["prompts_per_step"] * metrics["settings"]["num_generations"]
    assert [row["step"] for row in rollouts] == [1] * per_step + [2] * per_step  # rl.log_rollouts_every=1
    columns = {"step", "prompt", "completion", "reward", "advantage"} | {s["name"] for s in metrics["settings"]["rewards"]}
    assert set(rollouts[0]) == columns | ({"value"} if algorithm == "ppo" else {"kept"})
    weights = {s["name"]: s["weight"] for s in metrics["settings"]["rewards"]}
    assert all(row["reward"] == pytest.approx(sum(w * row[name] for name, w in weights.items())) for row in rollouts)
    assert all("user:" in row["prompt"] and isinstance(row["completion"], str) for row in rollouts)

    (wandb_file,) = find_wandb_files(run_dir)
    logged = read_wandb_file(wandb_file)
    rewards = [h for h in logged["history"] if "train/reward" in h]
    assert len(rewards) == 2
    heldout = [h for h in logged["history"] if "rl/heldout/synthetic_gsm8k/accuracy" in h]
    assert [h["train/global_step"] for h in heldout] == [0, 1, 2]  # one curve over the steps
    assert logged["summary"]["rl/status"] == "completed"
    tables = sorted((wandb_file.parent / "files" / "media" / "table" / "rl").glob("rollouts_*.table.json"))
    assert len(tables) == 2  # the W&B table of each step: the same rows as rollouts.jsonl
    table = json.loads(tables[0].read_text())
    assert set(table["columns"]) == set(rollouts[0]) and len(table["data"]) == per_step

    eval_dir = tmp_path / "eval"
    result = run_cli("stage=eval", "model=tiny_random", f"checkpoint.eval={checkpoint}", "eval.limit=2", "eval.k=2",
                     "eval.max_new_tokens=4", "eval.direct_limit=1", "eval.datasets=[synthetic_gsm8k]", "logger=none",
                     "data.synthetic_size=48", f"hydra.run.dir={eval_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((eval_dir / "eval" / "eval_results.json").read_text())
    assert results["checkpoint"] == str(checkpoint) and results["datasets"]["synthetic_gsm8k"]["n"] == 2


@pytest.mark.app
@pytest.mark.slow
def test_adarft_prompt_sampling_and_dropped_groups_in_grpo(tmp_path, tiny_warmup):
    run_dir = tmp_path / "run"
    metrics = finished(run_dir, run_cli(*TINY_RL, f"checkpoint.init_from={tiny_warmup}/warmup/checkpoint",
                                        "rl.prompt_sampling=adarft", "rl.adarft.start_difficulty=0.3",
                                        "rl.drop_uniform_groups=true", "rl.eval_every=0", "logger=none",
                                        f"hydra.run.dir={run_dir}"))
    targets = [h["target"] for h in metrics["train"]["prompt_sampling"]]
    assert len(targets) == 2 and targets[0] < 0.3  # tiny_random earns nothing: the target eases
    assert all("dropped_uniform_share" in h for h in metrics["train"]["history"])
    # every step logs its prompts' pass rate and the share of groups without signal (all wrong here)
    assert all(h["prompt_sampling/pass_rate"] == 0 and h["prompt_sampling/zero_variance_share"] == 1
               for h in metrics["train"]["history"])
    assert [e["step"] for e in metrics["eval_history"]] == [0, 2]


@pytest.mark.parametrize("override, message", [
    ("rl.rewards=[{name: nope, weight: 1.0}]", "unknown reward 'nope'"),
    ("rl.num_generations=1", "rl.num_generations=1"),
    ("rl.grpo.loss_type=magic", "rl.grpo.loss_type='magic' is not one of"),
    ("rl.prompt_sampling=hardest", "rl.prompt_sampling='hardest' is not one of"),
    ("rl.steps_per_generation=3", "rl.steps_per_generation=3 does not divide the 16 completions"),
    ("rl.uniform_by=format", "rl.uniform_by='format' is not one of"),
])
@pytest.mark.app
def test_rl_config_mistakes_are_one_line(override, message):
    result = run_cli("stage=rl", "model=tiny_random", override)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.app
def test_prompt_sampling_without_the_correctness_reward_is_one_line():
    result = run_cli("stage=rl", "model=tiny_random", "rl.prompt_sampling=learnability",
                     "rl.rewards=[{name: format, weight: 1.0}]")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "rl.prompt_sampling=learnability reads each prompt's pass rate from the correctness reward" in result.stderr


@pytest.mark.parametrize("scaling", ["group", "batch", "none"])
def test_grpo_advantage_scaling_reaches_trl(tmp_path, scaling):
    """`rl.grpo.scale_rewards`: each group's std (TRL's default), the batch's (Lite PPO) or none (Dr. GRPO)."""
    from reasoning_lab.stages.rl import trl_arguments
    from tests.helpers import make_config

    cfg = make_config("rl=grpo", *[a for a in TINY_RL if a != "stage=rl"], f"rl.grpo.scale_rewards={scaling}")
    assert trl_arguments(cfg, tmp_path, "none").scale_rewards == scaling


def test_prompt_batches_are_endless_and_refuse_too_few_prompts():
    from reasoning_lab.errors import ReasoningLabError
    from reasoning_lab.ppo import prompt_batches
    from reasoning_lab.stages.rl import prompt_rows
    from tests.helpers import make_config

    rows = [{"i": i} for i in range(5)]
    batches = prompt_batches(rows, PromptSampler(len(rows), 2, 1, 1, seed=0))
    seen = [next(batches) for _ in range(6)]  # 2 batches per pass, so three seeded passes
    assert all(len(b) == 2 for b in seen)
    assert len({row["i"] for b in seen[:2] for row in b}) == 4  # no repeat within a pass
    cfg = make_config("stage=rl", "rl.prompt_sets=[generic]", "data.generic.size_per_level=8", "rl.prompts_per_step=1000")
    with pytest.raises(ReasoningLabError, match="fewer than rl.prompts_per_step=1000"):
        prompt_rows(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_a_reward_that_varies_within_groups_moves_the_adapter_and_uniform_groups_are_dropped(tmp_path, algorithm):
    """tiny_random earns the same (zero) reward everywhere, so every advantage is 0 and nothing trains; a
    reward on the sampled token ids differs within a group, so the policy must move. A reward that is uniform in the groups
    of every other prompt checks `rl.drop_uniform_groups`: those completions leave the loss, and are counted."""
    from reasoning_lab.model import load_model, load_tokenizer
    from reasoning_lab.stages.rl import Prompts, prompt_rows, trl_arguments, trl_trainer
    from reasoning_lab.tracking import adapter_digest
    from tests.helpers import make_config

    cfg = make_config(f"rl={algorithm}", *[a for a in TINY_RL if a != "stage=rl"], "rl.learning_rate=0.05",
                      "rl.drop_uniform_groups=true", "rl.temperature=1.5", "rl.beta=0.0", "rl.uniform_by=reward",
                      "rl.rewards=[{name: correctness, weight: 1.0}]")
    model, tokenizer = load_model(cfg.model), load_tokenizer(cfg.model)
    rows = prompt_rows(cfg)

    def varied(completions, prompts=None, completion_ids=None, **kwargs):  # uniform for all but the first prompt
        first = str(prompts[0])
        return [float(sum(ids) % 97) if str(p) == first else 1.0 for ids, p in zip(completion_ids, prompts)]

    sampler = PromptSampler(len(rows), cfg.rl.prompts_per_step, cfg.rl.num_generations, 1, cfg.seed, None)
    trainer = trl_trainer(cfg, model, tokenizer, Prompts(rows, [varied], sampler), trl_arguments(cfg, tmp_path, "none"),
                          [])
    before = adapter_digest(trainer.model)
    trainer.train()
    assert adapter_digest(trainer.model) != before
    shares = [h["dropped_uniform_share"] for h in trainer.state.log_history if "dropped_uniform_share" in h]
    assert shares and all(share == pytest.approx(0.5) for share in shares)  # one prompt of two is uniform


def test_groups_uniform_in_correctness_get_zero_advantage_per_completion_and_per_token():
    from reasoning_lab.trl_trainers import zero_uniform

    correct = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])  # groups of 2: all wrong, mixed, all right
    advantages = torch.tensor([0.7, -0.7, 1.0, -1.0, 0.2, -0.2])
    assert zero_uniform(advantages, correct, 2).tolist() == [0.0, 0.0, 1.0, -1.0, 0.0, 0.0]
    per_token = advantages[:, None].expand(6, 3)
    assert zero_uniform(per_token, correct, 2).tolist() == [[v] * 3 for v in [0.0, 0.0, 1.0, -1.0, 0.0, 0.0]]
    assert zero_uniform(advantages, correct, 3).tolist() == advantages.tolist()  # no group of 3 is uniform


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_uniform_by_correctness_two_steps_per_generation_and_clip_higher(tmp_path, algorithm):
    """`rl.uniform_by=correctness`: a group the correctness reward judges all wrong carries no signal, even where a
    second reward differs inside it (those completions leave the loss under rl.drop_uniform_groups). With
    `rl.steps_per_generation=2`, one generation feeds two optimizer steps; `rl.epsilon_high` reaches TRL."""
    from reasoning_lab.model import load_model, load_tokenizer
    from reasoning_lab.prompt_selection import CorrectnessObserver
    from reasoning_lab.rollouts import RolloutLog
    from reasoning_lab.stages.rl import Prompts, prompt_rows, prompt_sampler, trl_arguments, trl_trainer
    from tests.helpers import make_config

    cfg = make_config(f"rl={algorithm}", *[a for a in TINY_RL if a != "stage=rl"], "rl.max_steps=4",
                      "rl.steps_per_generation=2", "rl.epsilon_high=0.28", "rl.uniform_by=correctness",
                      "rl.drop_uniform_groups=true", "rl.temperature=1.5", "rl.beta=0.0",
                      "rl.rewards=[{name: correctness, weight: 1.0}, {name: format, weight: 0.2}]")
    model, tokenizer = load_model(cfg.model), load_tokenizer(cfg.model)
    rows = prompt_rows(cfg)
    wrong = {str(row["prompt"]) for row in rows[::2]}

    def correctness(completions, prompts=None, **kwargs):  # every other prompt all wrong; the rest right, wrong, ...
        return [0.0 if str(p) in wrong else float(i % 2 == 0) for i, p in enumerate(prompts)]

    def varied(completions, completion_ids=None, **kwargs):  # differs inside every group
        return [float(i) for i in range(len(completion_ids))]

    sampler = prompt_sampler(cfg, rows)
    args = trl_arguments(cfg, tmp_path, "none")
    assert (args.steps_per_generation, args.per_device_train_batch_size, args.epsilon_high) == (2, 2, 0.28)
    log = RolloutLog(1, tmp_path / "rollouts.jsonl")
    trainer = trl_trainer(cfg, model, tokenizer, Prompts(rows, [CorrectnessObserver(correctness, sampler), varied],
                                                         sampler), args, [log])
    trainer.train()
    # the rollout table shows the gate: an all-wrong group trains with advantage 0 though `varied` differs in it
    rollouts = [json.loads(line) for line in (tmp_path / "rollouts.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rollouts] == [1] * 4 + [3] * 4  # a generation every 2 steps
    for start in range(0, len(rollouts), cfg.rl.num_generations):
        group = rollouts[start : start + cfg.rl.num_generations]
        assert len({row["varied"] for row in group}) > 1
        if len({row["correctness"] for row in group}) == 1:
            assert all(row["advantage"] == 0 for row in group)
        else:
            assert any(row["advantage"] != 0 for row in group)
    generations = [correct for _, _, correct in sampler.observations]  # the correctness verdicts of each generation
    assert len(generations) == 2 and all(len(g) == 4 for g in generations)  # 4 steps, a generation every 2
    n = cfg.rl.num_generations
    expected = [sum(len(set(g[i : i + n])) == 1 for i in range(0, len(g), n)) / (len(g) // n) for g in generations]
    assert 0 < sum(expected) < len(expected)  # all-wrong groups were drawn, and groups with signal
    shares = [h["dropped_uniform_share"] for h in trainer.state.log_history if "dropped_uniform_share" in h]
    assert shares == pytest.approx(expected)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_dynamic_sampling_refills_the_batch_with_groups_that_carry_signal(tmp_path, algorithm):
    """A reward that is uniform for every other training prompt: with rl.dynamic_sampling those groups are
    replaced by fresh prompts, so every group the loss sees carries signal, and the refills are counted."""
    from reasoning_lab.model import load_model, load_tokenizer
    from reasoning_lab.rollouts import RolloutLog
    from reasoning_lab.stages.rl import Prompts, prompt_rows, trl_arguments, trl_trainer
    from tests.helpers import make_config

    cfg = make_config(f"rl={algorithm}", *[a for a in TINY_RL if a != "stage=rl"], "rl.max_steps=3",
                      "rl.prompts_per_step=4", "rl.dynamic_sampling.enable=true", "rl.dynamic_sampling.max_refill_rounds=8", "rl.temperature=1.5",
                      "rl.beta=0.0", "rl.uniform_by=reward", "rl.rewards=[{name: correctness, weight: 1.0}]")
    model, tokenizer = load_model(cfg.model), load_tokenizer(cfg.model)
    rows = prompt_rows(cfg)
    uniform = {str(row["prompt"]) for row in rows[::2]}
    seen = []

    def half_uniform(completions, prompts=None, completion_ids=None, **kwargs):
        seen.extend(str(p) in uniform for p in prompts)
        return [1.0 if str(p) in uniform else float(sum(ids) % 997) for ids, p in zip(completion_ids, prompts)]

    sampler = PromptSampler(len(rows), cfg.rl.prompts_per_step, cfg.rl.num_generations, 1, cfg.seed, None)
    log = RolloutLog(2, tmp_path / "rollouts.jsonl")
    trainer = trl_trainer(cfg, model, tokenizer, Prompts(rows, [half_uniform], sampler),
                          trl_arguments(cfg, tmp_path, "none"), [log])
    trainer.train()
    rollouts = [json.loads(line) for line in (tmp_path / "rollouts.jsonl").read_text().splitlines()]
    assert {row["step"] for row in rollouts} == {2}  # rl.log_rollouts_every=2 of 3 steps
    kept = [row for row in rollouts if row["kept"]]  # what the loss saw, beside the groups replaced
    assert len(kept) == cfg.rl.prompts_per_step * cfg.rl.num_generations < len(rollouts)
    assert all(row["half_uniform"] == 1.0 for row in rollouts if not row["kept"])
    logs = [h for h in trainer.state.log_history if "dynamic_sampling/filtered_share" in h]
    assert len(logs) == 3
    assert all(h["dropped_uniform_share"] == 0 for h in logs)  # the batch the loss saw: only groups with signal
    assert all(0 < h["dynamic_sampling/filtered_share"] < 1 for h in logs)
    assert all(h["dynamic_sampling/extra_rounds"] >= 1 for h in logs)
    assert all(h["dynamic_sampling/generations"] > 4 * 2 for h in logs)
    assert 0 < sum(seen) < len(seen)  # uniform prompts were drawn, and then replaced


@pytest.mark.app
@pytest.mark.slow
def test_killed_ppo_stage_resumes_to_the_same_weights(tmp_path, tiny_warmup):
    """SIGKILL after PPO's state at step 2 is on disk: the rerun continues from the newest saved state and ends
    with the adapter and value head of an uninterrupted run, bit for bit; a finished stage is not trained again."""
    import torch
    from safetensors.torch import load_file

    args = ["rl=ppo", *TINY_RL, f"checkpoint.init_from={tiny_warmup}/warmup/checkpoint", "rl.max_steps=6", "rl.save_steps=2", "rl.eval_every=0", "rl.learning_rate=0.01",
            "logger=none"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    finished(clean, run_cli(*args, f"hydra.run.dir={clean}"))
    stopped = run_cli(*args, f"hydra.run.dir={killed}",  # SIGKILL right after PPO's state at step 2 is saved
                      env={"REASONING_LAB_STOP_AFTER": "ppo_state/step-2", "REASONING_LAB_STOP_SIGNAL": "KILL"})
    assert stopped.returncode == -9 and (killed / "rl" / "ppo_state" / "state.json").exists()
    assert not (killed / "rl" / "checkpoint").exists()

    resumed = run_cli(*args, f"hydra.run.dir={killed}")
    metrics = finished(killed, resumed)
    assert "resuming PPO at step" in resumed.stdout + resumed.stderr and metrics["train"]["steps"] == 6
    for name in ("adapter_model.safetensors", "value_head.safetensors"):
        a, b = load_file(clean / "rl" / "checkpoint" / name), load_file(killed / "rl" / "checkpoint" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    again = run_cli(*args, f"hydra.run.dir={killed}")
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["uniform", "learnability"])
def test_grpo_interrupted_after_a_checkpoint_resumes_to_the_same_adapter(tmp_path, sampling):
    """GRPO (TRL) with a reward that varies within groups, so the adapter moves: stopped at step 3, after the
    complete checkpoint of step 2, and resumed from it, it ends where an uninterrupted run ends; with learnability
    sampling the resumed run draws the same prompts (the sampler's observations come back with the checkpoint)."""
    from transformers import TrainerCallback, set_seed

    from reasoning_lab.callbacks import MarkComplete
    from reasoning_lab.checkpoints import latest_complete_checkpoint, train_resuming
    from reasoning_lab.model import load_model, load_tokenizer
    from reasoning_lab.prompt_selection import CorrectnessObserver
    from reasoning_lab.stages.rl import Prompts, prompt_rows, prompt_sampler, trl_arguments, trl_trainer
    from reasoning_lab.tracking import adapter_digest
    from reasoning_lab.trl_trainers import PromptFeedback
    from tests.helpers import make_config

    cfg = make_config(*[a for a in TINY_RL if a != "stage=rl"], "rl.max_steps=4", "rl.save_steps=2",
                      "rl.learning_rate=0.05", "rl.temperature=1.5", "rl.beta=0.0",
                      "rl.rewards=[{name: correctness, weight: 1.0}]", f"rl.prompt_sampling={sampling}")
    tokenizer = load_tokenizer(cfg.model)
    rows = prompt_rows(cfg)

    def correctness(completions, completion_ids=None, **kwargs):  # right or wrong by the tokens drawn
        return [float(sum(ids) % 2) for ids in completion_ids]

    class Stop(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    def trainer(out, callbacks):
        set_seed(cfg.seed)  # the same fresh adapters each time
        sampler = prompt_sampler(cfg, rows)
        prompts = Prompts(rows, [CorrectnessObserver(correctness, sampler)], sampler)
        made = trl_trainer(cfg, load_model(cfg.model), tokenizer, prompts, trl_arguments(cfg, out, "none"),
                           [PromptFeedback(sampler), MarkComplete(), *callbacks])
        return made, sampler

    clean, clean_sampler = trainer(tmp_path / "clean", [])
    start = adapter_digest(clean.model)
    clean.train()
    assert adapter_digest(clean.model) != start
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "killed", [Stop()])[0].train()
    resume = latest_complete_checkpoint(tmp_path / "killed" / "trainer")
    assert resume is not None and resume.name == "checkpoint-2"
    resumed, resumed_sampler = trainer(tmp_path / "killed", [])
    assert train_resuming(resumed, tmp_path / "killed" / "trainer")[1] == resume  # the sampler's state put back too
    assert adapter_digest(resumed.model) == adapter_digest(clean.model)
    assert resumed_sampler.observations == clean_sampler.observations  # the same prompts, the same answers
    if sampling == "learnability":
        assert len({tuple(o[1]) for o in clean_sampler.observations}) > 1


def test_rl_evaluates_the_held_out_problems_of_what_it_trains_on():
    from reasoning_lab.stages.rl import held_out_sets

    cfg = make_config("stage=rl")
    assert held_out_sets(cfg.rl, cfg.data) == ["generic", "synthetic_gsm8k", "synthetic_aqua", "synthetic_strategyqa"]
    real = make_config("stage=rl", "data=real", "rl.prompt_sets=[gsm8k,gsm8k_simple,aqua]")
    assert held_out_sets(real.rl, real.data) == ["gsm8k", "aqua"]  # a subset of a source is its source, once
    chosen = make_config("stage=rl", "rl.eval_sets=[generic]")
    assert held_out_sets(chosen.rl, chosen.data) == ["generic"]

