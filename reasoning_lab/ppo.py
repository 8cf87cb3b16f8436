"""PPO with a value head for a LoRA policy, on verifiable rewards.

TRL removed `PPOTrainer` and `AutoModelForCausalLMWithValueHead`, so this module implements PPO in
the form of Ouyang et al. 2022 / Huang et al. 2024 ("The N+ implementation details of RLHF with PPO"), with the
settings that keep it stable on long reasoning completions (VC-PPO, Yuan et al. 2025; verl's defaults):

  rollout:  sample completions with `generate` -> score them with the reward functions
            -> log-probs of the policy (old) and of the reference policy, one pass each
  critic:   values from the value head; on the first batch its bias starts at the batch's mean reward and
            `critic_warmup_passes` value-only passes fit it with the policy frozen (VC-PPO's value pre-training)
  rewards:  per token -kl_coef * (log pi_old - log pi_ref); the verifiable reward is added at the last token;
            kl_coef adapts to `kl_target` (x2 above 1.5 x target, /2 below target / 1.5: Schulman et al. 2017)
  GAE:      advantages with lambda_actor, value targets with lambda_critic (1.0: no reward decay)
  update:   `epochs` passes over the rollouts in shuffled minibatches: clipped policy loss on advantages whitened
            per minibatch + vf_coef * clipped value loss, gradient clipping, AdamW (the LoRA policy and the value
            head at their own learning rates); the passes stop early once a minibatch's approximate KL to the
            rollout policy exceeds `max_approx_kl`

`train` runs the steps: prompt batches from reasoning_lab.prompt_selection.PromptSampler, a log line per step, the
held-out evaluation every `rl.eval_every` steps, and the resumable state (`save_state`/`load_state`, no pickle).

The value head is a linear layer on the last hidden state of the shared backbone (the LoRA policy).
The reference policy is the policy as RL found it: a frozen copy of the starting adapter (the same
as the adapters disabled when they are fresh). Logs per step: reward, KL to the reference and its coefficient,
ratio mean and max, clip fractions, value loss, explained variance, entropy, minibatches run, and the seconds
spent generating vs updating; the rollouts, a row each (`rollout_rows`: the advantage before whitening, the
critic's value of the prompt), every `rl.log_rollouts_every` steps (reasoning_lab.rollouts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from trl.trainer.utils import use_adapter

from reasoning_lab.decoding import left_pad
from reasoning_lab.files import build_once, read_json, stop_if_asked, write_json
from reasoning_lab.prompt_selection import PromptSampler, step_numbers
from reasoning_lab.rollouts import RolloutLog, as_text
from reasoning_lab.timing import phase

log = logging.getLogger(__name__)
VALUE_HEAD_FILE = "value_head.safetensors"
REF = "ref"
# PPO's training state, for resuming: tensors in safetensors, the rest (history, step count, RNG states) in JSON
STATE_TENSORS, STATE_FILE = "state.safetensors", "state.json"


class ValueHead(nn.Module):
    """Scalar value per position from the backbone's last hidden state (starts at zero)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


# ------------------------------------------------------------------------------------------------
# The algorithm's arithmetic, on (batch, completion tokens) tensors with a 0/1 mask
# ------------------------------------------------------------------------------------------------

def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return masked_mean((x - masked_mean(x, mask)) ** 2, mask)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x - masked_mean(x, mask)) * torch.rsqrt(masked_var(x, mask) + 1e-8) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over each completion; positions after its end are masked out.
    Returns (advantages, returns), returns = advantages + values."""
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate objective (as a loss) and the share of tokens where the clip was active."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    return masked_mean(torch.maximum(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss 0.5 * max((V - R)^2, (V_clipped - R)^2) and the clipped share."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_error, clipped_error = (values - returns) ** 2, (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    return loss, masked_mean((clipped_error > unclipped_error).float(), mask)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    variance = masked_var(returns, mask)
    return float(1.0 - masked_var(returns - values, mask) / variance) if variance > 0 else 0.0


class AdaptiveKL:
    """The KL coefficient of the per-token penalty: fixed when `target` is None, else doubled when the measured KL to
    the reference (nats per completion) is above 1.5 x target and halved below target / 1.5 (Schulman et al. 2017,
    the adaptive-penalty variant of PPO)."""

    def __init__(self, coef: float, target: float | None):
        self.coef, self.target = coef, target

    def update(self, kl: float) -> float:
        if self.target is not None:
            if kl > 1.5 * self.target:
                self.coef *= 2.0
            elif kl < self.target / 1.5:
                self.coef /= 2.0
        return self.coef


# ------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------

class PPO:
    """PPO on a peft model. `reward_funcs` have TRL's signature; `rows` carry a `prompt` (chat
    messages or text) plus the columns the rewards read (e.g. `answer`, `kind`). `settings` is the `rl`
    config (reasoning_lab.config.RLConfig): num_generations, max_completion_length, temperature, top_p,
    num_iterations (epochs), epsilon (policy clip), and under `ppo` (reasoning_lab.config.PPOSettings) the rest."""

    def __init__(self, model, tokenizer, reward_funcs: list[Callable], reward_weights: list[float],
                 settings, seed: int = 0, value_head: ValueHead | None = None):
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.reward_funcs, self.reward_weights = reward_funcs, reward_weights
        self.device = next(model.parameters()).device
        self.value_head = (value_head or ValueHead(model.config.get_text_config().hidden_size)).to(self.device)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        eos = model.generation_config.eos_token_id
        self.eos_ids = sorted({tokenizer.eos_token_id, *([eos] if isinstance(eos, int) else (eos or []))})
        # the reference policy: a frozen copy of the adapter RL starts from
        model.add_adapter(REF, model.peft_config["default"])
        for name, param in model.named_parameters():
            if f".{REF}." in name:
                param.data.copy_(model.get_parameter(name.replace(f".{REF}.", ".default.")).data)
                param.requires_grad_(False)
        policy = [p for n, p in model.named_parameters() if p.requires_grad and f".{REF}." not in n]
        self.trainable = policy + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW([
            {"params": policy, "lr": settings.ppo.actor_learning_rate},
            {"params": list(self.value_head.parameters()), "lr": settings.ppo.critic_learning_rate}])
        self.kl = AdaptiveKL(settings.ppo.kl_coef, settings.ppo.kl_target)
        self.generator = torch.Generator().manual_seed(seed)
        self.step_count = 0
        self.rows: list[dict] = []  # the last step's rollouts (rollout_rows)

    # -- rollout ---------------------------------------------------------------------------------
    def encode(self, prompt) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer(prompt)["input_ids"]
        return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"]

    def forward(self, input_ids, attention_mask, prompt_width: int, with_values: bool = True):
        """Per-token log-probs of the completion tokens (at the sampling temperature), values, logits, and the
        last hidden states the values are read from."""
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         output_hidden_states=with_values, use_cache=False)
        logits = out.logits[:, prompt_width - 1 : -1].float() / self.settings.temperature
        targets = input_ids[:, prompt_width:]
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        hidden = out.hidden_states[-1][:, prompt_width - 1 : -1] if with_values else None
        return logprobs, (self.value_head(hidden) if with_values else None), logits, hidden

    @torch.no_grad()
    def rollout(self, rows: list[dict]) -> dict:
        s = self.settings
        repeated = [row for row in rows for _ in range(s.num_generations)]
        input_ids, attention = left_pad([self.encode(r["prompt"]) for r in repeated], self.pad)
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        width = input_ids.shape[1]
        self.model.eval()
        began = time.perf_counter()
        output = self.model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True,
                                     temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_completion_length,
                                     eos_token_id=self.eos_ids, pad_token_id=self.pad)
        generate_seconds = time.perf_counter() - began
        completion = output[:, width:]
        is_eos = torch.isin(completion, torch.tensor(self.eos_ids, device=completion.device))
        ended = is_eos.any(dim=1)
        first_eos = torch.where(ended, is_eos.int().argmax(dim=1), completion.shape[1] - 1)
        mask = (torch.arange(completion.shape[1], device=completion.device)[None, :] <= first_eos[:, None]).float()
        ids = [row[: int(n)].tolist() for row, n in zip(completion, mask.sum(1))]
        texts = [self.tokenizer.decode(i, skip_special_tokens=True) for i in ids]

        columns = {key: [r.get(key) for r in repeated] for key in repeated[0] if key != "prompt"}
        per_func = {}
        for func in self.reward_funcs:
            values = func(prompts=[r["prompt"] for r in repeated], completions=texts, completion_ids=ids, **columns)
            per_func[func.__name__] = torch.tensor([float(v) for v in values], dtype=torch.float32)
        scores = sum(w * per_func[f.__name__] for f, w in zip(self.reward_funcs, self.reward_weights))

        full_ids = output
        full_mask = torch.cat([attention, mask.long()], dim=1)
        old_logprobs, _, _, hidden = self.forward(full_ids, full_mask, width)
        with use_adapter(self.model, REF):
            ref_logprobs, _, _, _ = self.forward(full_ids, full_mask, width, with_values=False)
        kl = (old_logprobs - ref_logprobs) * mask
        batch = {"input_ids": full_ids, "attention_mask": full_mask, "mask": mask, "prompt_width": width,
                 "old_logprobs": old_logprobs, "hidden": hidden, "token_kl": kl, "scores": scores,
                 "per_func": per_func, "kl": kl.sum(1), "texts": texts, "lengths": mask.sum(1), "ended": ended,
                 "prompts": [as_text(r["prompt"]) for r in repeated],
                 "generate_seconds": generate_seconds}
        return self.estimate(batch)

    @torch.no_grad()
    def estimate(self, batch: dict) -> dict:
        """Values of the batch's tokens, the KL-penalised per-token rewards, advantages (lambda_actor) and value
        targets (lambda_critic)."""
        p, mask = self.settings.ppo, batch["mask"]
        values = self.value_head(batch["hidden"]) * mask
        rewards = -self.kl.coef * batch["token_kl"]
        last = (mask.sum(1).long() - 1).clamp(min=0)
        rewards[torch.arange(len(mask)), last] += batch["scores"].to(rewards.device)
        advantages, _ = gae(rewards, values, mask, p.gamma, p.lam_actor)
        _, returns = gae(rewards, values, mask, p.gamma, p.lam_critic)
        return {**batch, "old_values": values, "advantages": advantages, "returns": returns}

    def warm_up_critic(self, batch: dict) -> dict:
        """The value head fitted to the batch's value targets with the policy frozen: its bias first set to the
        batch's mean reward (`value_init: mean_reward`), then `critic_warmup_passes` passes of minibatch updates on
        the cached hidden states. Returns the batch re-estimated with the fitted critic, and the value loss
        before and after."""
        p, mask = self.settings.ppo, batch["mask"]
        with torch.no_grad():
            if p.value_init == "mean_reward":
                self.value_head.summary.bias.fill_(batch["scores"].mean().item())
            batch = self.estimate(batch)
        before = 0.5 * masked_mean((batch["old_values"] - batch["returns"]) ** 2, mask).item()
        n = len(mask)
        for _ in range(p.critic_warmup_passes):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, p.minibatch_size):
                sel = order[start : start + p.minibatch_size].to(self.device)
                values = self.value_head(batch["hidden"][sel])
                loss = 0.5 * masked_mean((values - batch["returns"][sel]) ** 2, mask[sel])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            batch = self.estimate(batch)
        after = 0.5 * masked_mean((batch["old_values"] - batch["returns"]) ** 2, mask).item()
        return {**batch, "critic_warmup": {"value_loss_before": before, "value_loss_after": after}}

    # -- update ----------------------------------------------------------------------------------
    def update(self, batch: dict) -> dict:
        """`num_iterations` passes of shuffled minibatches; they stop once a minibatch's approximate KL to the
        rollout policy exceeds `ppo.max_approx_kl`."""
        s, p = self.settings, self.settings.ppo
        self.model.train()
        n = batch["input_ids"].shape[0]
        logs = {"policy_loss": [], "value_loss": [], "clipfrac": [], "value_clipfrac": [], "entropy": [],
                "approx_kl": [], "ratio_mean": [], "ratio_max": []}
        stopped = False
        for _ in range(s.num_iterations):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, p.minibatch_size):
                sel = order[start : start + p.minibatch_size].to(self.device)
                mask = batch["mask"][sel]
                logprobs, values, logits, _ = self.forward(batch["input_ids"][sel], batch["attention_mask"][sel],
                                                           batch["prompt_width"])
                advantages = batch["advantages"][sel]
                advantages = whiten(advantages, mask) if p.whiten_per_minibatch else advantages
                pg_loss, clipfrac = policy_loss(logprobs, batch["old_logprobs"][sel], advantages, mask, s.epsilon)
                vf_loss, vf_clipfrac = value_loss(values, batch["old_values"][sel], batch["returns"][sel], mask,
                                                  p.cliprange_value)
                loss = pg_loss + p.vf_coef * vf_loss
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.trainable, p.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    probs = torch.softmax(logits, dim=-1)
                    entropy = -(probs * torch.log_softmax(logits, dim=-1)).sum(-1)
                    log_ratio = (logprobs - batch["old_logprobs"][sel]) * mask
                    ratio = torch.exp(log_ratio)
                    approx_kl = masked_mean(0.5 * log_ratio ** 2, mask).item()
                logs["entropy"].append(masked_mean(entropy, mask).item())
                logs["approx_kl"].append(approx_kl)
                logs["ratio_mean"].append(masked_mean(ratio, mask).item())
                logs["ratio_max"].append(ratio[mask.bool()].max().item() if mask.any() else 1.0)
                logs["policy_loss"].append(pg_loss.item())
                logs["value_loss"].append(vf_loss.item())
                logs["clipfrac"].append(clipfrac.item())
                logs["value_clipfrac"].append(vf_clipfrac.item())
                if p.max_approx_kl is not None and approx_kl > p.max_approx_kl:
                    stopped = True
                    break
            if stopped:
                break
        stats = {key: sum(v) / len(v) for key, v in logs.items() if key != "ratio_max"}
        return {**stats, "ratio_max": max(logs["ratio_max"]), "minibatches": len(logs["policy_loss"]),
                "stopped_early": stopped}

    def step(self, rows: list[dict]) -> dict:
        """One PPO iteration: rollouts for `rows`, then the update passes. Returns the step's logs."""
        began = time.perf_counter()
        batch = self.rollout(rows)
        warmup = {}
        if self.step_count == 0 and (self.settings.ppo.critic_warmup_passes or
                                     self.settings.ppo.value_init == "mean_reward"):
            batch = self.warm_up_critic(batch)
            warmup = {f"critic_warmup/{k}": v for k, v in batch["critic_warmup"].items()}
        kl_coef = self.kl.coef
        self.rows = rollout_rows(batch)
        stats = self.update(batch)
        self.kl.update(batch["kl"].mean().item())
        self.step_count += 1
        total = time.perf_counter() - began
        return {
            "step": self.step_count,
            "reward": batch["scores"].mean().item(),
            "reward_std": batch["scores"].std().item() if len(batch["scores"]) > 1 else 0.0,
            **{f"rewards/{name}/mean": v.mean().item() for name, v in batch["per_func"].items()},
            "kl": batch["kl"].mean().item(),
            "kl_coef": kl_coef,
            **warmup,
            **stats,
            "explained_variance": explained_variance(batch["old_values"], batch["returns"], batch["mask"]),
            "completion_length": batch["lengths"].mean().item(),
            "clipped_ratio": 1.0 - batch["ended"].float().mean().item(),
            "generate_seconds": batch["generate_seconds"],
            "update_seconds": total - batch["generate_seconds"],
            "step_seconds": total,
        }

    # -- saving ----------------------------------------------------------------------------------
    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """What a resumed run needs, as tensors (for safetensors) and plain values (for JSON): the trainable
        weights (adapter and value head), the optimizer, the step count and the random states (sampling and
        minibatch order)."""
        tensors = {f"trainable.{i}": p.detach().cpu().contiguous() for i, p in enumerate(self.trainable)}
        optimizer = self.optimizer.state_dict()
        plain_state = {}
        for index, values in optimizer["state"].items():
            for key, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
                else:
                    plain_state.setdefault(str(index), {})[key] = value
        tensors["generator"] = self.generator.get_state()
        tensors["torch_rng"] = torch.get_rng_state()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        tensors.update({f"cuda_rng.{i}": state for i, state in enumerate(cuda)})
        rest = {"step_count": self.step_count, "kl_coef": self.kl.coef, "param_groups": optimizer["param_groups"],
                "optimizer_state": sorted(optimizer["state"]), "optimizer_plain": plain_state, "cuda_rng": len(cuda)}
        return tensors, rest

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], rest: dict) -> None:
        with torch.no_grad():
            for i, param in enumerate(self.trainable):
                param.copy_(tensors[f"trainable.{i}"].to(param.device))
        state = {}
        for index in rest["optimizer_state"]:
            prefix = f"optimizer.{index}."
            state[index] = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
            state[index].update(rest["optimizer_plain"].get(str(index), {}))
        self.optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
        self.step_count = rest["step_count"]
        self.kl.coef = rest["kl_coef"]
        self.generator.set_state(tensors["generator"])
        torch.set_rng_state(tensors["torch_rng"])
        if rest["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([tensors[f"cuda_rng.{i}"] for i in range(rest["cuda_rng"])])

    def save_value_head(self, folder: Path) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()},
                  str(Path(folder) / VALUE_HEAD_FILE))


def rollout_rows(batch: dict) -> list[dict]:
    """A batch's rollouts as rows of reasoning_lab.rollouts: prompt, completion, each reward component, the reward
    (weighted), the advantage (GAE's, before whitening: the mean over the completion's tokens) and the critic's
    value at its first token (the value of the prompt)."""
    mask = batch["mask"]
    advantages = ((batch["advantages"] * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist()
    values = batch["old_values"][:, 0].tolist()
    return [{"prompt": prompt, "completion": text, **{name: v[i].item() for name, v in batch["per_func"].items()},
             "reward": batch["scores"][i].item(), "advantage": advantages[i], "value": values[i]}
            for i, (prompt, text) in enumerate(zip(batch["prompts"], batch["texts"]))]


def load_value_head(folder: str | Path, hidden_size: int) -> ValueHead:
    head = ValueHead(hidden_size)
    head.load_state_dict(load_file(str(Path(folder) / VALUE_HEAD_FILE)))
    return head


def prompt_batches(rows: list[dict], sampler: PromptSampler):
    """Endless batches of prompt rows: another pass of the sampler each time one is spent."""
    while True:
        for chunk in sampler.chunks():
            yield [rows[i] for i in chunk]


@phase("training")
def train(ppo: PPO, rows: list[dict], sampler: PromptSampler, state_dir: Path, held_out=None,
          wandb_run=None, rollout_log: RolloutLog | None = None) -> list[dict]:
    """`settings.max_steps` PPO steps on prompt batches drawn by `sampler`, a log line (and W&B scalars) each;
    `held_out(step, label)` every `settings.eval_every` steps; every `settings.save_steps` the whole training state
    goes to `state_dir` (atomically), and a killed run continues from there: same weights, optimizer, random states
    and prompt order. Returns the logged steps."""
    r = ppo.settings
    history = load_state(ppo, state_dir, sampler)
    batches = prompt_batches(rows, sampler)
    for _ in history:  # the prompt batches those steps used
        next(batches)
    if history:
        log.info("resuming PPO at step %d from %s", len(history) + 1, state_dir)
    if rollout_log is not None:
        rollout_log.start(len(history))
    for step in range(len(history) + 1, r.max_steps + 1):
        seen = len(sampler.observations)
        logs = ppo.step(next(batches))
        if len(sampler.observations) > seen:
            logs.update(step_numbers(sampler.observations[seen:]))
        history.append(logs)
        if rollout_log is not None:
            rollout_log.add(ppo.rows)
            rollout_log.flush(step)
        log.info("ppo step %d: reward %.3f, kl %.4f (coef %.3f), ratio max %.2f, clipfrac %.2f, value loss %.4f, "
                 "explained variance %.2f, %d minibatches%s", step, logs["reward"], logs["kl"], logs["kl_coef"],
                 logs["ratio_max"], logs["clipfrac"], logs["value_loss"], logs["explained_variance"],
                 logs["minibatches"], " (stopped: KL bound)" if logs["stopped_early"] else "")
        if wandb_run is not None:
            wandb_run.log({f"train/{k}": v for k, v in logs.items()})
        if held_out is not None and r.eval_every and step % r.eval_every == 0 and step < r.max_steps:
            held_out(step, f"rl/step_{step}")
        if r.save_steps and step % r.save_steps == 0 and step < r.max_steps:
            build_once(state_dir, lambda out: save_state(ppo, history, sampler, out), replace=True)
            stop_if_asked(state_dir / f"step-{step}")
    return history


def save_state(ppo: PPO, history: list[dict], sampler: PromptSampler, out: Path) -> None:
    """PPO's training state as safetensors (every tensor) and JSON (everything else, the prompt sampler's
    observations too): no pickle in a run directory."""
    tensors, rest = ppo.state_tensors()
    save_file(tensors, str(out / STATE_TENSORS))
    write_json(out / STATE_FILE, {**rest, "history": history, "prompt_sampler": sampler.state()})


def load_state(ppo: PPO, state_dir: Path, sampler: PromptSampler) -> list[dict]:
    """Put a saved training state back into `ppo` and `sampler`; returns the steps it had logged ([] when there is
    none)."""
    if not (state_dir / STATE_FILE).exists():
        return []
    rest = read_json(state_dir / STATE_FILE, {})
    ppo.load_state_tensors(load_file(str(state_dir / STATE_TENSORS)), rest)
    sampler.load(rest.get("prompt_sampler", []))
    return rest["history"]
