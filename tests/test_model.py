"""Model setup: the embedded model's conversion, quantization, LoRA with a frozen base, checkpoints."""

import json

import pytest
import torch

from reasoning_lab import checkpoints as C
from reasoning_lab import model as M
from reasoning_lab.errors import ReasoningLabError
from tests.helpers import make_config, sft_settings, tiny_model


def only_lora_trains(model) -> bool:
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    return bool(trainable) and all("lora_" in name for name in trainable)


def test_tiny_random_has_lora_only_trainable():
    cfg = make_config("model=tiny_random")
    model = M.load_model(cfg.model)
    assert only_lora_trains(model)
    trainable, total = M.trainable_parameters(model)
    assert 0 < trainable < total


def test_tiny_random_is_deterministic_and_uses_the_embedded_tokenizer():
    cfg = make_config("model=tiny_random")
    a = M.load_base_model(cfg.model)
    b = M.load_base_model(cfg.model)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    tokenizer = M.load_tokenizer(cfg.model)
    assert a.config.vocab_size == len(tokenizer)
    assert "<|im_start|>" in tokenizer.chat_template


def test_a_seeded_run_draws_the_same_lora_matrices_whether_the_model_cache_is_cold_or_warm(tmp_path, monkeypatch):
    # building a cached model initializes weights at random; that must not move the seeded run's random state
    (tmp_path / "smollm2-135m-instruct").symlink_to(M.embedded_model_dir())  # the tokenizer's source, built
    monkeypatch.setenv("REASONING_LAB_CACHE", str(tmp_path))  # a cache where the tiny model is not built yet
    cfg = make_config("model=tiny_random", "model.tiny.hidden_size=48")  # a shape no other test has cached
    drawn = []
    for _ in ("cold", "warm"):
        torch.manual_seed(0)
        model = M.load_model(cfg.model)
        drawn.append({k: v.clone() for k, v in model.state_dict().items() if "lora_A" in k})
    assert drawn[0] and all(torch.equal(drawn[0][k], drawn[1][k]) for k in drawn[0])


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantized_base_is_frozen_and_lora_backward_works(quantization):
    cfg = make_config("model=tiny_random", f"model.quantization={quantization}")
    model = M.load_model(cfg.model)
    assert only_lora_trains(model)
    quantized = [m for m in model.modules() if type(m).__name__ in ("Linear8bitLt", "Linear4bit")]
    assert quantized, "no bitsandbytes layer in the model"
    ids = torch.randint(0, 100, (2, 12))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_embedded_model_converted_once_with_chat_template():
    path = M.embedded_model_dir()
    assert (path / "model.safetensors").exists()
    assert M.embedded_model_dir() == path
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert M.sha256(M.embedded_gguf()) == M.EMBEDDED_SHA256


def test_adapter_round_trip_and_wrong_base_is_refused(tmp_path):
    from peft import PeftModel

    cfg = make_config("model=tiny_random")
    model = M.load_model(cfg.model)
    tokenizer = M.load_tokenizer(cfg.model)
    checkpoint = C.save_adapter(model, tokenizer, tmp_path / "checkpoint", cfg.model, {"stage": "test"})
    loaded = PeftModel.from_pretrained(M.load_base_model(cfg.model), checkpoint)
    assert only_lora_trains(M.load_model(cfg.model, init_from=str(checkpoint)))
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    again = C.save_adapter(model, tokenizer, tmp_path / "checkpoint", cfg.model, {"stage": "again"})
    assert json.loads((again / C.CHECKPOINT_INFO).read_text())["stage"] == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # the old copy is gone, no temp left
    other = make_config("model=smollm2_135m")
    with pytest.raises(ReasoningLabError, match="trained on model=tiny_random"):
        C.check_checkpoint(checkpoint, other.model)
    with pytest.raises(ReasoningLabError, match="not an adapter checkpoint"):
        C.check_checkpoint(tmp_path, cfg.model)


def test_restore_adapter_undoes_training_in_place(tmp_path):
    cfg = make_config("model=tiny_random")
    model = M.load_model(cfg.model)
    checkpoint = C.save_adapter(model, M.load_tokenizer(cfg.model), tmp_path / "before", cfg.model)
    saved = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    C.restore_adapter(model, checkpoint)
    restored = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert saved.keys() == restored.keys() and saved
    for name, p in restored.items():
        assert torch.equal(p, saved[name]), name


EIGHT_BIT_PROBE = """
import torch
from tests.helpers import make_config
from reasoning_lab.model import load_model
cfg = make_config("model=tiny_random", "model.quantization=8bit", "model.dtype=bfloat16")
model = load_model(cfg.model)
ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
for _ in range(3):
    out = model(input_ids=ids, labels=ids, output_hidden_states=True)
    out.loss.backward()
print("hidden", out.hidden_states[-1].dtype, "logits", out.logits.dtype,
      "lora grads", all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n))
"""


@pytest.mark.app
def test_eight_bit_path_runs_activations_in_the_compute_dtype_and_warns_once():
    """No float32 cast of the non-quantized weights (peft's prepare_model_for_kbit_training did it): hidden
    states stay in bfloat16, LoRA trains, and bitsandbytes' cast warning prints at most once per process."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    result = subprocess.run([sys.executable, "-c", EIGHT_BIT_PROBE], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "hidden torch.bfloat16" in result.stdout and "lora grads True" in result.stdout, result.stdout
    assert result.stderr.count("MatMul8bitLt: inputs will be cast") <= 1


def test_llama3_2_3b_shape_composes_and_builds_at_a_shrunk_size():
    from reasoning_lab.model import load_model

    cfg = make_config("model=llama3_2_3b_shape")
    assert (cfg.model.tiny.hidden_size, cfg.model.tiny.num_hidden_layers, cfg.model.tiny.num_attention_heads,
            cfg.model.tiny.num_key_value_heads, cfg.model.tiny.intermediate_size) == (3072, 28, 24, 8, 8192)
    assert cfg.model.quantization == "8bit" and cfg.model.dtype == "bfloat16"
    shrunk = make_config("model=llama3_2_3b_shape", "model.quantization=none", "model.tiny.hidden_size=96",
                         "model.tiny.num_hidden_layers=2", "model.tiny.intermediate_size=256")
    model = load_model(shrunk.model)
    config = model.base_model.model.config
    assert (config.num_attention_heads, config.num_key_value_heads) == (24, 8)
    assert model.base_model.model.dtype == torch.bfloat16


def test_the_generating_copy_of_a_trained_model_runs_its_own_weights(tmp_path):
    """TRL's trainer replaces the trained model's forward with a wrapper bound to that model; a merged copy must not
    keep it, or every evaluation after training runs the training model (unmerged adapters, 2x slower). Seen
    from outside: once the copy is made, changing the trained model must not change the copy's outputs."""
    import torch

    from reasoning_lab.data import format_example, tokenize
    from reasoning_lab.model import inference_model
    from reasoning_lab.sft import sft_arguments
    from reasoning_lab.synthetic import synthetic_gsm8k
    from reasoning_lab.trl_trainers import OrderedSFTTrainer

    cfg, model, tokenizer = tiny_model()
    examples = [format_example(p, True, cfg.data.system_prompt) for p in synthetic_gsm8k(8, 0)]
    dataset, _ = tokenize(examples, tokenizer, max_length=512, overflow="drop")
    args = sft_arguments(tmp_path, sft_settings(batch_size=4, learning_rate=1e-3), max_steps=1, seed=0, report_to="none")
    OrderedSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer).train()
    twin = inference_model(model, "none", "float32")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        before = twin(input_ids=ids).logits
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(1.0)  # the trained model changes; its copy must not
        after = twin(input_ids=ids).logits
    assert torch.equal(before, after)




def test_auto_dtype_is_bfloat16_only_where_the_machine_multiplies_it_natively(monkeypatch):
    assert isinstance(M.native_bfloat16(), bool)  # this machine answers
    monkeypatch.setattr(M, "native_bfloat16", lambda: True)
    assert M.dtype_name("auto") == "bfloat16" and M.torch_dtype("auto") == torch.bfloat16
    monkeypatch.setattr(M, "native_bfloat16", lambda: False)
    assert M.dtype_name("auto") == "float32" and M.torch_dtype("auto") == torch.float32
    assert M.dtype_name("bfloat16") == "bfloat16" and M.dtype_name("float16") == "float16"  # a named dtype is kept
