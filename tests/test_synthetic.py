"""The offline generators (reasoning_lab.synthetic): valid, seeded, arithmetically right."""

from collections import Counter

from reasoning_lab.answers import is_correct
from reasoning_lab.data import format_example
from reasoning_lab.synthetic import STAND_INS, generic, running_sum


def test_stand_ins_are_valid_and_seeded():
    for name, make in STAND_INS.items():
        problems = make(200, 3)
        assert problems == make(200, 3), name
        assert all(is_correct(format_example(p, True, "s")["completion"][0]["content"], p.answer, p.kind)
                   for p in problems), name
    aqua = STAND_INS["synthetic_aqua"](200, 1)
    assert Counter(p.answer for p in aqua).keys() == set("ABCDE")
    assert all(len(set(p.question.split("Options: ")[1].split())) == 5 for p in aqua)


def test_generic_reasoning_is_arithmetically_right():
    assert running_sum("4 - 1 - 7") == (["4 - 1 = 3", "3 - 7 = -4"], -4)
    problems = generic(["chain_sum", "leg_counting", "compare_sum"], [1, 2, 3], 20, 0)
    assert {p.difficulty for p in problems} == {1, 2, 3} and {p.kind for p in problems} == {"number", "yesno"}
    for p in problems:
        for line in p.reasoning.splitlines():
            if line.count("=") == 1 and "legs" not in line:
                left, right = line.split("=")
                assert eval(left.replace("x", "*")) == int(right), line
