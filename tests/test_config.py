"""The composed config, its validation, and the command line's one-line errors."""


import pytest
from hydra.errors import HydraException

from reasoning_lab.config import validate
from reasoning_lab.errors import ReasoningLabError
from tests.conftest import make_config, run_cli


@pytest.mark.parametrize("model", ["smollm2_135m", "llama3_2_3b", "tiny_random"])
def test_every_model_option_composes_and_validates(model):
    cfg = make_config(f"model={model}")
    validate(cfg)
    assert cfg.model.name == model


def test_llama_option_has_the_design_values():
    model = make_config("model=llama3_2_3b").model
    assert (model.source, model.quantization) == ("meta-llama/Llama-3.2-3B", "8bit")
    assert (model.lora.r, model.lora.alpha, model.lora.dropout) == (8, 16, 0.1)
    assert list(model.lora.target_modules) == ["q_proj", "v_proj"]


def test_wrong_type_fails_at_composition():
    with pytest.raises(HydraException):
        make_config("model.lora.r=abc")


def test_unknown_key_fails_at_composition():
    with pytest.raises(HydraException):
        make_config("model.lora.rank=4")


@pytest.mark.parametrize(
    "override, message",
    [("model.quantization=16bit", "model.quantization"), ("data.direct_share=1.5", "data.direct_share"),
     ("model.lora.r=0", "model.lora.r"), ("logger.mode=sometimes", "logger.mode")],
)
def test_validate_names_the_key(override, message):
    with pytest.raises(ReasoningLabError, match=message):
        validate(make_config(override))


@pytest.mark.parametrize(
    "args, expected",
    [(["stage=warmup", "model.lora.r=abc"], "model.lora.r"),
     (["stage=nope"], "stage/nope"),
     (["model.quantization=2bit"], "model.quantization")],
)
def test_cli_errors_are_one_line_and_come_before_the_heavy_imports(args, expected):
    result = run_cli(*args, timeout=60, env={"PYTHONPROFILEIMPORTTIME": "1"})  # every import, on stderr
    assert result.returncode == 2
    imports = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip() for line in imports}
    assert "hydra" in imported and not imported & {"torch", "transformers", "trl", "peft"}  # refused at once
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("import time:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reasoning_lab: error:") and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_groups_and_options():
    result = run_cli("--help", timeout=60)
    assert result.returncode == 0
    for text in ("model: llama3_2_3b, llama3_2_3b_shape, smollm2_135m, tiny_random", "stage:", "logger: none, wandb", "rl:", "eval:"):
        assert text in result.stdout
