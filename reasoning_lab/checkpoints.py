"""Checkpoints: everything a stage writes that must be whole or absent, and how a run finds its way back.

- atomic files (`write_text`, `write_json`) and folders (`build_once`): a reader sees the old version or the
  new one, never half of one; in a distributed job only rank 0 writes.
- adapter checkpoints (`save_adapter`): the adapter, its tokenizer and `reasoning_lab.json`, the record of the
  base model and of what it was trained on (`training_record`); `check_checkpoint` refuses an incomplete,
  damaged or other-model checkpoint in one line.
- finding them, one policy: `newest_checkpoint` (the newest complete adapter below a folder), used by
  `resolve_checkpoint` (stage=eval / answer) and `starting_checkpoint` (stage=rl).
- resume: a finished stage says so in `<stage>/metrics.json` (`finished_stage`); the Trainer's `checkpoint-N/`
  folders are marked complete after the save (`mark_complete`, `latest_complete_checkpoint`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reasoning_lab.distributed import is_main_process, wait_for_everyone
from reasoning_lab.errors import ReasoningLabError

log = logging.getLogger(__name__)


def finished_stage(run_dir: str | Path, stage: str) -> dict | None:
    """The metrics of `stage` in `run_dir` when it already finished (a rerun skips it), else None."""
    metrics = read_json(Path(run_dir) / stage / "metrics.json", {})
    return metrics if metrics.get("status") == "completed" else None


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (write_text). In a distributed job only rank 0 writes."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write a file atomically: a reader sees the old file or the new one, never half of one.
    In a distributed job only rank 0 writes."""
    if not is_main_process():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:  # a full disk: the old file stays, and no partial temporary file is left beside it
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path, default):
    return json.loads(path.read_text()) if path.exists() else default


CHECKPOINT_INFO = "reasoning_lab.json"  # written beside every adapter: which base model it belongs to


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
    ends with it (e.g. `curriculum/stage_4`); `model`: only those whose record names this base model."""
    root = Path(root)
    if (root / "adapter_config.json").exists():
        return root
    found = [p.parent for p in root.glob("**/adapter_config.json")
             if not any(part.startswith(".") or part == "trainer" for part in p.parent.relative_to(root).parts)
             and (named is None or p.parent.as_posix().endswith(named))
             and (model is None or record(p.parent).get("model") == model)]
    return max(found, key=lambda p: (p / "adapter_config.json").stat().st_mtime) if found else None


def record(checkpoint: str | Path) -> dict:
    """The checkpoint's `reasoning_lab.json` (base model, stage, what it was trained on); {} when it has none."""
    return read_json(Path(checkpoint) / CHECKPOINT_INFO, {})


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
    found = newest_checkpoint(root) if root.exists() else None
    return check_checkpoint(found, cfg.model) if found else None


def training_record(init_from: str | None, data_cfg: DictConfig, sets: list[str]) -> list[dict]:
    """What an adapter was trained on: the record of the adapter it started from plus these sets, with the
    data settings that define them. Saved in every checkpoint (`trained_on`), so that evaluation can check
    that its test problems were held out, whichever data settings it uses."""
    inherited = record(init_from).get("trained_on", []) if init_from else []
    return inherited + [{"sets": list(sets), "data": OmegaConf.to_container(data_cfg, resolve=True)}]


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
    """Mark a Trainer checkpoint complete, once the Trainer has written all of it (sft.MarkComplete calls this)."""
    (folder / COMPLETE).write_text(str(step))
    stop_if_asked(folder)


def stop_if_asked(saved: Path) -> None:
    """With REASONING_LAB_STOP_AFTER=<path suffix> set, the process sends itself REASONING_LAB_STOP_SIGNAL (TERM,
    or KILL) right after the checkpoint at that path is complete (PPO's state at step N: `ppo_state/step-N`): the
    kill tests stop a run at a known point."""
    target = os.environ.get("REASONING_LAB_STOP_AFTER")
    if target and Path(saved).as_posix().endswith(target):
        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("REASONING_LAB_STOP_SIGNAL", "TERM")))


def latest_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` under `output_dir` that was written completely."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if (p / COMPLETE).exists()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def starting_checkpoint(cfg: DictConfig, run_dir: str) -> str | None:
    """init_from, else this run's last curriculum stage, else the newest last curriculum stage of the same
    model under logs/, else None (fresh adapters on the base model, said in the log)."""
    if cfg.init_from:
        return cfg.init_from
    last = f"curriculum/stage_{len(cfg.curriculum.stages)}"
    if (Path(run_dir) / last / "adapter_config.json").exists():
        return str(check_checkpoint(Path(run_dir) / last, cfg.model))
    found = newest_checkpoint("logs", named=last, model=cfg.model.name) if Path("logs").exists() else None
    if found:
        return str(found)
    log.warning("no curriculum checkpoint of model=%s found (pass init_from=<adapter dir>): RL starts from "
                "fresh adapters", cfg.model.name)
    return None
