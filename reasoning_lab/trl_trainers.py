"""TRL's trainers as the stages run them (subclasses), and the callbacks the RL stage hands them.

- `OrderedSFTTrainer`: SFTTrainer that draws its batches from a given sampler (the curriculum's), or from a batch
  sampler whose batches vary in size (token budgets: reasoning_lab.batching).
- `GRPO` / `RLOO`: TRL's trainers drawing prompts from reasoning_lab.prompt_selection.PromptSampler, with the
  option to judge a group uniform by correctness alone (`uniform_by`: zero advantage where all are right or all
  wrong), to leave completions with zero advantage (their group's rewards all equal: no signal) out of the loss,
  and DAPO's dynamic sampling (Yu et al. 2025): such groups are replaced by groups of fresh prompts, generated
  in at most `max_refill_rounds` extra rounds, so the batch holds `batch_size` groups with signal. Every scored
  completion goes to a `rollout_log` as a row (TRL's `_logs`: its `log_completions` table, kept to the steps
  `rl.log_rollouts_every` names).
  They and OrderedSFTTrainer override private methods of TRL's trainers (`OVERRIDDEN`); tests/test_trl_trainers.py fails with
  a clear message when an upgrade of TRL removes one.
- `PromptFeedback`: the prompt sampler's state in every checkpoint (reasoning_lab.callbacks.CheckpointState).
  Each step logs `prompt_sampling/pass_rate` and `prompt_sampling/zero_variance_share` (GRPO/RLOO).
- `GenerationTimer`: seconds spent in `model.generate`, for the generate/update split.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader
from transformers import Trainer
from trl import GRPOTrainer, RLOOTrainer, SFTTrainer

from reasoning_lab.callbacks import CheckpointState
from reasoning_lab.prompt_selection import PromptSampler, step_numbers
from reasoning_lab.rollouts import RolloutLog, as_text

SAMPLER_STATE = "prompt_sampler.json"  # in every RL trainer checkpoint: the prompt sampler's observations

# the private methods of TRL's trainers that ours override (pinned TRL versions in pyproject.toml)
OVERRIDDEN = {GRPOTrainer: ("_get_train_sampler", "_generate_and_score_completions"),
              RLOOTrainer: ("_get_train_sampler", "_generate_and_score_completions"),
              SFTTrainer: ("_get_train_sampler",)}
# the other private names of TRL's trainers that ours use: the per-step metrics TRL logs (written to), the scored
# completions it keeps for its table (read), the Trainer's column filter (called); tests/test_trl_trainers.py fails when TRL drops one, and when this module touches a
# private name listed in neither table
PRIVATE_STATE = {GRPOTrainer: ("_metrics", "_logs"), RLOOTrainer: ("_metrics", "_logs"),
                 SFTTrainer: ("_remove_unused_columns", "_metrics", "_total_train_tokens")}


class OrderedSFTTrainer(SFTTrainer):
    """SFTTrainer whose training batches follow `sampler` (indices, e.g. reasoning_lab.curriculum.CurriculumSampler)
    or `batches` (a batch sampler: lists of indices, one per step, of any size). On the CPU the loss is the model's
    own over the full logits (the same mean over the completion tokens; TRL's `mean_token_accuracy` and
    `num_tokens` logged as TRL logs them, its `entropy` left out): TRL's fused head (the output layer in tiles at
    the loss-bearing positions) trains slower there (experiments/results/sft_batching.md); on a GPU it is TRL's.
    `observe(inputs, logits)`, if given, sees every training batch with its logits (the adaptive curriculum's
    training-loss signal); the loss is then the model's own on every device."""

    def __init__(self, *args, sampler=None, batches=None, observe=None, **kwargs):
        self.ordered_sampler, self.ordered_batches, self.observe = sampler, batches, observe
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        return self.ordered_sampler or super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.args.device.type != "cpu" and self.observe is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = Trainer.compute_loss(self, model, {**inputs, "use_cache": False}, True, num_items_in_batch)
        if self.observe is not None and self.model.training:
            self.observe(inputs, outputs.logits.detach())
        # TRL's per-step numbers, but entropy (a second softmax over the vocabulary): token accuracy and tokens seen
        mode = "train" if self.model.training else "eval"
        with torch.no_grad():
            labels = inputs["labels"][:, 1:]
            mask = labels != -100
            right = (outputs.logits[:, :-1][mask].argmax(-1) == labels[mask]).sum().item()
            self._metrics[mode]["mean_token_accuracy"].append(right / max(1, int(mask.sum())))
        if mode == "train":
            self._total_train_tokens += int(inputs["attention_mask"].sum() if "attention_mask" in inputs
                                            else inputs["position_ids"].size(1))
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss

    def get_train_dataloader(self):
        if self.ordered_batches is None:
            return super().get_train_dataloader()
        dataset = self._remove_unused_columns(self.train_dataset, description="Training")
        return self.accelerator.prepare(DataLoader(dataset, batch_sampler=self.ordered_batches,
                                                   collate_fn=self.data_collator, num_workers=0))


class PromptFeedback(CheckpointState):
    """The prompt sampler's observations, saved into every trainer checkpoint and put back on resume."""

    filename = SAMPLER_STATE

    def __init__(self, sampler: PromptSampler):
        self.sampler = sampler

    def saved(self) -> list:
        return self.sampler.state()

    def restore(self, saved: list) -> None:
        self.sampler.load(saved)


class _Selection:
    """Mixin: our prompt sampler; completions with zero advantage left out of the loss; DAPO's dynamic
    sampling (groups whose rewards are all equal replaced by groups of fresh prompts); every scored completion
    handed to `rollout_log` (reasoning_lab.rollouts) as a row."""

    def __init__(self, *args, prompt_sampler: PromptSampler, drop_uniform_groups: bool = False,
                 dynamic_sampling: bool = False, max_refill_rounds: int = 2, uniform_by: str = "reward",
                 rollout_log: RolloutLog | None = None, **kwargs):
        self.prompt_sampler, self.drop_uniform_groups = prompt_sampler, drop_uniform_groups
        self.uniform_by, self.rollout_log, self._scored_rows = uniform_by, rollout_log, []
        self.dynamic_sampling, self.max_refill_rounds = dynamic_sampling, max_refill_rounds
        super().__init__(*args, **kwargs)
        self._fresh = fresh_prompts(prompt_sampler)

    def _get_train_sampler(self, dataset=None):
        return self.prompt_sampler

    def _generate_and_score_completions(self, inputs):
        seen = len(self.prompt_sampler.observations)
        self._scored_rows = []
        output = self._scored(inputs)
        mode = "train" if self.model.training else "eval"
        chosen = None
        if self.dynamic_sampling and mode == "train":
            output, chosen = self._refill(output, len(inputs) // self.num_generations, mode)
        if self.rollout_log is not None and mode == "train":
            for p, rows in enumerate(self._scored_rows):
                for i, row in enumerate(rows):
                    row["kept"] = chosen is None or (p, i // self.num_generations) in chosen
                self.rollout_log.add(rows)
        if len(self.prompt_sampler.observations) > seen:  # the correctness reward's verdicts on these groups
            for key, value in step_numbers(self.prompt_sampler.observations[seen:]).items():
                self._metrics[mode][key].append(value)
        if self.drop_uniform_groups or self.dynamic_sampling:
            zero = ~informative(output["advantages"], 1)
            if not zero.all():  # a batch without any signal is left as it is
                output["completion_mask"] = output["completion_mask"] * (~zero).unsqueeze(-1)
                if "num_items_in_batch" in output:  # GRPO's token normaliser counts what is left in the loss
                    output["num_items_in_batch"] = output["completion_mask"].sum()
            self._metrics[mode]["dropped_uniform_share"].append(zero.float().mean().item())
        return output

    def _scored(self, inputs) -> dict:
        """TRL's generation and scoring of `inputs`; with `uniform_by="correctness"`, the groups whose completions
        the correctness reward judged all right or all wrong get zero advantage (whatever format and partial credit
        said inside them)."""
        seen = len(self.prompt_sampler.observations)
        output = super()._generate_and_score_completions(inputs)
        if self.uniform_by == "correctness":
            correct = torch.tensor([c for _, _, values in self.prompt_sampler.observations[seen:] for c in values])
            if len(correct) != len(output["advantages"]):
                raise RuntimeError(f"rl.uniform_by=correctness: {len(correct)} correctness verdicts for "
                                   f"{len(output['advantages'])} completions")
            output["advantages"] = zero_uniform(output["advantages"], correct, self.num_generations)
        if self.rollout_log is not None:
            self._scored_rows.append(self._rows(output["advantages"]))
        return output

    def _rows(self, advantages: torch.Tensor) -> list[dict]:
        """The rollout rows of the completions TRL just scored (the newest in its `_logs`): prompt, completion, each
        reward component, the weighted total and the advantage they train with (per-token advantages: their mean)."""
        n = len(advantages)
        if advantages.dim() > 1:
            advantages = advantages.float().mean(dim=-1)
        rewards = {name: list(self._logs["rewards"][name])[-n:] for name in self.reward_func_names}
        weights = self.reward_weights.tolist()
        rows = []
        for i, (prompt, completion) in enumerate(zip(list(self._logs["prompt"])[-n:],
                                                     list(self._logs["completion"])[-n:])):
            parts = {name: None if math.isnan(values[i]) else values[i] for name, values in rewards.items()}
            total = sum(w * v for w, v in zip(weights, parts.values()) if v is not None)
            rows.append({"prompt": as_text(prompt), "completion": as_text(completion), **parts, "reward": total,
                         "advantage": advantages[i].item()})
        return rows

    def _refill(self, output: dict, groups: int, mode: str) -> dict:
        """Generate groups of fresh prompts until `groups` groups carry signal or `max_refill_rounds` extra
        rounds are spent; the batch keeps its size (uniform groups fill what is still missing)."""
        n = self.num_generations
        parts, keep = [output], [informative(output["advantages"], n)]
        found, rounds = int(keep[0].sum()), 0
        while found < groups and rounds < self.max_refill_rounds:
            rows = [self.train_dataset[next(self._fresh)] for _ in range(groups - found)]
            more = self._scored([row for row in rows for _ in range(n)])
            parts.append(more)
            keep.append(informative(more["advantages"], n))
            found, rounds = found + int(keep[-1].sum()), rounds + 1
        generated = sum(len(k) for k in keep)
        chosen = [(p, g) for p, k in enumerate(keep) for g in range(len(k)) if k[g]][:groups]
        chosen += [(0, g) for g in range(groups) if not keep[0][g]][: groups - len(chosen)]
        self._metrics[mode]["dynamic_sampling/filtered_share"].append(1 - found / generated)
        self._metrics[mode]["dynamic_sampling/extra_rounds"].append(rounds)
        self._metrics[mode]["dynamic_sampling/generations"].append(generated * n)
        return merge_groups(parts, chosen, n, self.processing_class.pad_token_id), set(chosen)


def informative(advantages, n: int):
    """Per group of `n` completions: whether any advantage is non-zero (n=1: per completion)."""
    nonzero = advantages != 0
    if nonzero.dim() > 1:  # per-token advantages
        nonzero = nonzero.any(dim=-1)
    return nonzero.view(-1, n).any(dim=1)


def zero_uniform(advantages: torch.Tensor, correct: torch.Tensor, n: int) -> torch.Tensor:
    """`advantages` (per completion, or per token) with zeros for every group of `n` completions whose `correct`
    values are all equal."""
    groups = correct.view(-1, n)
    uniform = (groups == groups[:, :1]).all(dim=1).repeat_interleave(n).to(advantages.device)
    return advantages.masked_fill(uniform.view(-1, *[1] * (advantages.dim() - 1)), 0.0)


def fresh_prompts(sampler: PromptSampler):
    """Endless prompt indices for refills: seeded shuffles of the prompts, apart from the sampler's own order."""
    passes = 1
    while True:
        extra = PromptSampler(sampler.size, sampler.batch_size, 1, 1, sampler.seed + 1000 * passes)
        for chunk in extra.chunks():
            yield from chunk
        passes += 1


def merge_groups(parts: list[dict], chosen: list[tuple[int, int]], n: int, pad_id: int) -> dict:
    """One batch from the groups `chosen` ((part, group) pairs) of several generate-and-score outputs:
    prompts re-padded on the left, completions and per-token values on the right."""
    merged = {}
    for key, first in parts[0].items():
        if not isinstance(first, torch.Tensor) or first.dim() == 0 or len(first) != len(parts[0]["advantages"]):
            merged[key] = first
            continue
        width = max(part[key].shape[-1] for part in parts) if first.dim() > 1 else 0
        rows = []
        for p, g in chosen:
            value = parts[p][key][g * n : (g + 1) * n]
            if first.dim() > 1 and value.shape[-1] < width:
                pad = torch.full((*value.shape[:-1], width - value.shape[-1]), pad_id if key.endswith("_ids") else 0,
                                 dtype=value.dtype, device=value.device)
                value = torch.cat([pad, value] if key.startswith("prompt_") else [value, pad], dim=-1)
            rows.append(value)
        merged[key] = torch.cat(rows)
    if "num_items_in_batch" in merged:
        merged["num_items_in_batch"] = merged["completion_mask"].sum()
    return merged


class GRPO(_Selection, GRPOTrainer):
    pass


class RLOO(_Selection, RLOOTrainer):
    pass


class GenerationTimer:
    """Wraps `model.generate` and `model.generate_batch` (TRL's continuous batching) to add up the seconds spent in
    them; time inside `excluded()` (held-out evaluations during training) is counted apart, in `excluded_seconds`."""

    def __init__(self, model):
        self.seconds, self.calls, self.excluded_seconds, self.paused = 0.0, 0, 0.0, False
        for name in ("generate", "generate_batch"):
            if hasattr(model, name):
                setattr(model, name, self.timed(getattr(model, name)))

    def timed(self, inner):
        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                if not self.paused:
                    self.seconds += time.perf_counter() - began
                    self.calls += 1

        return timed

    @contextmanager
    def excluded(self):
        self.paused, began = True, time.perf_counter()
        try:
            yield
        finally:
            self.paused = False
            self.excluded_seconds += time.perf_counter() - began
