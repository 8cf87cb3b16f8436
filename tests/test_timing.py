"""Where a stage's time goes (reasoning_lab.timing): exclusive phases that add up to the wall time, a line a stage."""

import time

import pytest

from reasoning_lab.timing import PHASES, duration, measure, phase, summary


def test_a_nested_phase_is_taken_out_of_the_one_it_runs_in():
    with measure() as phases:
        with phase("training"):
            time.sleep(0.2)
            with phase("evaluation"):
                time.sleep(0.3)
            time.sleep(0.1)
        with phase("saving"):
            time.sleep(0.1)
        time.sleep(0.1)
    table = phases.table()
    assert list(table) == [*PHASES, "other"]
    assert table["training"] == pytest.approx(0.3, abs=0.05)
    assert table["evaluation"] == pytest.approx(0.3, abs=0.05)
    assert table["saving"] == pytest.approx(0.1, abs=0.05) and table["other"] == pytest.approx(0.1, abs=0.05)
    assert table["setup"] == table["data"] == table["signal"] == 0.0


def test_a_phase_as_a_decorator_and_outside_a_measurement():
    @phase("signal")
    def work():
        time.sleep(0.1)
        return 7

    assert work() == 7  # nothing measures: nothing recorded, nothing fails
    with measure() as phases:
        work()
        work()
    assert phases.table()["signal"] == pytest.approx(0.2, abs=0.05)
    with pytest.raises(ValueError, match="phase must be one of"):
        with phase("lunch"):
            pass


def test_the_line_a_stage_prints():
    assert duration(552) == "9m12s" and duration(20) == "20s" and duration(3780) == "1h03m"
    line = summary("curriculum", 552, {"setup": 2.0, "data": 0.2, "training": 340.0, "signal": 20.0,
                                      "evaluation": 151.0, "saving": 0.0, "other": 38.8})
    assert line == "stage curriculum: 9m12s (setup 2s, training 5m40s, signal 20s, evaluation 2m31s, other 39s)"
