"""Rewards (reasoning_lab.rewards): values on hand cases, gold from the answer column, totality on junk."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.rewards import RANGES, REWARDS, correctness, format, partial_credit, reward_functions

GOOD = "<think>\n3 + 4 = 7\n</think>\n7"


def one(func, text, answer="7", kind="number", options=None, **kwargs):
    return func([text], answer=[answer], kind=[kind], options=[options], **kwargs)[0]


@pytest.mark.parametrize("text, answer, kind, expected", [
    (GOOD, "7", "number", 1.0),
    (GOOD, "8", "number", 0.0),
    ("<think>x</think>\nThe answer is 1,000.", "1000", "number", 1.0),
    ("<think>options</think>\n(C)", "C", "choice", 1.0),
    ("<think>options</think>\nB", "C", "choice", 0.0),
    ("<think>hmm</think>\nyes", "yes", "yesno", 1.0),
    ("<think>unclosed 7", "7", "number", 0.0),
    ("yes", "yes", "yesno", 0.0),                                     # a bare answer is a guess
    ("7", "7", "number", 0.0),
])
def test_correctness(text, answer, kind, expected):
    assert one(correctness, text, answer, kind) == expected


def test_correctness_compares_with_the_gold_column_not_the_prompt():
    prompt = [{"role": "user", "content": "What is 3 + 4? Answer 7."}]
    assert correctness([GOOD], prompts=[prompt], answer=["8"], kind=["number"]) == [0.0]


def test_conversational_completions_are_read():
    assert correctness([[{"role": "assistant", "content": GOOD}]], answer=["7"], kind=["number"]) == [1.0]


@pytest.mark.parametrize("text, answer, kind, expected", [
    (GOOD, "7", "number", 0.0),                                       # correct: no partial credit
    ("<think>\n3 + 4 = 7\n</think>\n8", "7", "number", 0.3),          # gold in the reasoning
    ("<think>\n3 + 5 = 8\n</think>\n7.5", "7", "number", 0.2),        # within 10%
    ("<think>\n3 + 5 = 8\n</think>\n70", "7", "number", 0.0),         # far off
    ("<think>pick</think>\nI think it is (C) because", "C", "choice", 0.3),  # right letter, malformed
    ("<think>pick</think>\nI think it is (B) because", "C", "choice", 0.0),
    ("<think>so</think>\nSo it is yes.", "yes", "yesno", 0.3),
    ("yes", "yes", "yesno", 0.3),                                     # right, but without reasoning
])
def test_partial_credit(text, answer, kind, expected):
    assert one(partial_credit, text, answer, kind) == pytest.approx(expected)


@pytest.mark.parametrize("text, ids, expected", [
    (GOOD, [1, 2, 0], 1.0),
    ("<think>a</think>\n", None, -0.5),                              # no answer
    ("<think>a</think><think>b</think>\n7", None, -0.5),             # several think blocks
    ("<think>never closed", None, -0.5),                             # no final answer
    ("<think>a</think><think>b", None, -1.0),                        # several, unclosed
    ("<think>a</think>\n7", [5] * 8, -0.5),                          # cut off by the cap (8 tokens, no eos)
    ("<think>a</think>\n7", [5] * 7 + [0], 1.0),                     # 8 tokens ending in eos
    ("7", None, -0.5),                                               # answered without reasoning
    ("yes", [5] * 8, -1.0),                                          # no reasoning, cut off
])
def test_format(text, ids, expected):
    got = format([text], completion_ids=[ids], max_completion_length=8, eos_token_ids=[0])[0]
    assert got == expected


def test_bound_functions_keep_their_names_and_budget():
    funcs = reward_functions(["correctness", "format"], max_completion_length=2, eos_token_ids=(0,))
    assert [f.__name__ for f in funcs] == ["correctness", "format"]
    assert funcs[1](prompts=["q"], completions=["<think>a</think>\n7"], completion_ids=[[5, 5]]) == [-0.5]
    with pytest.raises(ReasoningLabError, match="unknown reward 'nope'"):
        reward_functions(["nope"])


junk = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="<>/think 0123456789.-,$ABCDE()yesno\n", max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.lists(st.sampled_from(["<think>", "</think>", "The answer is", "#### ", "\\boxed{", "}", "1,000", "(C)",
                              "yes", "-", "/", "0", "\n"]), max_size=40).map("".join),
    st.none(), st.integers(), st.lists(st.dictionaries(st.just("content"), st.text(max_size=50)), max_size=3),
)
gold = st.one_of(st.text(max_size=10), st.sampled_from(["7", "1,000", "C", "yes", "False", "-2.5", "1/3"]), st.none())
kinds = st.one_of(st.sampled_from(["number", "choice", "yesno"]), st.text(max_size=5), st.none())


@settings(max_examples=300, deadline=None)
@given(text=junk, answer=gold, kind=kinds, ids=st.one_of(st.none(), st.lists(st.integers(0, 10), max_size=10)))
def test_every_reward_is_total_and_in_range(text, answer, kind, ids):
    for name, func in REWARDS.items():
        value = func([text], answer=[answer], kind=[kind], options=[None], completion_ids=[ids],
                     max_completion_length=8, eos_token_ids=[0])[0]
        low, high = RANGES[name]
        assert math.isfinite(value) and low <= value <= high, (name, text, value)


def test_huge_completion_is_scored_quickly():
    import time

    text = "<think>" + "1 + 1 = 2. " * 200_000 + "</think>\n2"
    began = time.perf_counter()
    assert one(correctness, text, "2") == 1.0
    assert one(format, text) == 1.0
    assert time.perf_counter() - began < 5


def test_reward_table_pays_each_component_and_ranks_correct_above_near_miss_above_malformed():
    from reasoning_lab.rewards import reward_table

    completions = [
        {"text": "<think>\n3 + 4 = 7\n</think>\n7", "gold": "7", "kind": "number"},       # correct
        {"text": "<think>\n3 + 4 = 7\n</think>\n8", "gold": "7", "kind": "number"},       # near miss: gold in reasoning
        {"text": "<think>\n3 + 5 = 8\n</think>\n7.5", "gold": "7", "kind": "number"},     # near miss: close number
        {"text": "<think>so</think>\nSo it is yes.", "gold": "yes", "kind": "yesno"},     # near miss: lenient match
        {"text": "<think>\n3 + 5 = 8\n</think>\n70", "gold": "7", "kind": "number"},      # wrong, well formed
        {"text": "3 + 4 = 7\n7", "gold": "7", "kind": "number"},                          # malformed (no think block)
        {"text": "<think>\n3 + 4 = 7\n9 + 9", "gold": "7", "kind": "number", "cut_off": True},  # malformed, cut off
    ]
    table = reward_table(completions, {"correctness": 1.0, "partial_credit": 0.5, "format": 0.2})
    c, o = table["components"], table["outcomes"]
    assert table["n"] == 7
    assert c["correctness"] == {"share_paid": round(1 / 7, 3), "mean": round(1 / 7, 3)}
    assert all(c[name]["share_paid"] > 0 for name in ("lenient_match", "gold_in_reasoning", "close_number", "format"))
    assert c["format"]["share_paid"] == 1.0  # +1 for five, -0.5 without a think block, -1 cut off unclosed
    assert [o[name]["share"] for name in ("correct", "near miss", "wrong", "malformed")] == \
        [round(x / 7, 3) for x in (1, 3, 1, 2)]
    assert o["correct"]["mean_total"] == pytest.approx(1.2)
    assert o["correct"]["mean_total"] > o["near miss"]["mean_total"] > o["wrong"]["mean_total"] > o["malformed"]["mean_total"]
