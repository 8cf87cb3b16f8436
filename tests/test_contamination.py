"""The contamination guard (reasoning_lab.contamination): n-grams, refusing or dropping overlapping training
questions, and the held-out check of a checkpoint against what it was trained on."""

import json

import pytest

from reasoning_lab.contamination import contamination_report, ngrams
from reasoning_lab.data import load_problems
from reasoning_lab.errors import ReasoningLabError
from tests.helpers import make_config


@pytest.fixture(scope="module")
def real(shared_data):
    return make_config("data=real", f"data.root={shared_data}").data


def test_ngrams_ignore_numbers_and_case():
    assert ngrams("James gets 80 emails a day.", 3) == ngrams("james gets 160 EMAILS a day", 3)


def test_guard_refuses_gsm_symbolic_next_to_gsm8k_test(real):
    cfg = make_config("data=real", f"data.root={real.root}", "data.generic.tasks=[gsm_symbolic]",
                      "data.generic.levels=[1]", "data.contamination.action=refuse")
    with pytest.raises(ReasoningLabError, match="training set generic overlaps evaluation set gsm8k"):
        contamination_report(cfg.data, ["generic"], ["gsm8k"])
    allowed = make_config("data=real", f"data.root={real.root}", "data.generic.tasks=[gsm_symbolic]",
                          "data.generic.levels=[1]", "data.allow_contamination=true")
    report = contamination_report(allowed.data, ["generic"], ["gsm8k"])
    assert report["pairs"]["generic->gsm8k"]["share"] > 0.2 and not report["dropped_questions"]


def test_guard_passes_clean_sets_and_drops_aqua_dev_overlap(real):
    report = contamination_report(real, ["gsm8k", "strategyqa", "aqua"], ["gsm8k", "aqua", "strategyqa"])
    assert report["pairs"]["gsm8k->gsm8k"]["share"] <= 0.01
    assert report["pairs"]["strategyqa->strategyqa"]["overlapping"] == 0
    assert report["pairs"]["aqua->aqua"]["share"] > 0.01 and report["dropped"]["aqua"] > 0
    test_questions = {p.question for p in load_problems(real, "aqua", "test")}
    assert not set(report["dropped_questions"]) & {p.question for p in load_problems(real, "gsm8k", "train")}
    assert test_questions  # the dropped rows are training rows, the test split is untouched


def test_same_generator_sets_are_checked_for_identical_questions():
    cfg = make_config()
    report = contamination_report(cfg.data, ["generic", "gsm8k"], ["generic", "synthetic_gsm8k"])
    assert report["pairs"]["generic->generic"]["overlapping"] == 0
    assert report["pairs"]["gsm8k->synthetic_gsm8k"]["overlapping"] == 0


def test_eval_checks_what_the_checkpoint_was_trained_on(tmp_path, shared_data):
    """The guard runs against the checkpoint's `trained_on` record: held-out generated sets pass whatever
    the evaluation's data.seed; AQuA dev kept in training (action refuse + allowed at training time)
    overlaps AQuA test and stops the evaluation; the same rows dropped at training time pass."""
    from omegaconf import OmegaConf

    from reasoning_lab.contamination import held_out_check
    from reasoning_lab.errors import ReasoningLabError

    trained = make_config("data.seed=0")
    record = [{"sets": ["generic", "gsm8k", "aqua", "strategyqa"], "data": OmegaConf.to_container(trained.data)}]
    (tmp_path / "reasoning_lab.json").write_text(json.dumps({"trained_on": record}))
    cfg = make_config("data.seed=1", "eval.datasets=[generic,synthetic_gsm8k,synthetic_aqua,synthetic_strategyqa]")
    (report,) = held_out_check(cfg.data, list(cfg.eval.datasets), tmp_path)
    assert all(pair["overlapping"] == 0 for pair in report["pairs"].values()) and len(report["pairs"]) == 16

    real = make_config("data=real", f"data.root={shared_data}", "data.contamination.action=refuse")
    real_record = OmegaConf.to_container(real.data)
    (tmp_path / "reasoning_lab.json").write_text(json.dumps({"trained_on": [{"sets": ["aqua"], "data": real_record}]}))
    evaluation = make_config("data=real", f"data.root={shared_data}", "eval.datasets=[aqua]")
    with pytest.raises(ReasoningLabError, match="was trained on problems this evaluation would test"):
        held_out_check(evaluation.data, list(evaluation.eval.datasets), tmp_path)
    real_record["contamination"]["action"] = "drop"
    (tmp_path / "reasoning_lab.json").write_text(json.dumps({"trained_on": [{"sets": ["aqua"], "data": real_record}]}))
    (report,) = held_out_check(evaluation.data, list(evaluation.eval.datasets), tmp_path)
    assert report["dropped"]["aqua"] > 0
