"""Adapter checkpoints: how a stage saves one, how a run finds its way back to one.

- `save_adapter`: the adapter, its tokenizer and `reasoning_lab.json`, the record of the base model and of what
  it was trained on (`training_record`), written whole or not at all (reasoning_lab.files.build_once);
  `check_checkpoint` refuses an incomplete, damaged or other-model checkpoint in one line.
- finding them, one policy: `newest_checkpoint` (the newest complete adapter below a folder), used by
  `resolve_checkpoint` (stage=eval / answer) and by the RL stage's starting point.
- resume: the Trainer's `checkpoint-N/` folders are marked complete after the save (`mark_complete`), and
  `train_resuming` continues a trainer from the newest complete one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reasoning_lab.distributed import is_main_process, wait_for_everyone
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.files import build_once, read_json, stop_if_asked
from reasoning_lab.timing import phase

log = logging.getLogger(__name__)


CHECKPOINT_INFO = "reasoning_lab.json"  # written beside every adapter: which base model it belongs to


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
    if (adapter_dir / CHECKPOINT_INFO).exists():
        info = record(adapter_dir)
        if info.get("model") != model_cfg.name:
            raise ReasoningLabError(
                f"{adapter_dir} was trained on model={info.get('model')}, not model={model_cfg.name}; "
                f"add model={info.get('model')} to the command"
            )
    return adapter_dir


def newest_checkpoint(root: str | Path, named: str | None = None, model: str | None = None) -> Path | None:
    """The newest complete adapter checkpoint at or below `root` (a checkpoint, a run directory or a folder of
    runs): the one search every stage uses. Folders being written (hidden temporaries of `build_once`) and the
    Trainer's own `trainer/checkpoint-N` folders are not adapters to use. `named`: only checkpoints whose path
    ends with it (e.g. `warmup/checkpoint`); `model`: only those whose record names this base model."""
    root = Path(root)
    if (root / "adapter_config.json").exists():
        return root
    found = [p.parent for p in root.glob("**/adapter_config.json")
             if not any(part.startswith(".") or part == "trainer" for part in p.parent.relative_to(root).parts)
             and (named is None or p.parent.as_posix().endswith(named))
             and (model is None or record(p.parent).get("model") == model)]
    return max(found, key=lambda p: (p / "adapter_config.json").stat().st_mtime) if found else None


def final_adapter(root: str | Path, stage: str, model: str | None = None) -> Path | None:
    """The adapter a finished stage names as its result (`checkpoint` in `<stage>/metrics.json`), in the run
    directory `root` or, when `root` is a folder of runs, the newest such run below it; `model`: only adapters whose
    record names this base model. Never a guess from folder names (a curriculum's last stage is not always
    `stage_4`)."""
    root = Path(root)
    found = []
    for metrics_file in [root / stage / "metrics.json", *root.glob(f"**/{stage}/metrics.json")]:
        metrics = read_json(metrics_file, {})
        adapter = Path(metrics.get("checkpoint") or "")
        if (metrics.get("status") == "completed" and (adapter / "adapter_config.json").exists()
                and (model is None or record(adapter).get("model") == model)):
            found.append(((adapter / "adapter_config.json").stat().st_mtime, adapter))
        if found and metrics_file == root / stage / "metrics.json":
            return adapter  # this run's own result comes first
    return max(found)[1] if found else None


def record(checkpoint: str | Path) -> dict:
    """The checkpoint's `reasoning_lab.json` (base model, stage, what it was trained on); {} when it has none."""
    return read_json(Path(checkpoint) / CHECKPOINT_INFO, {})


def resolve_checkpoint(checkpoint_cfg: DictConfig, model_cfg: DictConfig, default_root: str | Path) -> Path | None:
    """The adapter `stage=eval` and `stage=answer` use: `checkpoint.eval` (`base`: none), else the newest
    checkpoint under `checkpoint.search` (or `default_root`), else None for the base model; checked against the
    model."""
    if checkpoint_cfg.eval == "base":
        return None
    if checkpoint_cfg.eval:
        if not Path(checkpoint_cfg.eval).exists():
            raise ReasoningLabError(f"checkpoint.eval={checkpoint_cfg.eval} does not exist; give an adapter directory, "
                                    "or base for the bare model")
        return check_checkpoint(checkpoint_cfg.eval, model_cfg=model_cfg)
    root = Path(checkpoint_cfg.search or default_root)
    if checkpoint_cfg.search and not root.exists():
        raise ReasoningLabError(f"checkpoint.search={root} does not exist; give a run directory or a folder of runs")
    found = newest_checkpoint(root) if root.exists() else None
    return check_checkpoint(found, model_cfg) if found else None


def training_record(init_from: str | None, data_cfg: DictConfig, sets: list[str]) -> list[dict]:
    """What an adapter was trained on: the record of the adapter it started from plus these sets, with the
    data settings that define them. Saved in every checkpoint (`trained_on`), so that evaluation can check
    that its test problems were held out, whichever data settings it uses."""
    inherited = record(init_from).get("trained_on", []) if init_from else []
    return inherited + [{"sets": list(sets), "data": OmegaConf.to_container(data_cfg, resolve=True)}]


@phase("saving")
def save_adapter(model, tokenizer, target: Path, model_cfg: DictConfig, extra: dict | None = None,
                 also=None) -> Path:
    """Write the adapter (and tokenizer) to `target` atomically: complete, or not there at all.
    `also(folder)` writes more files into the same checkpoint (e.g. PPO's value head)."""

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


COMPLETE = "reasoning_lab.complete"


def mark_complete(folder: Path, step: int) -> None:
    """Mark a Trainer checkpoint complete, once the Trainer has written all of it (callbacks.MarkComplete calls this)."""
    (folder / COMPLETE).write_text(str(step))
    stop_if_asked(folder)


def latest_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` under `output_dir` that was written completely."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if (p / COMPLETE).exists()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


@phase("training")
def train_resuming(trainer, output_dir: Path):
    """`trainer.train()`, continued from the newest complete checkpoint under `output_dir` when there is one
    (weights, optimizer, scheduler, random states and data position restored by the Trainer; the state of every
    callback with a state of its own, reasoning_lab.callbacks.CheckpointState, restored here). Returns the
    Trainer's result and the checkpoint it resumed from (None: from the start)."""
    resume = latest_complete_checkpoint(output_dir)
    if resume:
        log.info("resuming from %s", resume)
        for callback in trainer.callback_handler.callbacks:
            filename = getattr(callback, "filename", None)  # a CheckpointState
            if filename and (resume / filename).exists():
                callback.restore(read_json(resume / filename, None))
    return trainer.train(resume_from_checkpoint=str(resume) if resume else None), resume
