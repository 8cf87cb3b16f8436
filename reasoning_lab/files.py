"""Files that must be whole or absent: what every module that writes a run directory uses.

- `write_text`, `write_json`: a reader sees the old file or the new one, never half of one.
- `build_once`: a folder filled in a temporary sibling and renamed into place (checkpoints, caches).
- `read_json`: a JSON file, or a default when it is not there.
- `stop_if_asked`: the kill tests' hook, called right after something complete was written.
In a distributed job only rank 0 writes.
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

from reasoning_lab.distributed import is_main_process

log = logging.getLogger(__name__)


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
    return json.loads(Path(path).read_text()) if Path(path).exists() else default


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


def stop_if_asked(saved: Path) -> None:
    """With REASONING_LAB_STOP_AFTER=<path suffix> set, the process sends itself REASONING_LAB_STOP_SIGNAL (TERM,
    or KILL) right after the folder at that path is complete (a trainer's `checkpoint-N`, PPO's `ppo_state/step-N`):
    the kill tests stop a run at a known point."""
    target = os.environ.get("REASONING_LAB_STOP_AFTER")
    if target and Path(saved).as_posix().endswith(target):
        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("REASONING_LAB_STOP_SIGNAL", "TERM")))
