"""PPO (reasoning_lab.ppo): GAE and the clipped losses against hand-worked values; a toy task learns."""

import pytest
import torch

from reasoning_lab.ppo import (
    PPO,
    AdaptiveKL,
    gae,
    load_value_head,
    masked_mean,
    policy_loss,
    value_loss,
    whiten,
)
from tests.helpers import make_config, tiny_model


def test_gae_with_lambda_one_gives_monte_carlo_returns():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.6, 0.7]])
    advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert advantages[0].tolist() == pytest.approx([0.5, 0.4, 0.3])
    assert returns[0].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_gae_hand_worked_with_discount_and_padding():
    # deltas: t2 = 1 - 0.7 = 0.3; t1 = 0.9 * 0.7 - 0.6 = 0.03; t0 = 0.9 * 0.6 - 0.5 = 0.04
    # advantages: 0.3; 0.03 + 0.45 * 0.3 = 0.165; 0.04 + 0.45 * 0.165 = 0.11425
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])  # the last position is padding: ignored
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    assert advantages[0].tolist() == pytest.approx([0.11425, 0.165, 0.3, 0.0])
    assert returns[0].tolist() == pytest.approx([0.61425, 0.765, 1.0, 0.0])


def test_clipped_policy_loss_hand_computed():
    ratios = torch.tensor([[1.5, 0.5, 0.5, 3.0]])
    advantages = torch.tensor([[1.0, 1.0, -1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # per token max(-A r, -A clip(r)): -1.2 (clipped), -0.5, 0.8 (clipped); the masked token is ignored
    loss, clipfrac = policy_loss(torch.log(ratios), torch.zeros(1, 4), advantages, mask, cliprange=0.2)
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 0.8) / 3)
    assert clipfrac.item() == pytest.approx(2 / 3)


def test_clipped_value_loss_hand_computed():
    values, old, returns = torch.tensor([[1.0, 0.9]]), torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 1.0]])
    # token 0: clipped value 0.7, errors 1.0 vs 0.49 -> 1.0; token 1: clipped 0.7, errors 0.01 vs 0.09 -> 0.09
    loss, clipfrac = value_loss(values, old, returns, torch.ones(1, 2), cliprange_value=0.2)
    assert loss.item() == pytest.approx(0.5 * (1.0 + 0.09) / 2)
    assert clipfrac.item() == pytest.approx(0.5)


def test_whiten_is_zero_mean_unit_variance_on_the_mask():
    x, mask = torch.tensor([[1.0, 2.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = whiten(x, mask)
    assert w[0, :3].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert (w[0, :3] ** 2).mean().item() == pytest.approx(1.0, rel=1e-4)
    assert w[0, 3].item() == 0.0


def toy_ppo(lr=3e-2, beta=0.0, *extra: str, reward=None):
    """tiny_random with LoRA on the output layer too, rewarded for the share of token ids divisible by 8."""
    torch.manual_seed(0)
    _, model, tokenizer = tiny_model("model.lora.target_modules=[q_proj,v_proj,lm_head]")

    def share_of_multiples_of_8(prompts=None, completions=(), completion_ids=(), **kwargs):
        return [sum(t % 8 == 0 for t in ids) / max(len(ids), 1) for ids in completion_ids]

    settings = make_config("rl=ppo", "rl.prompts_per_step=4", "rl.num_generations=2", "rl.max_completion_length=8",
                           "rl.temperature=1.0", f"rl.ppo.actor_learning_rate={lr}", f"rl.ppo.kl_coef={beta}",
                           "rl.ppo.kl_target=null", "rl.num_iterations=2", "rl.ppo.minibatch_size=4", *extra).rl
    return PPO(model, tokenizer, [reward or share_of_multiples_of_8], [1.0], settings, seed=0)


@pytest.mark.slow
def test_toy_task_mean_reward_rises(tmp_path):
    ppo = toy_ppo()
    rows = [{"prompt": p} for p in ("count to ten", "say something", "hello", "abc")]
    first = ppo.step(rows)
    assert first["kl"] == pytest.approx(0.0, abs=1e-5)  # the reference is the starting policy
    rewards = [first["reward"]] + [ppo.step(rows)["reward"] for _ in range(23)]
    early, late = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert late > early + 0.3 and late > 0.6, rewards
    assert 0 < ppo.step_count == 24

    ppo.save_value_head(tmp_path)
    head = load_value_head(tmp_path, ppo.value_head.summary.in_features)
    assert torch.equal(head.summary.weight, ppo.value_head.summary.weight.cpu())
    assert head.summary.weight.abs().sum() > 0  # the value head trained


def test_reference_adapter_is_frozen_and_not_optimised():
    ppo = toy_ppo()
    ref = [p for n, p in ppo.model.named_parameters() if ".ref." in n]
    assert ref and not any(p.requires_grad for p in ref)
    optimised = {id(p) for p in ppo.trainable}
    assert not any(id(p) in optimised for p in ref)
    assert any(id(p) in optimised for p in ppo.value_head.parameters())


def test_with_beta_the_kl_to_the_reference_grows_while_the_reference_stays_fixed():
    ppo = toy_ppo(beta=0.1)
    ref = {n: p.detach().clone() for n, p in ppo.model.named_parameters() if ".ref." in n}
    rows = [{"prompt": p} for p in ("count to ten", "say something", "hello", "abc")]
    kls = [ppo.step(rows)["kl"] for _ in range(6)]
    assert kls[0] == pytest.approx(0.0, abs=1e-5) and max(kls[1:]) > 1e-3, kls  # the policy moved away
    for name, p in ppo.model.named_parameters():
        if name in ref:
            assert torch.equal(p, ref[name]), name  # the reference did not


def test_an_early_eos_ends_the_completion_there_and_gets_the_reward_on_its_last_real_token():
    """Row 0 stops after 3 tokens (its EOS, then padding), row 1 runs to the 8-token cap. With gamma = lam = 1
    and beta = 0 the return at every real token is the completion's score, and nothing after its end counts."""
    seen = {}

    def score_by_length(prompts=None, completions=(), completion_ids=(), **kwargs):
        seen["ids"] = [list(ids) for ids in completion_ids]
        return [float(len(ids)) for ids in completion_ids]

    ppo = toy_ppo(3e-2, 0.0, "rl.ppo.gamma=1.0", "rl.ppo.lam_actor=1.0", "rl.prompts_per_step=2", "rl.ppo.minibatch_size=2",
                  reward=score_by_length)
    eos, pad = ppo.eos_ids[0], ppo.pad
    early = [11, 12, eos] + [pad] * 5
    full = [21, 22, 23, 24, 25, 26, 27, 28]

    def generate(input_ids, **kwargs):
        return torch.cat([input_ids, torch.tensor([early, full], device=input_ids.device)], dim=1)

    ppo.model.generate = generate
    batch = ppo.rollout([{"prompt": "hello"}])
    assert batch["mask"].tolist() == [[1.0, 1.0, 1.0, 0, 0, 0, 0, 0], [1.0] * 8]
    assert seen["ids"] == [[11, 12, eos], full]  # the reward reads the completion up to and with its EOS
    assert batch["ended"].tolist() == [True, False] and batch["lengths"].tolist() == [3.0, 8.0]
    assert batch["returns"][0].tolist() == pytest.approx([3.0, 3.0, 3.0, 0, 0, 0, 0, 0])
    assert batch["returns"][1].tolist() == pytest.approx([8.0] * 8)
    assert batch["advantages"][0, 3:].abs().sum().item() == 0.0  # no advantage after the end
    assert batch["kl"].tolist() == pytest.approx([0.0, 0.0], abs=1e-5)


def test_the_training_state_round_trips_through_safetensors_and_json(tmp_path):
    """What a killed PPO stage resumes from: no pickle, and the resumed trainer takes the same next step."""
    from safetensors.torch import load_file

    from reasoning_lab.ppo import load_state, save_state
    from reasoning_lab.prompt_selection import PromptSampler

    rows = [{"prompt": p} for p in ("count to ten", "say something")]
    ppo = toy_ppo()
    ppo.step(rows)
    sampler = PromptSampler(2, 1, 1, 1, seed=0)
    sampler.observe([0], [1.0])
    save_state(ppo, [{"step": 1}], sampler, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.safetensors"]
    assert any(key.startswith("optimizer.") for key in load_file(str(tmp_path / "state.safetensors")))
    expected = ppo.step(rows)

    resumed, resumed_sampler = toy_ppo(), PromptSampler(2, 1, 1, 1, seed=0)
    assert load_state(resumed, tmp_path, resumed_sampler) == [{"step": 1}] and resumed.step_count == 1
    assert resumed_sampler.observations == [[0, [0], [1.0]]]  # what the prompt sampler had observed
    got = resumed.step(rows)
    assert got["reward"] == expected["reward"] and got["policy_loss"] == pytest.approx(expected["policy_loss"])
    for a, b in zip(ppo.trainable, resumed.trainable):
        assert torch.equal(a, b)
    assert load_state(toy_ppo(), tmp_path / "none", PromptSampler(2, 1, 1, 1, seed=0)) == []


def test_critic_warm_up_lowers_the_value_loss_with_the_policy_frozen():
    """On one rollout batch: the value head's bias starts at the batch's mean reward, and the value-only passes
    lower the value loss further; the policy's weights do not move."""
    ppo = toy_ppo(3e-2, 0.0, "rl.ppo.value_init=zero", "rl.ppo.critic_warmup_passes=20",
                  "rl.ppo.critic_learning_rate=1e-2")
    policy = {n: p.detach().clone() for n, p in ppo.model.named_parameters() if p.requires_grad}
    batch = ppo.rollout([{"prompt": p} for p in ("count to ten", "say something", "hello", "abc")])
    zero_loss = 0.5 * masked_mean((batch["old_values"] - batch["returns"]) ** 2, batch["mask"]).item()
    warmed = ppo.warm_up_critic(batch)["critic_warmup"]
    assert warmed["value_loss_before"] == pytest.approx(zero_loss)  # value_init=zero: nothing set before
    assert warmed["value_loss_after"] < 0.7 * warmed["value_loss_before"], warmed
    for name, p in ppo.model.named_parameters():
        if name in policy:
            assert torch.equal(p, policy[name]), name


def test_the_value_head_starts_at_the_first_batch_s_mean_reward():
    ppo = toy_ppo(3e-2, 0.0, "rl.ppo.critic_warmup_passes=0")
    batch = ppo.warm_up_critic(ppo.rollout([{"prompt": p} for p in ("count to ten", "hello")]))
    real = batch["mask"].bool()
    assert batch["old_values"][real].mean().item() == pytest.approx(batch["scores"].mean().item(), abs=1e-5)


def test_the_adaptive_kl_coefficient_rises_above_the_target_and_falls_below_it():
    kl = AdaptiveKL(0.1, target=2.0)
    assert kl.update(5.0) == pytest.approx(0.2) and kl.update(3.1) == pytest.approx(0.4)  # above 1.5 x 2
    assert kl.update(2.5) == pytest.approx(0.4)  # within the band: unchanged
    assert kl.update(1.0) == pytest.approx(0.2) and kl.update(0.0) == pytest.approx(0.1)  # below 2 / 1.5
    fixed = AdaptiveKL(0.1, target=None)
    assert fixed.update(100.0) == 0.1


def test_the_update_passes_stop_once_the_kl_bound_is_exceeded():
    rows = [{"prompt": p} for p in ("count to ten", "say something", "hello", "abc")]
    bounded = toy_ppo(3e-1, 0.0, "rl.ppo.max_approx_kl=1e-6", "rl.ppo.minibatch_size=2", "rl.num_iterations=3")
    logs = bounded.step(rows)
    assert logs["stopped_early"] and logs["minibatches"] < 12 and logs["approx_kl"] > 0
    free = toy_ppo(3e-1, 0.0, "rl.ppo.max_approx_kl=null", "rl.ppo.minibatch_size=2", "rl.num_iterations=3")
    logs = free.step(rows)
    assert not logs["stopped_early"] and logs["minibatches"] == 12  # 8 rollouts / 2 a minibatch x 3 passes
    assert logs["ratio_max"] >= logs["ratio_mean"] > 0 and "explained_variance" in logs and "kl_coef" in logs
