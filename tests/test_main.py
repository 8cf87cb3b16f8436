"""The command line (reasoning_lab.__main__): one-line errors before the heavy imports, the help."""

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize(
    "args, expected",
    [(["stage=warmup", "model.lora.r=abc"], "model.lora.r"),
     (["stage=nope"], "stage/nope"),
     (["model.quantization=2bit"], "model.quantization"),
     (["stage=rl", "rl.difficulty_target=0.5"], "rl.difficulty_target was renamed rl.prompt_sampling=adarft rl.adarft.start_difficulty"),
     (["stage=rl", "rl.dynamic_sampling=true"], "write rl.dynamic_sampling.enable=true instead"),
     (["stage=curriculum", "curriculum=default"], "curriculum=default was renamed; write curriculum=stages instead"),
     (["-m", "curriculum=shuffled_mix,default"], "curriculum=default was renamed; write curriculum=stages instead"),
     (["stage=rl", "rl.batch_size=8"], "rl.batch_size was renamed rl.prompts_per_step"),
     # every stage of a pipeline is checked before its first stage loads a model
     (["stage=pipeline", "rl.use_vllm=true", "model.quantization=8bit"], "rl.use_vllm=true needs a 4-bit"),
     (["stage=pipeline", "stage.stages=[warmup,answer]"], "stage.stages=['warmup', 'answer']: each must be one of"),
     # values a library would refuse later, refused by the schema
     (["stage=curriculum", "curriculum.lr_scheduler=abc"], "curriculum.lr_scheduler='abc' is not one of linear"),
     (["stage=eval", "+data.sets.gsm8k.fields.difficulty_typo=abc"],
      "data.sets.gsm8k.fields.difficulty_typo: no such key of a data set"),
     (["stage=eval", "data.sets.strategyqa.id=${nope}"], "data.sets.strategyqa.id: Interpolation key 'nope' not found"),
     # an adapter named as a W&B artifact needs W&B
     (["stage=curriculum", "checkpoint.init_from=wandb:me/proj/adapter-warmup:latest"],
      "names a W&B artifact, and W&B is not reachable here")],
)
@pytest.mark.app
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


@pytest.mark.app
def test_help_lists_groups_and_options():
    result = run_cli("--help", timeout=60)
    assert result.returncode == 0
    for text in ("model: llama3_2_3b, llama3_2_3b_shape, smollm2_135m, tiny_random", "stage:", "logger: none, wandb", "rl:", "eval:"):
        assert text in result.stdout
