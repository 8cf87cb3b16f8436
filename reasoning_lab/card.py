"""The model card of a training run, and the push of its adapter to the Hugging Face Hub.

After every run that trained (a training stage, or a pipeline with one), `<run_dir>/model_card.md` says what
the adapter is: the base model, the data sets and their sizes, every stage with its key settings, the
evaluation table with n and 95% intervals (read from the evaluations themselves), the contamination report, and the exact
command. `export.push_to_hub=<repo id>` uploads the final adapter (and `merged/` beside it when
`export.merge=true` wrote one) with that card as its README.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.report import accuracy_table, collect_results
from reasoning_lab.stages import TRAINING
from reasoning_lab.tracking import finished_stage

log = logging.getLogger(__name__)

# the hub id of a model source that is not one itself
HUB_IDS = {"embedded": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def base_model_id(source: str) -> str | None:
    """The hub id of the base model, or None for a local path or the test model."""
    if source in HUB_IDS:
        return HUB_IDS[source]
    return None if source == "tiny_random" or Path(source).exists() or source.count("/") != 1 else source


def stage_summary(name: str, m: dict) -> tuple[str, str]:
    """(key settings, result) of one finished training stage, from its metrics.json."""
    if name == "warmup":
        train = m.get("train", {})
        return (f"{train.get('steps', '?')} steps on {m.get('train_data', {}).get('examples', '?')} examples",
                f"eval loss {train.get('eval_loss_before', float('nan')):.3f} -> {train.get('eval_loss_after', float('nan')):.3f}")
    if name == "curriculum":
        stages = m.get("stages", [])
        plan = "; ".join(f"{s['stage']}: {'+'.join(s['data'])}, {s['steps']} steps ({s['decision']})" for s in stages)
        return f"pacing {m.get('pacing', '?')}; {plan}", f"final validation loss {m.get('final_val_loss', float('nan')):.3f}"
    s = m.get("settings", {})
    rewards = ", ".join(f"{r['name']} x{r['weight']}" for r in s.get("rewards", []))
    settings = (f"{s.get('algorithm', '?')}, {s.get('max_steps', '?')} steps of {s.get('prompts_per_step', s.get('batch_size', '?'))} prompts x "
                f"{s.get('num_generations', '?')} completions (<= {s.get('max_completion_length', '?')} tokens), "
                f"lr {s.get('learning_rate', '?')}, KL {s.get('beta', '?')}; rewards {rewards}; {m.get('prompts', '?')} prompts")
    results = "; ".join(f"{c['dataset']}: {c['accuracy_a']:.3f} -> {c['accuracy_b']:.3f} (p {c['p_value']:.3g}, n {c['n']})"
                        for c in m.get("compare", []))
    return settings, results or "-"


def data_lines(stages: dict[str, dict]) -> list[str]:
    lines = []
    for name, m in stages.items():
        if name == "warmup" and "train_data" in m:
            per_source = ", ".join(f"{k} {v}" for k, v in m["train_data"]["per_source"].items())
            lines.append(f"- warm-up: {per_source} examples")
        elif name == "curriculum":
            for s in m.get("stages", []):
                sizes = s.get("examples", {})
                shown = ", ".join(f"{k} {v}" for k, v in sizes.get("per_source", {}).items()) or str(sizes.get("examples", "?"))
                lines.append(f"- curriculum stage {s['stage']} ({s.get('name', '')}): {shown} examples")
        elif name == "rl":
            sets = m.get("settings", {}).get("prompt_sets") or ["the training sets (data.train)"]
            lines.append(f"- RL: {m.get('prompts', '?')} prompts from {', '.join(sets)}")
    return lines


def contamination_lines(stages: dict[str, dict]) -> list[str]:
    lines = []
    for name, m in stages.items():
        report = m.get("contamination")
        if not report:
            continue
        pairs = report.get("pairs", {})
        worst = max(pairs.items(), key=lambda kv: kv[1]["share"], default=None)
        dropped = report.get("dropped") or {}
        lines.append(f"- {name}: {len(pairs)} training->evaluation pairs checked ({report.get('ngram')}-gram overlap, "
                     f"at most {report.get('max_share')} allowed, action `{report.get('action')}`); highest: "
                     + (f"{worst[0]} {worst[1]['overlapping']}/{worst[1]['rows']}" if worst else "none")
                     + (f"; dropped from training: {json.dumps(dropped)}" if dropped else ""))
    return lines


def evaluation_lines(run_dir: Path) -> list[str]:
    """The run's evaluations as report.md's first table (from the eval_results.json files themselves)."""
    results = collect_results(run_dir)
    if not results:
        return ["No evaluation ran in this run."]
    return ["Greedy strict accuracy [95% Wilson interval]; the last row is n per evaluation.", "",
            *accuracy_table(results)]


def model_card(cfg: DictConfig, run_dir: str | Path, command: str) -> str:
    run_dir = Path(run_dir)
    stages = {name: m for name in TRAINING if (m := finished_stage(run_dir, name))}
    base = base_model_id(cfg.model.source)
    front = ["---", "library_name: peft", *([f"base_model: {base}"] if base else []),
             "tags: [reasoning_lab, lora, reasoning" + "".join(f", {s}" for s in stages) + "]", "---", ""]
    lora = cfg.model.lora
    targets = ", ".join(lora.target_modules) if lora.target_modules else "peft's default layers for the architecture"
    lines = [f"# {run_dir.name}: {cfg.model.name} with a LoRA adapter for step-by-step reasoning", "",
             "Trained with reasoning_lab: the answer follows a `<think> ... </think>` block when the system prompt "
             f"asks for reasoning (\"{cfg.data.system_prompt}\").", "",
             "## Base model", "",
             f"- `{base or cfg.model.source}` ({cfg.model.name}), quantization {cfg.model.quantization}, dtype {cfg.model.dtype}",
             f"- LoRA rank {lora.r}, alpha {lora.alpha}, dropout {lora.dropout}, on {targets}", "",
             "## Training data", "", *(data_lines(stages) or ["- none recorded"]), "",
             "## Stages", "", "| stage | key settings | result | wall s |", "|---|---|---|---:|"]
    for name, m in stages.items():
        settings, result = stage_summary(name, m)
        lines.append(f"| {name} | {settings} | {result} | {m.get('wall_seconds', '-')} |")
    lines += ["", "## Evaluation", "", *evaluation_lines(run_dir), "",
              "## Contamination", "", *(contamination_lines(stages) or ["- no check recorded"]), "",
              "## Reproduce", "", "```", command, "```", ""]
    return "\n".join(front + lines)


def final_checkpoint(metrics: dict) -> str | None:
    """The adapter a run ends with: a training stage's `checkpoint`, or a pipeline's last training stage's."""
    if isinstance(metrics.get("checkpoint"), str):
        return metrics["checkpoint"]
    trained = [v["checkpoint"] for k, v in metrics.items() if k in TRAINING and isinstance(v, dict) and v.get("checkpoint")]
    return trained[-1] if trained else None


def check_push(cfg: DictConfig) -> None:
    """Before any training: `export.push_to_hub` needs the hub online and a token; else one line now, not after
    the run."""
    repo = cfg.export.push_to_hub
    if not repo:
        return
    from huggingface_hub import get_token

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise ReasoningLabError(f"export.push_to_hub={repo}: the hub is switched off here (HF_HUB_OFFLINE is set); "
                                "unset it, or drop export.push_to_hub and upload later with `hf upload`")
    if get_token() is None:
        raise ReasoningLabError(f"export.push_to_hub={repo}: no Hugging Face token; run `hf auth login` (or set "
                                "HF_TOKEN), then rerun the same command")


def push(cfg: DictConfig, run_dir: str | Path, checkpoint: str | Path) -> str:
    """Upload the adapter (and `merged/` beside it, if written) with model_card.md as README.md."""
    from huggingface_hub import HfApi

    repo, run_dir, checkpoint = cfg.export.push_to_hub, Path(run_dir), Path(checkpoint)
    api = HfApi()
    try:
        url = api.create_repo(repo, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as staging:
            folder = Path(staging) / "adapter"
            shutil.copytree(checkpoint, folder)
            shutil.copy(run_dir / "model_card.md", folder / "README.md")
            merged = checkpoint.parent / "merged"
            if merged.is_dir():
                shutil.copytree(merged, folder / "merged")
            api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message=f"reasoning_lab: {run_dir.name}")
    except Exception as error:  # unreachable hub, refused token, no such namespace
        line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ReasoningLabError(f"export.push_to_hub={repo}: the upload failed ({line}); the adapter and model_card.md "
                                f"stay in {run_dir}; rerun the same command to try again") from None
    log.info("pushed %s (with model_card.md) to https://huggingface.co/%s", checkpoint, url)
    return url
