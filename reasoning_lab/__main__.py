"""Command line: `python -m reasoning_lab stage=<name> [overrides]`.

Hydra composes conf/ into one typed config; `stage.name` picks the stage module that runs it.
Mistakes in the command line or the YAML end in one readable line (exit code 2), not a traceback;
set HYDRA_FULL_ERROR=1 to see the full stack instead.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from reasoning_lab.card import check_push, final_checkpoint, model_card, push
from reasoning_lab.config import check_renamed, register_configs, validate
from reasoning_lab.distributed import is_main_process
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.files import write_text
from reasoning_lab.stages import STAGES, runner
from reasoning_lab.tracking import download_adapter, own_run_dir


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def run(cfg: DictConfig) -> dict:
    try:
        validate(cfg)
        for key in ("init_from", "eval"):  # wandb:<entity>/<project>/<name>:<alias> -> the downloaded adapter
            if str(cfg.checkpoint[key] or "").startswith("wandb:"):
                cfg.checkpoint[key] = download_adapter(cfg.checkpoint[key], cfg)
        name = cfg.stage.name
        carded = STAGES[name].model_card
        if carded:
            check_push(cfg)
        run_dir = HydraConfig.get().runtime.output_dir
        with own_run_dir(cfg, run_dir):
            metrics = runner(name)(cfg, run_dir)
            if carded and is_main_process():  # what the adapter is, beside it; pushed with it when asked
                command = " ".join(["python -m reasoning_lab", *HydraConfig.get().overrides.task])
                write_text(Path(run_dir) / "model_card.md", model_card(cfg, run_dir, command))
                checkpoint = final_checkpoint(metrics)
                if cfg.export.push_to_hub and checkpoint:
                    push(cfg, run_dir, checkpoint)
        if cfg.optimized_metric:  # a sweeper (e.g. Optuna) maximises this number
            if cfg.optimized_metric not in metrics:
                raise ReasoningLabError(f"optimized_metric={cfg.optimized_metric} is not in the {name} stage's "
                                        f"metrics; choose one of {', '.join(sorted(metrics))}")
            return float(metrics[cfg.optimized_metric])
        return metrics
    except (ReasoningLabError, OmegaConfBaseException) as error:  # a mistake of the user's: one line, not Hydra's report
        if HydraConfig.get().mode == RunMode.MULTIRUN or wants_trace():
            raise  # the sweep records the failed job and goes on with the others; HYDRA_FULL_ERROR=1 shows the stack
        fail(error)


def one_line(error: BaseException) -> str:
    """The readable core of a config error: the key it names and what is wrong, on one line."""
    parts = []
    while error is not None:
        text = str(error).split("\n    full_key:")[0]  # OmegaConf appends the object dump after full_key
        key = getattr(error, "full_key", None)
        text = text.split("Config search path")[0]  # Hydra lists its search path after the options
        text = " ".join(text.replace("\t", " ").split())
        if key and key not in text:
            text = f"{key}: {text}"
        if text and text not in parts:
            parts.append(text)
        error = error.__cause__
    return " -- ".join(parts)


WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.ENOTDIR, errno.EDQUOT}


# what the user set HYDRA_FULL_ERROR to, kept before main() sets it for Hydra
USER_TRACE = "REASONING_LAB_HYDRA_FULL_ERROR"


def wants_trace() -> bool:
    """The user asked for the full stack (HYDRA_FULL_ERROR=1) instead of one line."""
    return os.environ.get(USER_TRACE, os.environ.get("HYDRA_FULL_ERROR")) == "1"


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    register_configs()
    signal.signal(signal.SIGTERM, interrupt)  # SIGTERM ends a stage like Ctrl-C: metrics say "interrupted"
    user_wants_trace = wants_trace()
    os.environ.setdefault(USER_TRACE, os.environ.get("HYDRA_FULL_ERROR", "0"))
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not any(a.startswith("hydra.run.dir=") for a in sys.argv):
        fail(ValueError("a multi-process run (accelerate launch) needs hydra.run.dir=<dir>, so that every "
                        "process writes into the same run directory"))
    try:
        check_renamed(sys.argv[1:])
    except ReasoningLabError as error:
        fail(error)
    run_dir = "the run directory"
    for arg in sys.argv[1:]:  # a run directory that cannot be made: one line before Hydra tries
        if arg.startswith("hydra.run.dir="):
            run_dir = arg.split("=", 1)[1]
            try:
                Path(run_dir).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                fail(ReasoningLabError(f"{arg}: cannot create it ({error.strerror}); choose a writable hydra.run.dir=<dir>"))
    try:
        run()
    except (ReasoningLabError, HydraException, OmegaConfBaseException) as error:
        if user_wants_trace:
            raise
        fail(error)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the stage recorded "interrupted" in its metrics.json
        if user_wants_trace:
            raise
        print(f"{close_progress_bars()}reasoning_lab: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except OSError as error:  # an unwritable run directory, a full disk
        if user_wants_trace or error.errno not in WRITE_ERRORS:
            raise
        fix = ("free some space, then rerun the same command to resume" if error.errno == errno.ENOSPC
               else "choose a writable hydra.run.dir=<dir>")
        fail(ReasoningLabError(f"cannot write {error.filename or run_dir}: {error.strerror}; {fix}"))


def close_progress_bars() -> str:
    """Close the bars a stage left open; returns the line break that puts the next message on a line of its own."""
    bars = []
    if "tqdm" in sys.modules:
        from tqdm import tqdm

        bars = list(tqdm._instances)
        for bar in bars:
            bar.close()
    return "\n" if bars else ""


def fail(error: BaseException) -> None:
    print(f"{close_progress_bars()}reasoning_lab: error: {one_line(error)}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
