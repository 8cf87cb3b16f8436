"""Reading offline W&B runs back in tests: wandb has no public reader for `.wandb` files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: str | Path):
    """Yield the protobuf records of an offline `.wandb` file."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, chunks = 7, []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        chunks.append(payload)
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def read_wandb_file(path: str | Path) -> dict:
    """`{"config": {...}, "history": [{key: value}, ...], "summary": {key: value}, "group": ..., "name": ...}`
    of an offline run."""
    config, history, summary, run, finished = {}, [], {}, {}, False
    for record in wandb_records(path):
        which = record.WhichOneof("record_type")
        finished = finished or which == "exit"
        if which == "history":
            history.append({item.nested_key[0] if item.nested_key else item.key: json.loads(item.value_json)
                            for item in record.history.item})
        elif which == "summary":
            for item in record.summary.update:
                summary[item.nested_key[0] if item.nested_key else item.key] = json.loads(item.value_json)
        if which == "run":
            run = {"group": record.run.run_group, "name": record.run.display_name, "job_type": record.run.job_type,
                   "id": record.run.run_id}
        if which in ("config", "run"):  # the initial config travels in the run record
            updates = record.config.update if which == "config" else record.run.config.update
            for item in updates:
                config[item.key] = json.loads(item.value_json)
    # finished: the exit record is there (W&B's writer may still be flushing just after run.finish())
    return {"config": config, "history": history, "summary": summary, "finished": finished, **run}


def find_wandb_files(run_dir: str | Path) -> list[Path]:
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
