"""Experiment tracking with Weights & Biases, each stage's status, and the run directory's lock and settings.

`logger.mode=auto` logs online when WANDB_API_KEY is set (an explicit WANDB_MODE wins) and otherwise writes an
offline run inside the run directory (`wandb sync <run_dir>/wandb/offline-run-*` uploads it later); when the
server cannot be reached the run goes on offline and says so in one line.

Adapters as artifacts (`logger.log_adapters`): the adapter a stage leaves as its result is logged as a W&B artifact
of type `lora-adapter` (aliases `latest` and the stage), and the adapter it started from (or evaluated) is declared
used, so W&B's lineage graph shows warm-up -> curriculum -> RL -> evaluation. An adapter's artifact is named by its
stage and the digest of its weights (`adapter_artifact_name`), so the stage that uses it names the very version the
stage before logged. Offline, the use is recorded as `use_artifact` records it online for a draft artifact (the
artifact logged with use-after-commit), and `wandb sync` uploads both edges. Trainer checkpoints stay on disk.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from reasoning_lab.distributed import is_main_process
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.files import read_json, write_json
from reasoning_lab.stages import STAGES
from reasoning_lab.timing import measure, summary

log = logging.getLogger(__name__)


def adapter_digest(model) -> str:
    """sha256 of the adapter weights as saved (peft's state dict, keys sorted): equal on every rank of a
    data-parallel job, and equal to the digest of the saved `adapter_model.safetensors`."""
    from peft import get_peft_model_state_dict

    return tensors_digest(get_peft_model_state_dict(model))


def tensors_digest(tensors: dict) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# settings that do not change what a run computes: a rerun may differ in them
NOT_RUN_SETTINGS = ("logger", "optimized_metric")
RUN_SETTINGS = "run_settings.json"


def flatten(tree, prefix: str = "", sep: str = ".") -> dict:
    """Nested dicts -> {"a.b.c": leaf} (keys joined by `sep`, each starting with `prefix`)."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in flatten(value, f"{prefix}{key}{sep}", sep).items()}
    return {prefix.rstrip(sep): tree}


def sweep_group(stage: str, sweep_dir: str | Path) -> str:
    """The W&B group of a sweep: the stage and the multirun directory's name."""
    return f"{stage}-{Path(sweep_dir).name}"


def swept_keys(sweep_dir: str | Path) -> list[str]:
    """The keys a sweep varies, from the command line Hydra saved in `<sweep dir>/multirun.yaml`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    path = Path(sweep_dir) / "multirun.yaml"
    if not path.exists():
        return []
    saved = OmegaConf.load(path)
    parsed = OverridesParser.create().parse_overrides([str(o) for o in saved.hydra.overrides.task])
    from_command_line = [o.key_or_group for o in parsed if o.is_sweep_override()]
    params = OmegaConf.select(saved, "hydra.sweeper.params") or {}  # sweeps defined in a preset's YAML
    return list(dict.fromkeys([*params.keys(), *from_command_line]))


def job_name(task_overrides: list[str], sweep_dir: str | Path) -> str:
    """A sweep job's run name: its values of the swept keys (`model.lora.r=4,curriculum.pacing=linear`)."""
    keys = swept_keys(sweep_dir)
    chosen = [o for o in task_overrides if o.split("=", 1)[0] in keys]
    return ",".join(chosen or task_overrides)


@contextmanager
def own_run_dir(cfg: DictConfig, run_dir: str | Path):
    """A run directory belongs to one run. While a process works in it, it holds a lock (`.lock`, released by
    the OS however the process ends): a second process is refused in one line naming the holder. The first run
    saves its settings (`run_settings.json`); a later run there resumes only with the same settings, else it is
    refused in one line naming the settings that differ."""
    import fcntl
    import socket

    if not is_main_process():  # rank 0 of a distributed job speaks for the run
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved, hydra_dir = run_dir / RUN_SETTINGS, run_dir / ".hydra"

    def restore_hydra_files():  # Hydra rewrote them for a command that is refused
        if saved.exists():
            for name, text in json.loads(saved.read_text())["hydra_files"].items():
                (hydra_dir / name).write_text(text)

    handle = open(run_dir / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        restore_hydra_files()
        raise ReasoningLabError(f"{run_dir} is in use by {holder}; wait for it to end, or choose another "
                                f"hydra.run.dir") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})")
        handle.flush()
        settings = json.loads(json.dumps({k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
                                          if k not in NOT_RUN_SETTINGS}, default=str))
        if saved.exists():
            first = json.loads(saved.read_text())
            before, now = flatten(first["settings"]), flatten(settings)
            differ = [k for k in sorted(before.keys() | now.keys()) if before.get(k, "<unset>") != now.get(k, "<unset>")]
            if differ:
                restore_hydra_files()
                shown = ", ".join(f"{k}={before.get(k, '<unset>')} here, now {now.get(k, '<unset>')}" for k in differ[:4])
                more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
                raise ReasoningLabError(f"{run_dir} holds a run with other settings ({shown}{more}); rerun with its "
                                        f"settings to resume it, or choose another hydra.run.dir")
        else:
            files = {p.name: p.read_text() for p in sorted(hydra_dir.glob("*.yaml"))}
            write_json(saved, {"settings": settings, "hydra_files": files})
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def run_identity(run_dir: str | Path) -> str:
    """The W&B identity of a run directory: made on its first run and kept in `<run_dir>/.wandb_id`."""
    path = Path(run_dir) / ".wandb_id"
    if not path.exists():
        import uuid

        path.write_text(uuid.uuid4().hex[:8] + "\n")
    return path.read_text().strip()


def auto_wandb_mode() -> str:
    """`logger.mode=auto`: an explicit WANDB_MODE wins; else online only with a key."""
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def wandb_online() -> bool:
    """Whether W&B is to be reached: a key, and no WANDB_MODE that says offline or disabled."""
    return bool(os.environ.get("WANDB_API_KEY")) and auto_wandb_mode() not in ("offline", "disabled")


def start_run(cfg: DictConfig, run_dir: str | Path, job_type: str):
    """Start (or rejoin) the W&B run of this stage in this run directory; None when `logger=none` and on ranks
    other than 0. Each stage is one W&B run (`job_type` = the stage) with a fixed id, `<identity>-<stage>`, so a
    resumed stage continues the same run (offline, its files share that id and `wandb sync` joins them), and all
    stages of one run directory form one W&B group (a sweep's jobs share the sweep's group instead). One run per
    stage rather than one for the whole directory: every trainer logs `train/*` against its own
    `train/global_step`, which starts at 0 again in the next stage."""
    if cfg.logger.backend != "wandb" or not is_main_process():
        os.environ["WANDB_DISABLED"] = "true"
        return None
    import wandb

    if wandb.run is not None:
        return wandb.run
    mode = cfg.logger.mode
    if mode == "auto":
        mode = auto_wandb_mode()
    os.environ.setdefault("WANDB_SILENT", "true")
    identity = run_identity(run_dir)
    group, name = cfg.logger.group or f"{Path(run_dir).name}-{identity}", Path(run_dir).name
    config = OmegaConf.to_container(cfg, resolve=True)
    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        config["overrides"] = list(hydra.overrides.task)
        if hydra.mode == RunMode.MULTIRUN:  # a sweep: one group, each job named by its overrides
            group = cfg.logger.group or sweep_group(cfg.stage.name, hydra.sweep.dir)
            name = job_name(list(hydra.overrides.task), hydra.sweep.dir)
    settings = dict(project=cfg.logger.project, entity=cfg.logger.entity, group=group, tags=list(cfg.logger.tags),
                    job_type=job_type, name=name, id=f"{identity}-{job_type}", resume="allow",
                    dir=str(run_dir), config=config)
    try:
        return wandb.init(mode=mode, settings=wandb.Settings(init_timeout=30), **settings)
    except Exception as error:  # unreachable server, bad key: the run goes on, logged offline
        if mode == "offline":
            raise
        line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        log.warning("W&B could not start online (%s); logging offline instead (wandb sync %s/wandb later)",
                    line, run_dir)
        return wandb.init(mode="offline", **settings)


ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def adapter_artifact_name(folder: str | Path) -> str:
    """`adapter-<stage>-<first 12 hex of the weights' sha256>`: the same name wherever the same adapter is logged."""
    import hashlib

    folder = Path(folder)
    stage = read_json(folder / "reasoning_lab.json", {}).get("stage", "adapter")
    digest = hashlib.sha256((folder / ADAPTER_FILES[0]).read_bytes()).hexdigest()[:12]
    return "adapter-" + "".join(c if c.isalnum() or c in "-_." else "-" for c in stage) + f"-{digest}"


def adapter_artifact(cfg: DictConfig, folder: str | Path, metadata: dict | None = None):
    """A draft `lora-adapter` artifact of the adapter in `folder`: its files, the base model, the LoRA settings,
    what it was trained on (the adapter's own record) and `metadata`."""
    import wandb

    folder = Path(folder)
    record = read_json(folder / "reasoning_lab.json", {})
    artifact = wandb.Artifact(adapter_artifact_name(folder), type="lora-adapter", metadata={
        "base_model": cfg.model.name, "base_model_source": cfg.model.source,
        "lora": OmegaConf.to_container(cfg.model.lora, resolve=True), "stage": record.get("stage"),
        "trained_on": record.get("trained_on"), **(metadata or {})})
    for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
        artifact.add_file(str(folder / name), name=name)
    return artifact


def record_adapters(run, cfg: DictConfig, stage: str, metrics: dict) -> None:
    """Lineage: the adapter this stage started from or evaluated, declared used; the adapter it trained, logged
    (aliases `latest` and the stage) with its steps and evaluation summary."""
    if run is None or not cfg.logger.get("log_adapters", True):
        return
    trains = STAGES[stage].trains if stage in STAGES else False
    used = metrics.get("init_from") if trains else metrics.get("checkpoint")
    if used and (Path(used) / ADAPTER_FILES[0]).exists():
        artifact = adapter_artifact(cfg, used)
        if run.settings._offline:  # what use_artifact does online for a draft artifact, which offline it refuses
            run._log_artifact(artifact, is_user_created=True, use_after_commit=True)
        else:
            run.use_artifact(artifact)
    made = metrics.get("checkpoint") if trains else None
    if made and (Path(made) / ADAPTER_FILES[0]).exists():
        run.log_artifact(adapter_artifact(cfg, made, {"steps": stage_steps(metrics),
                                                      "evaluation": evaluation_summary(metrics)}),
                         aliases=["latest", stage])


def download_adapter(reference: str, cfg: DictConfig) -> str:
    """`wandb:<entity>/<project>/<name>:<alias>` (a `lora-adapter` artifact) downloaded; returns its folder."""
    name = reference.removeprefix("wandb:")
    if not wandb_online():
        raise ReasoningLabError(f"{reference} names a W&B artifact, and W&B is not reachable here (no WANDB_API_KEY, "
                                "or WANDB_MODE offline); set WANDB_API_KEY, or point at the adapter's folder")
    import wandb

    try:
        artifact = wandb.Api().artifact(name, type="lora-adapter")
    except Exception as error:  # not found, no access, no network: one line
        raise ReasoningLabError(f"{reference}: W&B could not give that lora-adapter artifact ({error}); check the "
                                "name as <entity>/<project>/<name>:<alias>") from None
    return artifact.download(root=str(Path(cfg.paths.log_dir) / "artifacts" / artifact.name))


def stage_steps(metrics: dict):
    """The optimizer steps a training stage's metrics record."""
    for key in ("steps", "max_steps"):
        if isinstance(metrics.get(key), int):
            return metrics[key]
    train = metrics.get("train")
    return train.get("steps") if isinstance(train, dict) else None


def evaluation_summary(metrics: dict) -> dict:
    """Accuracy per set of the stage's last evaluation (`final_eval`, RL's `after`, `eval`), with its n."""
    for key in ("final_eval", "after", "eval"):
        sets = metrics.get(key)
        if isinstance(sets, dict) and sets and all(isinstance(v, dict) and "accuracy" in v for v in sets.values()):
            return {name: {"accuracy": v["accuracy"], "n": v.get("n")} for name, v in sets.items()}
    return {}


def log_summary(run, metrics: dict, prefix: str) -> None:
    """Final metrics of a stage into the W&B summary, flattened as `<prefix>/<key>`."""
    if run is None:
        return
    run.summary.update({key: value for key, value in flatten(metrics, f"{prefix}/", "/").items()
                        if isinstance(value, (int, float, str, bool)) or value is None})


def finish_run(run) -> None:
    if run is not None:
        run.finish()


def finished_stage(run_dir: str | Path, stage: str) -> dict | None:
    """The metrics of `stage` in `run_dir` when it already finished (a rerun skips it), else None."""
    metrics = read_json(Path(run_dir) / stage / "metrics.json", {})
    return metrics if metrics.get("status") == "completed" else None


def log_evaluation(run, results: dict, prefix: str, step: int | None = None) -> None:
    """An evaluation's per-dataset metrics under `<prefix>/<dataset>/<metric>` and a table of sample predictions;
    `step`: the training step they belong to (logged as `train/global_step`, the x axis of TRL's curves)."""
    if run is None:
        return
    import wandb

    flat = {f"{prefix}/{name}/{key}": value for name, metrics in results["datasets"].items()
            for key, value in metrics.items() if isinstance(value, (int, float))}
    columns = ["dataset", "question", "completion", "extracted", "gold", "correct"]
    rows = [[name, r["question"], r["greedy"], str(r["extracted"]), r["gold"], r["correct"]]
            for name, examples in results.get("examples", {}).items() for r in examples]
    run.log({**flat, f"{prefix}/predictions": wandb.Table(columns=columns, data=rows),
             **({"train/global_step": step} if step is not None else {})})
    run.summary.update(flat)


@contextmanager
def stage_run(cfg: DictConfig, run_dir: str | Path, stage: str):
    """The bookkeeping every stage shares: `<run_dir>/<stage>/metrics.json` and the W&B run.

    metrics.json says `"status": "running"` while the stage works, then `completed`, `failed` (with the
    error) or `interrupted`, so a half-finished stage is never taken for a finished one.
    Yields `(stage_dir, metrics, wandb_run)`; the stage fills `metrics` in.
    """
    stage_dir = Path(run_dir) / stage
    metrics = {"stage": stage, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(stage_dir / "metrics.json", metrics)
    wandb_run = None
    began = time.perf_counter()
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with measure() as phases:  # where the time went (reasoning_lab.timing)
        try:
            wandb_run = start_run(cfg, run_dir, stage)
            yield stage_dir, metrics, wandb_run
            metrics["status"] = "completed"
            record_adapters(wandb_run, cfg, stage, metrics)
        except KeyboardInterrupt:
            metrics["status"] = "interrupted"
            raise
        except Exception as error:
            metrics.update(status="failed", error=f"{type(error).__name__}: {error}")
            raise
        finally:
            metrics["wall_seconds"] = round(time.perf_counter() - began, 1)
            metrics["timing"] = phases.table()
            if torch.cuda.is_available():
                metrics["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            write_json(stage_dir / "metrics.json", metrics)
            log.info(summary(stage, metrics["wall_seconds"], metrics["timing"]))
            log_summary(wandb_run, metrics, stage)
            finish_run(wandb_run)
