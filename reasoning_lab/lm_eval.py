"""lm-evaluation-harness on a checkpoint: the harness's GSM8K numbers beside this project's own.

    python -m reasoning_lab.lm_eval CHECKPOINT [--limit N] [--tasks gsm8k gsm8k_cot_self_consistency] [--k K]
                                   [--data-root DIR] [--chat] [--run-dir DIR]

The checkpoint (an adapter directory, or `base`) is loaded as every stage loads it (its reasoning_lab.json
names the model setup), merged, and handed to the harness's `HFLM`. The tasks are the harness's own YAMLs
(`gsm8k`: 5-shot "Question: ... Answer:", exact match after `#### ` (strict) or of the last number
(flexible); `gsm8k_cot_self_consistency`: 8-shot chain of thought, `--k` samples at T=0.2, maj@k), pointed at
the local GSM8K files under `--data-root` (default: `data.root`, `$REASONING_LAB_DATA`) instead of the hub.
The harness's results go to `<run_dir>/lm_eval/<checkpoint>/lm_eval.json`, and report.md gets a table of
them beside this project's accuracy on the same set for the same checkpoint, when the run evaluated it.
Requires lm-eval (`make install` installs it: the `lm_eval` extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from reasoning_lab.checkpoints import record
from reasoning_lab.config import compose_config
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.files import write_json
from reasoning_lab.model import load_base_model, load_model, load_tokenizer
from reasoning_lab.report import harness_markdown, write_report

log = logging.getLogger(__name__)

TASKS = ("gsm8k", "gsm8k_cot_self_consistency")
# the harness's YAML of each task, inside its package
TASK_FILES = {"gsm8k": "gsm8k/gsm8k.yaml", "gsm8k_cot_self_consistency": "gsm8k/gsm8k-cot-self-consistency.yaml"}


def local_tasks(data_root: Path, folder: Path, k: int, max_gen_toks: int) -> list[str]:
    """Task YAMLs that include the harness's own and read GSM8K from `data_root`; returns their names."""
    import lm_eval

    tasks_dir = Path(lm_eval.__file__).parent / "tasks"
    files = {"train": str(data_root / "gsm8k" / "train.jsonl"), "test": str(data_root / "gsm8k" / "test.jsonl")}
    for split, path in files.items():
        if not Path(path).is_file():
            raise ReasoningLabError(f"{path} not found: the harness's GSM8K task needs the GSM8K {split} split; "
                                    "point --data-root at a folder with gsm8k/train.jsonl and gsm8k/test.jsonl")
    names = []
    for task, relative in TASK_FILES.items():
        lines = [f"include: {tasks_dir / relative}", f"task: {task}_local", "dataset_path: json",
                 "dataset_name: null", "dataset_kwargs:", "  data_files:",
                 *(f"    {split}: {path}" for split, path in files.items())]
        if task == "gsm8k_cot_self_consistency":  # k samples instead of 64, and maj@k
            lines += [f"repeats: {k}", "generation_kwargs:", '  until: ["Q:", "\\n\\n"]', "  do_sample: true",
                      "  temperature: 0.2", f"  max_gen_toks: {max_gen_toks}", "filter_list:",
                      '  - name: "score-first"', "    filter:",
                      '      - {function: regex, regex_pattern: "The answer is (\\\\-?[0-9\\\\.\\\\,]*[0-9]+)"}',
                      "      - {function: take_first}", f'  - name: "maj@{k}"', "    filter:",
                      '      - {function: regex, regex_pattern: "The answer is (\\\\-?[0-9\\\\.\\\\,]*[0-9]+)"}',
                      "      - {function: majority_vote}", "      - {function: take_first}"]
        else:
            lines += ["generation_kwargs:", '  until: ["Question:", "</s>", "<|im_end|>"]', "  do_sample: false",
                      "  temperature: 0.0", f"  max_gen_toks: {max_gen_toks}"]
        (folder / f"{task}_local.yaml").write_text("\n".join(lines) + "\n")
        names.append(f"{task}_local")
    return names


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint lives in (the nearest folder above it with run_settings.json)."""
    for parent in checkpoint.resolve().parents:
        if (parent / "run_settings.json").exists():
            return parent
    return checkpoint.resolve().parent


def load(checkpoint: str):
    """The checkpoint's model (merged) and tokenizer, with the model setup its reasoning_lab.json names."""
    overrides = []
    if checkpoint != "base":
        if not (Path(checkpoint) / "adapter_config.json").is_file():
            raise ReasoningLabError(f"{checkpoint} is not an adapter directory (no adapter_config.json); point at a "
                                    "checkpoint (the curriculum's final adapter is named in <run_dir>/curriculum/metrics.json), or `base`")
        model = record(checkpoint).get("model")
        if model:
            overrides.append(f"model={model}")
    cfg = compose_config(overrides)
    tokenizer = load_tokenizer(cfg.model)
    if checkpoint == "base":
        return load_base_model(cfg.model), tokenizer, cfg
    model = load_model(cfg.model, init_from=checkpoint, trainable=False)
    return (model.merge_and_unload() if cfg.model.quantization == "none" else model), tokenizer, cfg


def harness(checkpoint: str, tasks: list[str], limit: int | None, k: int, data_root: Path, chat: bool,
            max_gen_toks: int, batch_size: int) -> dict:
    """Run the harness; returns its results, trimmed to what the report needs plus the raw per-task dicts."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ReasoningLabError("lm-eval is not installed; `make install` installs it (or pip install "
                                "'reasoning_lab[lm_eval]')") from None
    model, tokenizer, cfg = load(checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        names = local_tasks(data_root, Path(folder), k, max_gen_toks)
        wanted = [f"{t}_local" for t in tasks]
        unknown = [t for t in wanted if t not in names]
        if unknown:
            raise ReasoningLabError(f"--tasks {' '.join(tasks)}: each must be one of {', '.join(TASKS)}")
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        out = lm_eval.simple_evaluate(model=lm, tasks=wanted, limit=limit, task_manager=TaskManager(include_path=folder),
                                      apply_chat_template=chat, system_instruction=cfg.data.system_prompt if chat else None,
                                      random_seed=cfg.seed, numpy_random_seed=cfg.seed, torch_random_seed=cfg.seed,
                                      fewshot_random_seed=cfg.seed, bootstrap_iters=1000, log_samples=False)
    tasks_out = {}
    for name, metrics in out["results"].items():
        task = name.removesuffix("_local")
        n = out.get("n-samples", {}).get(name, {}).get("effective")
        scores = {key.split(",")[1]: {"value": value, "stderr": metrics.get(key.replace(",", "_stderr,"))}
                  for key, value in metrics.items() if key.startswith("exact_match,")}
        tasks_out[task] = {"n": n, "num_fewshot": out["configs"][name].get("num_fewshot"), "scores": scores}
    return {"checkpoint": str(checkpoint), "model": cfg.model.name, "limit": limit, "k": k, "chat_template": chat,
            "data_root": str(data_root), "harness_version": lm_eval.__version__, "tasks": tasks_out,
            "raw": {name: out["results"][name] for name in out["results"]}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reasoning_lab.lm_eval", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="an adapter directory, or `base`")
    parser.add_argument("--limit", type=int, default=None, help="the first N test problems (default: all 1319)")
    parser.add_argument("--tasks", nargs="+", default=["gsm8k"], help=f"of {', '.join(TASKS)}")
    parser.add_argument("--k", type=int, default=8, help="samples per problem of gsm8k_cot_self_consistency (maj@k)")
    parser.add_argument("--data-root", default=os.environ.get("REASONING_LAB_DATA"),
                        help="the folder with gsm8k/train.jsonl and gsm8k/test.jsonl (default: $REASONING_LAB_DATA)")
    parser.add_argument("--chat", action="store_true", help="ask with the chat template and the reasoning system prompt")
    parser.add_argument("--max-gen-toks", type=int, default=256, help="token budget per answer (the harness's default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--run-dir", default=None, help="the run directory whose report.md gets the harness's table "
                        "(default: the checkpoint's own); its lm_eval/<checkpoint>/ receives lm_eval.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    try:
        if args.data_root is None:
            raise ReasoningLabError("no GSM8K files: pass --data-root <folder with gsm8k/*.jsonl> (or set "
                                    "REASONING_LAB_DATA); the hub's copy is not used, so that runs are offline")
        if args.limit is not None and args.limit < 1 or args.k < 1:
            raise ReasoningLabError(f"--limit {args.limit} --k {args.k}: each must be at least 1")
        results = harness(args.checkpoint, args.tasks, args.limit, args.k, Path(args.data_root), args.chat,
                          args.max_gen_toks, args.batch_size)
        own = run_dir_of(Path(args.checkpoint)) if args.checkpoint != "base" else Path.cwd()
        label = "base" if args.checkpoint == "base" else Path(args.checkpoint).resolve().relative_to(own).as_posix()
        run_dir = Path(args.run_dir) if args.run_dir else own
        out = run_dir / "lm_eval" / label.replace("/", "_")
        out.mkdir(parents=True, exist_ok=True)

        write_json(out / "lm_eval.json", {**results, "label": label})
        print(harness_markdown(run_dir, [json.loads((out / "lm_eval.json").read_text())]))
        write_report(run_dir)  # report.md gets the harness's table (when the run has evaluations)
    except ReasoningLabError as error:
        print(f"reasoning_lab.lm_eval: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
