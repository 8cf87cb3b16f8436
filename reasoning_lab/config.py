"""Typed schema behind the YAML in conf/, registered in Hydra's ConfigStore as `base_config`.

One rule: **the YAML owns every value, the schema only types it.** A field here has no default (Hydra
composes it from `conf/<group>/<option>.yaml`, where each key has its one-line comment), so a default lives
in one place. The exceptions are the element types of the maps and lists a user fills in (`data.sets`,
`data.hub`, `rl.rewards`), whose optional keys need a default that no group file can hold.

Hydra merges the group files into these dataclasses, so a key of the wrong type fails when the config is
composed, before any model is loaded. What a type cannot say sits beside the field, as its constraint
(`one_of`, `within`, `at_least`, `steps_or`), and `validate` checks it right after composition, with one
readable error naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from reasoning_lab.answers import KIND_ANSWERS, KINDS
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.rewards import reward_function
from reasoning_lab.stages import STAGES


def one_of(*choices: str):
    return field(metadata={"one_of": choices})


def within(low: float, high: float, *words: str):
    """Between `low` and `high`, or one of `words` (e.g. "auto")."""
    return field(metadata={"within": (low, high), "words": words})


def at_least(low: int, null: str | None = None):
    """At least `low`; `null` says what a null value means where null is allowed (e.g. "no limit")."""
    return field(metadata={"at_least": low, "null": null})


def steps_or(epochs_key: str):
    """An optimizer step count, or -1 to train for the epochs in the sibling key `epochs_key`."""
    return field(metadata={"steps_or": epochs_key})


# auto: bfloat16 where the machine multiplies it in hardware, else float32 (reasoning_lab.model.dtype_name)
DTYPES = ("auto", "float32", "bfloat16", "float16")
# transformers' schedulers that need no arguments beyond the step counts (tests/test_config.py checks each is one of
# transformers.SchedulerType, so a name transformers drops fails there, not 40 s into a run)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt")
# data.sets.<name>.source of a set defined by configuration alone (your own data)
OWN = ("jsonl", "hub")
ATTENTION = ("sdpa", "eager")
# model.attn_implementation also takes flash_attention_2 (needs the flash-attn package and a GPU) and auto
# (reasoning_lab.model.attention: the fastest this install has on this device)
TRAINING_ATTENTION = (*ATTENTION, "flash_attention_2", "auto")


@dataclass
class LoraSettings:
    r: int = at_least(1)
    alpha: int
    dropout: float = within(0.0, 1.0)
    target_modules: list[str] | None  # null: peft's default for the architecture


@dataclass
class TinySettings:
    hidden_size: int = at_least(1)
    num_hidden_layers: int = at_least(1)
    num_attention_heads: int = at_least(1)
    num_key_value_heads: int = at_least(1)
    intermediate_size: int = at_least(1)
    seed: int


@dataclass
class ModelConfig:  # conf/model/
    name: str
    source: str
    quantization: str = one_of("none", "8bit", "4bit")
    dtype: str = one_of(*DTYPES)
    lora: LoraSettings
    gradient_checkpointing: bool
    trust_remote_code: bool
    attn_implementation: str = one_of(*TRAINING_ATTENTION)
    tiny: TinySettings | None  # the random model's shape (source: tiny_random), else null
    chat_template: str | None  # null: the tokenizer's own, else reasoning_lab.model.DEFAULT_CHAT_TEMPLATE


@dataclass
class GenericSettings:
    tasks: list[str]
    levels: list[int]
    size_per_level: int = at_least(1)


@dataclass
class FieldNames:  # data.sets.<name>.fields: which row field holds what (source: jsonl | hub)
    question: str = "question"
    answer: str = "answer"
    reasoning: str | None = None
    options: str | None = None
    difficulty: str | None = None


@dataclass
class SetSpec:  # an entry of data.sets: only `source` is required; the rest describe your own data (jsonl | hub)
    source: str
    min_difficulty: float | None = None
    max_difficulty: float | None = None
    path: str | None = None
    id: str | None = None
    config: str | None = None
    splits: dict[str, str] | None = None
    fields: FieldNames = field(default_factory=FieldNames)
    kind: str | None = field(default=None, metadata={"one_of": KINDS})
    # a row without reasoning in SFT: trained as a direct answer, or left out (RL and evaluation use it either way)
    without_reasoning: str = field(default="direct", metadata={"one_of": ("direct", "skip")})


@dataclass
class HubSpec:  # an entry of data.hub
    id: str
    config: str | None = None
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})


@dataclass
class ContaminationSettings:
    ngram: int = at_least(1)
    max_share: float = within(0.0, 1.0)
    action: str = one_of("refuse", "drop")


@dataclass
class DataConfig:  # conf/data/
    root: str | None
    system_prompt: str
    direct_share: float = within(0.0, 1.0)
    max_length: int = at_least(1)
    overflow: str = one_of("drop", "truncate")
    val_size: int = at_least(0)
    test_size: int = at_least(1)
    seed: int
    sets: dict[str, SetSpec]
    train: list[str]
    hub: dict[str, HubSpec]
    strategyqa_decomposition: bool
    synthetic_size: int = at_least(1)
    generic: GenericSettings
    contamination: ContaminationSettings
    allow_contamination: bool


@dataclass
class StageConfig:  # conf/stage/
    name: str
    stages: list[str]


@dataclass
class SFTSettings:
    """What both SFT stages (warm-up and curriculum) hand to TRL's SFTConfig (reasoning_lab.sft.sft_arguments)."""

    # optimizer steps (the curriculum: of each of its stages), or -1 to train num_epochs passes over the data
    max_steps: int = steps_or("num_epochs")
    num_epochs: float
    batch_size: int = at_least(1)
    max_tokens_per_batch: int | None = at_least(0, "batch_size examples a step")
    padding_free: bool
    grad_accum: int = at_least(1)
    learning_rate: float
    lr_scheduler: str = one_of(*SCHEDULERS)
    warmup_ratio: float = within(0.0, 1.0)
    logging_steps: int = at_least(1)
    save_steps: int = at_least(0)


@dataclass
class WarmupConfig(SFTSettings):  # conf/warmup/
    group_by_length: bool
    eval_steps: int = at_least(0)
    eval_sets: list[str]


@dataclass
class CurriculumStage:  # an entry of curriculum.stages
    name: str
    data: list[str]


@dataclass
class AdaptiveCurriculumSettings:  # curriculum.adaptive (schedule: adaptive)
    signal: str = one_of("progress", "loss")
    source: str = one_of("held_back", "training")
    update_every: int = at_least(1)
    held_back: int = at_least(1)
    smoothing: float = within(0.0, 1.0)
    temperature: float = within(0.0, 100.0)
    explore: float = within(0.0, 1.0)
    stratified: bool


# the curriculum's pacings (curriculum.pacing), and those the faded schedule takes
PACINGS = ("fixed", "linear", "root", "step")
FADED_PACINGS = ("linear", "root")


@dataclass
class FadedCurriculumSettings:  # curriculum.faded (schedule: faded)
    floor: float = within(0.0, 0.25)


@dataclass
class CurriculumConfig(SFTSettings):  # conf/curriculum/
    schedule: str = one_of("stages", "adaptive", "mix", "faded")
    stages: list[CurriculumStage]
    pacing: str = one_of(*PACINGS)
    c0: float = within(0.0, 1.0)
    step_levels: int = at_least(1)
    replay: float = within(0.0, 1.0)
    replay_boost: float = within(0.0, 1.0)
    max_replay: float = within(0.0, 1.0)
    length_window: int = at_least(1)
    significance: float = within(0.0, 1.0)
    min_delta: float
    max_extra_epochs: float
    extend_steps: int = at_least(0)
    extend_lr_scale: float = within(0.0, 10.0)
    max_extensions: int = at_least(0)
    forgetting_tolerance: float
    val_limit: int = at_least(0)
    val_max_new_tokens: int | None = at_least(1, null="from the data")
    stage_evals: bool
    final_eval: bool
    curve_every: int = at_least(0)
    curve_limit: int = at_least(1)
    adaptive: AdaptiveCurriculumSettings
    faded: FadedCurriculumSettings


@dataclass
class ExportConfig:  # conf/export/
    merge: bool
    push_to_hub: str | None


@dataclass
class RewardSpec:  # an entry of rl.rewards
    name: str
    weight: float = 1.0


@dataclass
class GRPOSettings:  # rl.grpo
    loss_type: str = one_of("grpo", "dr_grpo", "dapo", "bnpo")
    scale_rewards: str = one_of("group", "batch", "none")


@dataclass
class RLOOSettings:  # rl.rloo
    normalize_advantages: bool


@dataclass
class PPOSettings:  # rl.ppo
    minibatch_size: int = at_least(1)
    gamma: float = within(0.0, 1.0)
    lam_actor: float = within(0.0, 1.0)
    lam_critic: float = within(0.0, 1.0)
    cliprange_value: float
    vf_coef: float
    max_grad_norm: float
    actor_learning_rate: float = within(0.0, 1.0)
    critic_learning_rate: float = within(0.0, 1.0)
    kl_coef: float = within(0.0, 100.0)
    kl_target: float | None
    value_init: str = one_of("mean_reward", "zero")
    critic_warmup_passes: int = at_least(0)
    whiten_per_minibatch: bool
    max_approx_kl: float | None


@dataclass
class AdaRFTSettings:  # rl.adarft (rl.prompt_sampling=adarft)
    start_difficulty: float = within(0.0, 1.0)
    eta: float
    sensitivity: float
    target_pass_rate: float = within(0.0, 1.0)


@dataclass
class LearnabilitySettings:  # rl.learnability (rl.prompt_sampling=learnability)
    prior: float = within(0.0, 1000.0)


@dataclass
class DynamicSamplingSettings:  # rl.dynamic_sampling (DAPO)
    enable: bool
    max_refill_rounds: int = at_least(0)


@dataclass
class RLConfig:  # conf/rl/ (common.yaml, extended by grpo, rloo and ppo)
    algorithm: str = one_of("grpo", "rloo", "ppo")
    max_steps: int = at_least(1)
    prompts_per_step: int = at_least(1)
    num_generations: int = at_least(1)
    max_completion_length: int = at_least(1)
    learning_rate: float
    beta: float = within(0.0, 10.0)
    temperature: float
    top_p: float = within(0.0, 1.0)
    epsilon: float = within(0.0, 1.0)
    epsilon_high: float | None = at_least(0.0, "epsilon, symmetric")
    num_iterations: int = at_least(1)
    steps_per_generation: int = at_least(1)
    prompt_sets: list[str]
    drop_uniform_groups: bool
    uniform_by: str = one_of("reward", "correctness")
    eval_every: int = at_least(0)
    eval_limit: int = at_least(1)
    final_k: int = at_least(0)
    save_steps: int = at_least(0)
    log_rollouts_every: int = at_least(0)
    eval_sets: list[str] | None
    use_vllm: bool
    continuous_batching: bool
    grpo: GRPOSettings
    rloo: RLOOSettings
    ppo: PPOSettings
    prompt_sampling: str = one_of("uniform", "adarft", "learnability")
    adarft: AdaRFTSettings
    learnability: LearnabilitySettings
    dynamic_sampling: DynamicSamplingSettings
    rewards: list[RewardSpec]


@dataclass
class EvalBudget:
    limit: int | None = at_least(1, null="no limit")
    k: int = at_least(0)
    vote: str = one_of("majority", "confidence")
    adaptive_k: bool
    temperature: typing.Any = within(0.0, 10.0, "auto")  # a number, or "auto"
    top_p: float = within(0.0, 1.0)
    max_new_tokens: int | None = at_least(1, null="from the data")
    direct_limit: int | None = at_least(0, null="all")
    direct_max_new_tokens: int | None = at_least(1, null="from the data")
    batch_size: int = at_least(1)
    bootstrap_samples: int = at_least(1)
    dtype: str = one_of(*DTYPES)


@dataclass
class AutoTemperature:  # eval.auto_temperature (eval.temperature=auto)
    grid: list[float]
    limit: int = at_least(1)
    samples: int = at_least(1)
    min_ratio: float = within(0.0, 1.0)


@dataclass
class EvalConfig(EvalBudget):  # conf/eval/
    datasets: list[str]
    auto_temperature: AutoTemperature
    during_training: EvalBudget
    attn_implementation: str = one_of(*ATTENTION)
    with_base: bool
    base_samples: bool


@dataclass
class LoggerConfig:  # conf/logger/
    backend: str = one_of("wandb", "none")
    project: str
    entity: str | None
    group: str | None
    mode: str = one_of("auto", "online", "offline")
    tags: list[str]
    log_adapters: bool


@dataclass
class CheckpointConfig:  # conf/config.yaml: checkpoint
    init_from: str | None
    eval: str | None
    search: str | None


@dataclass
class AnswerConfig:  # conf/config.yaml: answer (stage=answer)
    question: str | None
    questions: str | None
    kind: str | None = one_of(*KINDS)
    reason: bool


@dataclass
class PathsConfig:  # conf/paths/
    log_dir: str


@dataclass
class Config:  # conf/config.yaml: the groups, then the top-level keys
    model: ModelConfig
    data: DataConfig
    stage: StageConfig
    warmup: WarmupConfig
    curriculum: CurriculumConfig
    export: ExportConfig
    rl: RLConfig
    eval: EvalConfig
    logger: LoggerConfig
    paths: PathsConfig
    checkpoint: CheckpointConfig
    answer: AnswerConfig
    seed: int = within(0, 2**32 - 1)  # numpy's and torch's seeds must fit 32 bits
    optimized_metric: str | None


def schema_of(kind) -> type | None:
    """The dataclass behind a field type (`TinySettings | None` -> TinySettings), or None."""
    if dataclasses.is_dataclass(kind):
        return kind
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return next((arg for arg in typing.get_args(kind) if dataclasses.is_dataclass(arg)), None)
    return None


def unknown_keys(cfg: DictConfig, schema: type | None = None, prefix: str = "") -> list[str]:
    """Keys in `cfg` that the schema does not declare (e.g. added with `+model.foo=1`)."""
    schema = schema or Config
    hints = typing.get_type_hints(schema)
    found = []
    for key in cfg:
        if key not in hints:
            found.append(f"{prefix}{key}")
        elif schema_of(hints[key]) and isinstance(cfg[key], DictConfig):  # typed nodes; free dicts (data.sets) hold any key
            found += unknown_keys(cfg[key], schema_of(hints[key]), f"{prefix}{key}.")
    return found


def check_field(key: str, value, rule: dict) -> None:
    """One field's constraint (the metadata of one_of / within / at_least / steps_or)."""
    if "one_of" in rule and value is not None and value not in rule["one_of"]:
        raise ReasoningLabError(f"{key}={value!r} is not one of {', '.join(rule['one_of'])}; set {key}=<one of them>")
    if "within" in rule and value not in rule["words"]:
        low, high = rule["within"]
        words = "".join(f" or {word}" for word in rule["words"])
        if isinstance(value, str) or not low <= value <= high:
            raise ReasoningLabError(f"{key}={value} is outside [{low}, {high}]; set {key}=<a value in that range>{words}")
    if "at_least" in rule and value is not None and value < rule["at_least"]:
        raise ReasoningLabError(f"{key}={value} must be at least {rule['at_least']}"
                                + (f" (or null: {rule['null']})" if rule["null"] else ""))
    if "steps_or" in rule and (value == 0 or value < -1):
        epochs = key.rsplit(".", 1)[0] + "." + rule["steps_or"]
        raise ReasoningLabError(f"{key}={value}: set a number of steps >= 1, or -1 to train for {epochs}")


def check_fields(node: DictConfig, schema: type, prefix: str) -> None:
    for f in dataclasses.fields(schema):
        value = node[f.name]
        if f.metadata:
            check_field(f"{prefix}{f.name}", value, f.metadata)
        kind = schema_of(typing.get_type_hints(schema)[f.name])
        if isinstance(value, DictConfig) and kind:
            check_fields(value, kind, f"{prefix}{f.name}.")


def validate(cfg: DictConfig) -> None:
    """Check what types cannot express (each field's constraint, the reward names); raise one readable error."""
    extra = unknown_keys(cfg)
    if extra:
        raise ReasoningLabError(f"{', '.join(extra)}: no such setting (added with '+'?); remove it, or see "
                                f"`python -m reasoning_lab --cfg job` for the settings there are")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ReasoningLabError(f"{', '.join(missing)}: no value; set it on the command line or in its group file")
    check_fields(cfg, Config, "")
    for name, spec in cfg.data.sets.items():
        extra = unknown_keys(spec, SetSpec, f"data.sets.{name}.")
        if extra:
            raise ReasoningLabError(f"{', '.join(extra)}: no such key of a data set; the keys are "
                                    f"{', '.join(keys_of(SetSpec))} and fields.{{{', '.join(keys_of(FieldNames))}}}")
        check_fields(spec, SetSpec, f"data.sets.{name}.")
    check_own_sets(cfg.data)
    grid = list(cfg.eval.auto_temperature.grid)
    if not grid or any(not isinstance(t, (int, float)) or not 0 < t <= 10 for t in grid):
        raise ReasoningLabError(f"eval.auto_temperature.grid={grid}: list the temperatures to try, each in (0, 10]")
    c = cfg.curriculum
    if c.schedule == "faded" and (c.pacing not in FADED_PACINGS or len(c.stages) < 2):
        raise ReasoningLabError(f"curriculum=faded fades from each of curriculum.stages to the next along "
                                f"curriculum.pacing: it needs two stages or more and pacing {' or '.join(FADED_PACINGS)} (now "
                                f"{len(c.stages)} stages, pacing {c.pacing})")
    for spec in cfg.rl.rewards:
        reward_function(spec.name)  # a built-in name or module:function, else one line
    stages = stages_to_run(cfg.stage)
    if "rl" in stages:
        check_rl(cfg.rl, cfg.model)
    for key in ("warmup", "curriculum"):
        if cfg[key].max_tokens_per_batch == 0 and not cuda_available():
            raise ReasoningLabError(f"{key}.max_tokens_per_batch=0 fills a GPU's memory and this machine has no GPU; "
                                    f"set a number of tokens (e.g. {key}.max_tokens_per_batch=2048) or null")


def check_own_sets(data_cfg: DictConfig) -> None:
    """What a set defined in configuration must name, checked before any model loads: one line naming the set,
    the field and the fix."""
    for name, spec in data_cfg.sets.items():
        if spec.source not in OWN:
            continue
        where = f"data.sets.{name}"
        if spec.kind not in KIND_ANSWERS:
            raise ReasoningLabError(f"{where}.kind={spec.kind!r}: a {spec.source} set needs the kind of its answers; "
                                    f"set {where}.kind=number, choice or yesno")
        if spec.kind == "choice" and not spec.fields.options:
            raise ReasoningLabError(f"{where}.fields.options is not set: a choice set shows its options; name the "
                                    f"row field holding them ({where}.fields.options=<field>)")
        splits = dict(spec.splits or {})
        unknown = sorted(set(splits) - {"train", "test"})
        if unknown:
            raise ReasoningLabError(f"{where}.splits has {', '.join(unknown)}; its keys are train and test")
        if spec.source == "hub":
            if not spec.id or "train" not in splits:
                raise ReasoningLabError(f"{where}: a hub set needs id and splits.train; set {where}.id=<hub id> "
                                        f"and {where}.splits.train=<split name>")
            continue
        if bool(spec.path) == ("train" in splits) or (spec.path and "test" in splits):
            raise ReasoningLabError(f"{where}: a jsonl set needs path=<one file> or splits.train=<file> (and "
                                    f"splits.test=<file>), not both; set one")


def keys_of(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def stages_to_run(stage: DictConfig) -> list[str]:
    """The stages this command runs: `stage.name`, or for stage=pipeline each of `stage.stages` (checked here)."""
    if stage.name not in STAGES:
        raise ReasoningLabError(f"stage.name={stage.name!r} has no stage module; known stages: {', '.join(STAGES)}")
    if stage.name != "pipeline":
        return [stage.name]
    steps = [name for name, entry in STAGES.items() if entry.in_pipeline]
    if not stage.stages or any(name not in steps for name in stage.stages):
        raise ReasoningLabError(f"stage.stages={list(stage.stages)}: each must be one of {', '.join(steps)}")
    return list(stage.stages)


def check_rl(r: DictConfig, model_cfg: DictConfig) -> None:
    """What the schema cannot check field by field: combinations of RL settings (checked before any stage of the
    command trains, so a pipeline does not train its SFT stages first)."""
    if r.use_vllm and model_cfg.quantization == "8bit":
        raise ReasoningLabError("rl.use_vllm=true needs a 4-bit or unquantised base (vLLM cannot run 8-bit "
                                "layers); set model.quantization=4bit or rl.use_vllm=false")
    if r.continuous_batching and r.algorithm == "ppo":
        raise ReasoningLabError("rl.continuous_batching=true needs rl=grpo or rl=rloo (TRL's setting; PPO generates "
                                "its rollouts itself); set rl.continuous_batching=false")
    if r.prompt_sampling != "uniform" and "correctness" not in [spec.name for spec in r.rewards]:
        raise ReasoningLabError(f"rl.prompt_sampling={r.prompt_sampling} reads each prompt's pass rate from the "
                                "correctness reward, which rl.rewards lacks; add {name: correctness} to rl.rewards or "
                                "set rl.prompt_sampling=uniform")
    if r.dynamic_sampling.enable and r.algorithm == "ppo":
        raise ReasoningLabError("rl.dynamic_sampling.enable=true needs rl=grpo or rl=rloo (PPO's advantages come from "
                                "its value head, not from groups); set rl.dynamic_sampling.enable=false")
    if (r.prompts_per_step * r.num_generations) % r.steps_per_generation:
        raise ReasoningLabError(f"rl.steps_per_generation={r.steps_per_generation} does not divide the "
                                f"{r.prompts_per_step * r.num_generations} completions of a generation "
                                f"(rl.prompts_per_step x rl.num_generations); choose a divisor")
    if r.uniform_by == "correctness" and "correctness" not in [spec.name for spec in r.rewards]:
        raise ReasoningLabError("rl.uniform_by=correctness judges groups by the correctness reward, which rl.rewards "
                                "lacks; add {name: correctness} to rl.rewards or set rl.uniform_by=reward")
    if r.algorithm in ("grpo", "rloo") and r.num_generations < 2:
        raise ReasoningLabError(f"rl.num_generations={r.num_generations}: {r.algorithm} compares "
                                f"completions within a group, set rl.num_generations>=2")


def cuda_available() -> bool:
    import torch  # lazy: the config's errors come before the heavy imports, and only this check needs torch

    return torch.cuda.is_available()


# keys of earlier versions, as a user's command line may still hold them -> the key that replaced them
RENAMED = {
    "init_from": "checkpoint.init_from",
    "eval.checkpoint": "checkpoint.eval",
    "run": "checkpoint.search",
    "curriculum.steps_per_stage": "curriculum.max_steps",
    "curriculum.epochs_per_stage": "curriculum.num_epochs",
    "rl.loss_type": "rl.grpo.loss_type",
    "rl.scale_rewards": "rl.grpo.scale_rewards",
    "rl.normalize_advantages": "rl.rloo.normalize_advantages",
    **{f"rl.{key}": f"rl.ppo.{key}" for key in ("minibatch_size", "gamma", "cliprange_value", "vf_coef",
                                                "max_grad_norm")},
    **{key: "rl.ppo.lam_actor" for key in ("rl.lam", "rl.ppo.lam")},
    **{key: "rl.prompt_sampling=adarft rl.adarft.start_difficulty" for key in ("rl.difficulty_target",
                                                                                  "rl.adaptive_difficulty.target")},
    **{f"rl.{old}eta": "rl.adarft.eta" for old in ("difficulty_", "adaptive_difficulty.")},
    **{f"rl.{old}{key}": f"rl.adarft.{new}" for old in ("difficulty_", "adaptive_difficulty.", "adarft.")
       for key, new in (("alpha", "sensitivity"), ("reward", "target_pass_rate"))},
    "rl.adarft.target": "rl.adarft.start_difficulty",
    "rl.batch_size": "rl.prompts_per_step",
    "curriculum.alpha": "curriculum.significance",
    **{key: f"answer.{key}" for key in ("question", "questions", "kind", "reason")},
    "rl.dynamic_sampling": "rl.dynamic_sampling.enable",
    "rl.max_refill_rounds": "rl.dynamic_sampling.max_refill_rounds",
}


# options and values of earlier versions -> what replaced them
RENAMED_VALUES = {
    "curriculum=default": "curriculum=stages",
    "curriculum.pacing=adaptive": "curriculum=adaptive",
}


def check_renamed(overrides: list[str]) -> None:
    """One line for a command-line key, option or value that was renamed, naming the new one (before Hydra composes
    anything)."""
    for override in overrides:
        key, has_value, value = override.lstrip("+~").partition("=")
        for one in value.split(","):  # a sweep's values too
            if f"{key}={one.strip()}" in RENAMED_VALUES:
                raise ReasoningLabError(f"{key}={one.strip()} was renamed; write {RENAMED_VALUES[f'{key}={one.strip()}']} "
                                        "instead")
        if key in RENAMED and not (has_value and value.strip().startswith("{")):
            raise ReasoningLabError(f"{key} was renamed {RENAMED[key]}; write {RENAMED[key]}"
                                    + (f"={value}" if has_value else "") + " instead")


def compose_config(overrides: list[str]) -> DictConfig:
    """The app's config with these overrides, composed as `python -m reasoning_lab` composes it (no run directory)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def register_configs() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)
