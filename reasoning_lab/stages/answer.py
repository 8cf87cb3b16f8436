"""Ask a trained model: one question (or a file of them) in, a self-consistent answer out.

Recipe: pick the adapter (checkpoint.eval, else the newest under `checkpoint.search` or `paths.log_dir`, else the
base model) -> load -> sample eval.k reasoning paths per question -> majority vote over the extracted
canonical answers (reasoning_lab.decoding.self_consistency; eval.k=0, the default: the greedy answer alone) -> print
the answer, the vote counts and one path that reached it; every path is saved in `<run_dir>/answers.jsonl`.

    python -m reasoning_lab stage=answer question="A train travels 60 km in 1.5 hours. What is its speed in km/h?"
    python -m reasoning_lab stage=answer questions=my_questions.jsonl   # one {"question": ...} per line
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig
from transformers import set_seed

from reasoning_lab.checkpoints import resolve_checkpoint
from reasoning_lab.decoding import self_consistency
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.evaluation import choose_temperature, validation_problems
from reasoning_lab.model import load_base_model, load_model, load_tokenizer


def read_questions(cfg: DictConfig) -> list[str]:
    if cfg.answer.questions:
        path = Path(cfg.answer.questions)
        if not path.is_file():
            raise ReasoningLabError(f"answer.questions={path} is not a file; give a JSONL file with one {{\"question\": ...}} per line")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ReasoningLabError(f"answer.questions={path} is not UTF-8 text; give a JSONL file with one "
                                    f"{{\"question\": ...}} per line") from None
        questions = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                question = json.loads(line).get("question")
            except (json.JSONDecodeError, AttributeError, RecursionError):
                question = None
            if not isinstance(question, str) or not question.strip():
                raise ReasoningLabError(f"{path}:{number} has no non-empty \"question\" string: {line[:80]!r}")
            questions.append(question.strip())
        if not questions:
            raise ReasoningLabError(f"{path} holds no questions")
        return questions
    if cfg.answer.question is None or not str(cfg.answer.question).strip():
        raise ReasoningLabError('no question: add answer.question="..." (or answer.questions=<file.jsonl>) to the command')
    return [str(cfg.answer.question).strip()]


def show(result: dict, reason: bool) -> str:
    votes = ", ".join(f"{answer}: {count}" for answer, count in result["votes"].items())
    lines = [f"answer: {result['answer']}", f"votes ({sum(result['votes'].values())} paths): {votes}"]
    path = next((p for p in result["paths"] if p["answer"] == result["answer"]), result["paths"][0])
    lines.append(("reasoning of one path that reached it:\n" if reason else "direct answer:\n") + path["completion"])
    return "\n".join(lines)


def run(cfg: DictConfig, run_dir: str) -> dict:
    questions = read_questions(cfg)
    checkpoint = resolve_checkpoint(cfg.checkpoint, cfg.model, default_root=cfg.paths.log_dir)
    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model)
    model = load_base_model(cfg.model) if checkpoint is None else load_model(cfg.model, str(checkpoint), trainable=False)
    print(f"model: {cfg.model.name} + {checkpoint or 'no adapter (base model)'}", flush=True)
    temperature = cfg.eval.temperature
    if temperature == "auto" and cfg.eval.k > 0:  # chosen for this checkpoint on the evaluation sets' validation problems
        choice = choose_temperature(model, tokenizer, validation_problems(cfg.data, list(cfg.eval.datasets),
                                                                          cfg.eval.auto_temperature.limit),
                                    cfg.eval, cfg.eval.auto_temperature, cfg.data.system_prompt, "answer")
        temperature = choice["chosen"]
        print(f"temperature: {temperature} (eval.temperature=auto: samples' accuracy {choice['samples_accuracy']} "
              f"against greedy {choice['greedy_accuracy']} on {choice['n']} validation problems)", flush=True)
    out = Path(run_dir) / "answers.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as handle:
        for question in questions:
            result = self_consistency(
                model, tokenizer, question, k=cfg.eval.k, kind=cfg.answer.kind, reason=cfg.answer.reason,
                system_prompt=cfg.data.system_prompt, temperature=temperature, top_p=cfg.eval.top_p,
                max_new_tokens=cfg.eval.max_new_tokens or 256, vote=cfg.eval.vote,
            )
            handle.write(json.dumps({"question": question, "checkpoint": str(checkpoint or "base"),
                                     "reason": cfg.answer.reason, **result}) + "\n")
            handle.flush()
            print(("\n" if len(questions) > 1 else "") + (f"question: {question}\n" if len(questions) > 1 else "")
                  + show(result, cfg.answer.reason), flush=True)
    print(f"\nall paths saved in {out}")
    return {"answers": str(out), "questions": len(questions)}
