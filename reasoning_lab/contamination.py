"""The contamination guard: training questions that overlap an evaluation set (word n-grams, numbers normalised),
checked before training (`contamination_report`: refuse, or drop the overlapping questions) and before evaluating
a checkpoint (`held_out_check`: the sets its record says it was trained on against the test problems)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reasoning_lab.checkpoints import record
from reasoning_lab.config import OWN
from reasoning_lab.data import load_problems, source_rows
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.readers import BENCHMARKS
from reasoning_lab.timing import phase

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Contamination guard
# ----------------------------------------------------------------------------------------------

WORD = re.compile(r"[a-z]+|\d+(?:[.,]\d+)*")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of normalised text: lower case, punctuation dropped, every number replaced by `#`
    (so templates that only change the numbers, like GSM-Symbolic's, still match)."""
    words = ["#" if w[0].isdigit() else w for w in WORD.findall(text.lower())]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def is_procedural(data_cfg: DictConfig, name: str) -> bool:
    return data_cfg.sets[name].source not in BENCHMARKS + OWN


@phase("data")
def contamination_report(data_cfg: DictConfig, train_names: list[str], eval_names: list[str],
                         eval_data_cfg: DictConfig | None = None) -> dict:
    """`train_names` are sets of data.sets; `eval_names` are sources (what evaluation reads), drawn with
    `eval_data_cfg` (default: the same data settings; `stage=eval` passes its own against the settings a
    checkpoint recorded it was trained with).

    For each (training set, evaluation set) pair: how many training questions share an n-gram with
    an evaluation question (for two splits of one generator: how many questions are identical).

    Above `data.contamination.max_share` of a training set, `contamination.action=refuse` stops the run
    and `action=drop` removes the overlapping training questions (listed in `report["dropped"]`, counted
    per set); `data.allow_contamination=true` keeps everything. Evaluation sets that cannot be loaded
    are listed as skipped.
    """
    settings, n = data_cfg.contamination, data_cfg.contamination.ngram
    eval_data_cfg = eval_data_cfg if eval_data_cfg is not None else data_cfg
    eval_sets, skipped = {}, {}
    for name in eval_names:
        try:
            problems = source_rows(name, "test", eval_data_cfg)
            eval_sets[name] = ({p.question for p in problems}, set().union(*(ngrams(p.question, n) for p in problems)))
        except ReasoningLabError as error:
            skipped[name] = str(error)
    report = {"ngram": n, "max_share": settings.max_share, "action": settings.action, "pairs": {},
              "skipped_eval_sets": skipped, "dropped": {}}
    dropped: set[str] = set()
    for train_name in train_names:
        train = load_problems(data_cfg, train_name, "train")
        grams = [ngrams(p.question, n) for p in train]
        for eval_name, (questions, eval_grams) in eval_sets.items():
            if is_procedural(data_cfg, train_name) and data_cfg.sets[train_name].source == eval_name:
                # one generator's templates always share n-grams: its held-out rows must differ exactly
                hits = [p.question for p in train if p.question in questions]
            else:
                hits = [p.question for p, g in zip(train, grams) if g & eval_grams]
            share = len(hits) / max(len(train), 1)
            report["pairs"][f"{train_name}->{eval_name}"] = {"overlapping": len(hits), "rows": len(train),
                                                             "share": round(share, 4)}
            if share <= settings.max_share or data_cfg.allow_contamination:
                continue
            if settings.action == "refuse":
                raise ReasoningLabError(
                    f"training set {train_name} overlaps evaluation set {eval_name}: {len(hits)} of {len(train)} "
                    f"questions share a {n}-gram; remove it from training, set data.contamination.action=drop, "
                    f"or data.allow_contamination=true"
                )
            log.warning("dropping %d training questions of %s that overlap %s", len(hits), train_name, eval_name)
            report["dropped"][train_name] = report["dropped"].get(train_name, 0) + len(set(hits) - dropped)
            dropped |= set(hits)
    report["dropped_questions"] = sorted(dropped)
    return report


def held_out_check(data_cfg: DictConfig, eval_sets: list[str], checkpoint: Path) -> list[dict]:
    """The contamination guard between this evaluation's sets (drawn with this run's data settings) and
    what the checkpoint records it was trained on (`trained_on`, with the data settings of each stage).
    Overlap above `data.contamination.max_share` stops the evaluation unless data.allow_contamination=true."""
    info = record(checkpoint)
    if "trained_on" not in info:
        log.warning("%s records no training data: the held-out check is skipped", checkpoint)
        return []
    reports = []
    for entry in info["trained_on"]:
        trained = OmegaConf.create(entry["data"])  # its contamination.action as trained: `drop` left those rows out
        trained.allow_contamination = data_cfg.allow_contamination  # the evaluation decides what it tolerates
        try:
            report = contamination_report(trained, entry["sets"], list(eval_sets), data_cfg)
        except ReasoningLabError as error:
            raise ReasoningLabError(f"{checkpoint} was trained on problems this evaluation would test ({error}); "
                                    "evaluate on other sets, or set data.allow_contamination=true to report anyway") from None
        report.pop("dropped_questions", None)
        reports.append({"sets": entry["sets"], **report})
    return reports
