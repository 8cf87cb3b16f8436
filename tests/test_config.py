"""The composed config, its validation, and the command line's one-line errors."""

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml
from hydra.errors import HydraException
from omegaconf import OmegaConf

from reasoning_lab import config
from reasoning_lab.config import validate
from reasoning_lab.errors import ReasoningLabError
from tests.helpers import CONF, ROOT, make_config, run_cli


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


def test_every_scheduler_name_is_one_transformers_knows():
    from transformers import SchedulerType

    assert set(config.SCHEDULERS) <= {kind.value for kind in SchedulerType}


def test_an_rl_setting_is_checked_only_when_rl_runs():
    validate(make_config("stage=curriculum", "rl.use_vllm=true", "model.quantization=8bit"))
    for stage in (["stage=rl"], ["stage=pipeline", "stage.stages=[warmup,rl]"]):
        with pytest.raises(ReasoningLabError, match="rl.use_vllm=true needs"):
            validate(make_config(*stage, "rl.use_vllm=true", "model.quantization=8bit"))


# ----------------------------------------------------------------------------------------------
# One source of truth: the YAML owns every value, the schema only types it
# ----------------------------------------------------------------------------------------------

PRESETS = ROOT / "experiments" / "presets" / "experiment"
# element types of the maps and lists a user fills in: their optional keys need defaults no group file can hold
ELEMENT_TYPES = (config.SetSpec, config.HubSpec, config.RewardSpec)
BASES = {"rl": "common"}  # files that other options of their group extend, not options themselves


def schema_defaults(kind=config.Config, prefix="") -> list[str]:
    found = []
    for f in dataclasses.fields(kind):
        nested = config.schema_of(typing.get_type_hints(kind)[f.name])
        if nested is not None:
            found += schema_defaults(nested, f"{prefix}{f.name}.")
        elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            found.append(f"{prefix}{f.name}")
    return found


def leaves(tree, prefix=""):
    """{"a.b.c": value}; an entry of a map the user fills in (data.sets, data.hub) counts as one value."""
    if not isinstance(tree, dict) or not tree:
        return {prefix.rstrip("."): tree}
    if prefix.rstrip(".") in ("sets", "hub", "data.sets", "data.hub"):
        return {f"{prefix}{key}": value for key, value in tree.items()}
    return {k: v for key, value in tree.items() for k, v in leaves(value, f"{prefix}{key}.").items()}


def group_options():
    return [(group.name, option.stem) for group in sorted(CONF.iterdir()) if group.is_dir()
            and group.name not in ("hydra", "hparams_search") for option in sorted(group.glob("*.yaml"))
            if BASES.get(group.name) != option.stem]


def test_the_schema_holds_no_default_values():
    assert schema_defaults() == []
    assert all(schema_defaults(kind) for kind in ELEMENT_TYPES)  # the walk does see defaults where they are


@pytest.mark.parametrize("overrides", [[f"{g}={o}"] for g, o in group_options()]
                         + [[f"experiment={p.stem}"] for p in sorted(PRESETS.glob("*.yaml"))], ids=" ".join)
def test_every_group_option_and_preset_composes_complete_and_valid(overrides, monkeypatch):
    monkeypatch.chdir(ROOT)  # the presets' own files (experiment=your_data's reward) are named from the checkout
    cfg = make_config(*overrides)
    assert sorted(OmegaConf.missing_keys(cfg)) == []
    validate(cfg)


def own_values(path: Path) -> dict:
    """The values a group file or preset sets itself (its defaults list and package line left out)."""
    raw = yaml.safe_load(path.read_text())
    raw.pop("defaults", None)
    raw.pop("hydra", None)
    return leaves(raw)


def test_a_file_that_extends_another_and_a_preset_set_only_what_differs():
    """An option that extends another (rl/grpo extends rl/common, data/real extends data/embedded) and an experiment
    preset restate no value they inherit: a key set to the value it already had is a second copy of a default."""
    checked = 0
    for group, option in group_options():
        if group == "debug":
            continue  # global presets: checked below
        path = CONF / group / f"{option}.yaml"
        bases = [entry for entry in (yaml.safe_load(path.read_text()).get("defaults") or [])
                 if isinstance(entry, str) and entry != "_self_"]  # `override /group: x` lines are a preset's
        for base in bases:
            inherited = leaves(OmegaConf.to_container(make_config(f"{group}={base}")[group]))
            inherited = {f"{group}.{key}": value for key, value in inherited.items()}
            same = {key: value for key, value in own_values(path).items() if inherited.get(f"{group}.{key}", object()) == value}
            assert same == {}, f"{path.relative_to(ROOT)} restates {same} from {group}/{base}"
            checked += 1
    for path in sorted(PRESETS.glob("*.yaml")) + sorted((CONF / "debug").glob("*.yaml")):  # global presets
        defaults = yaml.safe_load(path.read_text()).get("defaults", [])
        choices = [f"{key.split('/')[-1]}={value}" for entry in defaults
                   if isinstance(entry, dict) for key, value in entry.items()
                   if key.startswith("override /") and not key.startswith("override /hydra")]
        choices += [f"{path.parent.name}={entry}" for entry in defaults  # a debug preset that extends another
                    if isinstance(entry, str) and entry != "_self_" and path.parent.name == "debug"]
        inherited = leaves(OmegaConf.to_container(make_config(*choices)))
        same = {key: value for key, value in own_values(path).items() if inherited.get(key, object()) == value}
        assert same == {}, f"{path.relative_to(ROOT)} restates {same}"
        checked += 1
    assert checked >= 12


def test_grpo_rloo_and_ppo_share_the_rewards_from_one_file():
    rewards = {algorithm: OmegaConf.to_container(make_config(f"rl={algorithm}").rl.rewards)
               for algorithm in ("grpo", "rloo", "ppo")}
    assert rewards["grpo"] == rewards["rloo"] == rewards["ppo"] != []
    assert sum(bool(re.search("^rewards:", (CONF / "rl" / f"{name}.yaml").read_text(), re.M))
               for name in ("common", "grpo", "rloo", "ppo")) == 1


def test_constraints_sit_beside_their_fields():
    rules = {f.name: f.metadata for f in dataclasses.fields(config.ModelConfig) if f.metadata}
    assert rules["quantization"]["one_of"] == ("none", "8bit", "4bit")
    cfg = make_config()
    cfg.curriculum.warmup_ratio = 1.5  # shared SFT settings are checked in both stages
    with pytest.raises(ReasoningLabError, match=r"curriculum.warmup_ratio=1.5 is outside \[0.0, 1.0\]"):
        validate(cfg)


def test_a_setting_without_a_value_is_refused_by_name():
    """rl/common.yaml leaves the algorithm to the file that extends it: chosen on its own, it is refused in one line."""
    cfg = make_config("rl=common")
    with pytest.raises(ReasoningLabError, match=r"^rl.algorithm: no value; set it"):
        validate(cfg)


def test_every_renamed_key_points_at_a_key_that_exists():
    cfg = make_config()
    for old, new in config.RENAMED.items():
        parent, _, leaf = new.split()[-1].rpartition(".")  # "rl.prompt_sampling=adarft rl.adarft.start_difficulty": the key last
        assert leaf in OmegaConf.select(cfg, parent), (old, new)
        with pytest.raises(ReasoningLabError, match=f"{old} was renamed {new}; write {new}=1 instead"):
            config.check_renamed(["stage=rl", f"{old}=1"])
    config.check_renamed(["rl.dynamic_sampling={enable: true}", "rl.dynamic_sampling.enable=true", "seed=1"])


def test_a_test_without_the_app_marker_cannot_start_the_app():
    with pytest.raises(RuntimeError, match="mark it @pytest.mark.app"):
        run_cli("--help")


@pytest.mark.parametrize("key, value, message", [
    ("eval.temperature", "hot", r"eval.temperature=hot is outside \[0.0, 10.0\]; set eval.temperature=<a value in "
                                r"that range> or auto"),
    ("eval.temperature", 12.0, r"eval.temperature=12.0 is outside"),
    ("eval.auto_temperature.grid", [0.5, 0.0], r"eval.auto_temperature.grid=\[0.5, 0.0\]: list the temperatures"),
])
def test_the_temperature_is_a_number_or_auto(key, value, message):
    cfg = make_config()
    node, name = (cfg.eval, key.split(".")[1]) if key == "eval.temperature" else (cfg.eval.auto_temperature, "grid")
    node[name] = value
    with pytest.raises(ReasoningLabError, match=message):
        validate(cfg)
    node[name] = "auto" if key == "eval.temperature" else [0.3, 1.0]
    validate(cfg)
