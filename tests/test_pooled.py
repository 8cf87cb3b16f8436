"""Two recipes over several seeds (reasoning_lab.compare --arms, reasoning_lab.stats.pooled_paired), checked on
fabricated prediction files whose true difference is known."""

import json
import math
import random

import numpy as np
import pytest

from reasoning_lab.compare import compare_arms, main
from reasoning_lab.stats import minimal_detectable_effect, pooled_paired, steps_to_target
from tests.test_compare import write_run


def seed_pair(rng: random.Random, n: int, right: int, gained: int, lost: int) -> tuple[list[bool], list[bool]]:
    """Arm A right on `right` of n problems; arm B the same except `gained` of A's wrong turned right and `lost`
    of A's right turned wrong: B - A is exactly (gained - lost) / n."""
    a = [i < right for i in range(n)]
    b = list(a)
    for i in range(right, right + gained):
        b[i] = True
    for i in range(lost):
        b[i] = False
    order = list(range(n))
    rng.shuffle(order)
    return [a[i] for i in order], [b[i] for i in order]


def write_arms(tmp_path, pairs, dataset="synthetic_gsm8k"):
    """Runs A and B of each seed as evaluation folders; returns the --arms mapping."""
    arms = {"A": [], "B": []}
    for s, (a, b) in enumerate(pairs):
        arms["A"].append(write_run(tmp_path / f"a{s}", dataset, a))
        arms["B"].append(write_run(tmp_path / f"b{s}", dataset, b))
    return arms


def test_equal_arms_give_delta_zero_and_p_one(tmp_path):
    rng = random.Random(0)
    pairs = [seed_pair(rng, 300, right, 0, 0) for right in (80, 95, 110)]
    (c,) = compare_arms(write_arms(tmp_path, pairs))["comparisons"]
    assert c["delta"] == 0 and c["per_seed_delta"] == [0, 0, 0] and c["p_value"] == 1.0 and c["ci95"] == [0, 0]
    assert c["accuracy_a"] == c["accuracy_b"] == pytest.approx([80 / 300, 95 / 300, 110 / 300], abs=1e-4)


def test_a_consistent_ten_points_over_three_seeds_is_detected(tmp_path):
    rng = random.Random(1)
    # +10 points in every seed: 45 problems gained, 15 lost of 300, around 30% accuracy
    pairs = [seed_pair(rng, 300, right, 45, 15) for right in (85, 90, 100)]
    (c,) = compare_arms(write_arms(tmp_path, pairs))["comparisons"]
    assert c["per_seed_delta"] == pytest.approx([0.1, 0.1, 0.1]) and c["delta"] == pytest.approx(0.1)
    assert c["p_value"] < 0.01 and c["p_holm"] < 0.01 and 0 < c["ci95"][0] < 0.1 < c["ci95"][1]
    assert c["mde"] < 0.1 and c["seeds"] == 3 and c["n"] == [300, 300, 300]


def test_plus_fifteen_in_one_seed_and_minus_fifteen_in_another_is_not_a_difference(tmp_path):
    rng = random.Random(2)
    pairs = [seed_pair(rng, 300, 90, 50, 5), seed_pair(rng, 300, 140, 5, 50), seed_pair(rng, 300, 100, 10, 10)]
    (c,) = compare_arms(write_arms(tmp_path, pairs))["comparisons"]
    assert c["per_seed_delta"] == pytest.approx([0.15, -0.15, 0.0])
    assert c["ci95"][0] < 0 < c["ci95"][1] and c["p_value"] > 0.5
    assert c["between_var"] > 0.01  # the training noise shows, and widens the detectable effect
    assert c["mde"] > 0.15


def test_the_pooled_test_holds_its_level_on_null_designs():
    """200 designs of 3 seeds x 300 problems with no difference between the arms: each seed's models differ in
    accuracy and each problem in difficulty (both shared by the arms), outcomes drawn independently."""
    rng = np.random.default_rng(3)
    rejections = 0
    for _ in range(200):
        a, b = [], []
        for _seed in range(3):
            p = np.clip(rng.beta(2, 4, size=300) + rng.normal(0, 0.08), 0, 1)
            a.append(list(rng.random(300) < p))
            b.append(list(rng.random(300) < p))
        rejections += pooled_paired(a, b, samples=10, resamples=2000, seed=int(rng.integers(1 << 30)))["p_value"] < 0.05
    assert rejections / 200 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)


def test_minimal_detectable_effect_matches_a_hand_computed_case():
    # variance of the pooled delta: (0.001 + 0.2 / 300) / 3 = 0.000555...; sd 0.023570; (1.959964 + 0.841621) x sd
    assert minimal_detectable_effect(0.2, 0.001, 300, 3) == pytest.approx(0.066034, abs=1e-5)
    # without training noise, one seed of 100 problems at a discordance-level variance of 0.25: 2.801585 x 0.05
    assert minimal_detectable_effect(0.25, 0.0, 100, 1) == pytest.approx(0.140079, abs=1e-5)
    # the estimates pooled_paired feeds it: within = mean per-seed variance of the differences
    a = [[False] * 10, [False] * 10]
    b = [[True] * 5 + [False] * 5, [True] * 1 + [False] * 9]
    result = pooled_paired(a, b, samples=10, resamples=10)
    within = (0.25 + 0.09) / 2  # variances of 5/10 and 1/10 ones
    between = max(0.0, np.var([0.5, 0.1], ddof=1) - within / 10)
    assert result["within_var"] == pytest.approx(within, abs=1e-5)
    assert result["between_var"] == pytest.approx(between, abs=1e-5)
    assert result["mde"] == pytest.approx(minimal_detectable_effect(within, between, 10, 2), abs=1e-4)


def test_the_command_prints_the_pooled_table_and_refuses_uneven_arms(tmp_path, capsys):
    rng = random.Random(4)
    arms = write_arms(tmp_path, [seed_pair(rng, 120, 40, 20, 5) for _ in range(3)])
    spec = [f"{name}:{','.join(str(r) for r in runs)}" for name, runs in arms.items()]
    assert main(["--arms", *spec, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| synthetic_gsm8k | B | 3 x 120 |" in printed and "+0.125 / +0.125 / +0.125" in printed
    assert "stratified paired permutation test" in printed
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert result["mode"] == "arms" and result["comparisons"][0]["maj_mde"] is not None
    assert (tmp_path / "out" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["--arms", spec[0], "B:" + str(arms["B"][0]), "--out", str(tmp_path / "x")]) == 2
    assert "one run per seed" in capsys.readouterr().err
    assert main([str(arms["A"][0]), "--arms", *spec]) == 2
    assert main(["--arms", "A" + str(arms["A"][0]), spec[1]]) == 2




def curve(steps_and_right: list[tuple[int, int]], n: int = 40) -> list[tuple[int, list[int]]]:
    """A fabricated accuracy curve: at each step the first `right` of n problems right."""
    return [(step, [int(i < right) for i in range(n)]) for step, right in steps_and_right]


def test_steps_to_target_on_fabricated_curves():
    """The mix ends at 20/40 after 144 steps. One arm reaches 20/40 at step 48 in every seed: a third of the steps,
    with an interval below 1; another never gets there in one seed: its pooled ratio is infinite (None)."""
    mix = curve([(0, 0), (48, 10), (96, 16), (144, 20)])
    fast = curve([(0, 0), (48, 20), (96, 22), (144, 24)])
    result = steps_to_target([(mix, fast)] * 3, samples=400)
    assert result["target"] == [0.5] * 3 and result["steps"] == [48] * 3 and result["baseline_steps"] == [144] * 3
    assert result["ratio"] == pytest.approx(1 / 3, abs=1e-4) and result["ci95"][1] < 1
    assert steps_to_target([(mix, mix)] * 2, samples=200)["per_seed_ratio"] == [1.0, 1.0]
    late = curve([(0, 0), (48, 12), (96, 18), (144, 19)])
    mixed_result = steps_to_target([(mix, fast), (mix, late)], samples=200)
    assert mixed_result["steps"] == [48, None] and mixed_result["per_seed_ratio"] == [pytest.approx(1 / 3, abs=1e-4), None]
    assert mixed_result["ratio"] is None and mixed_result["ci95"][1] is None
    with pytest.raises(ValueError, match="same validation problems"):
        steps_to_target([(mix, curve([(0, 0)], n=10))])


def test_compare_arms_reports_steps_to_target_from_the_runs_curves(tmp_path):
    rng = random.Random(5)
    arms = write_arms(tmp_path, [seed_pair(rng, 60, 20, 5, 5) for _ in range(2)])
    curves = {"A": curve([(0, 0), (72, 15), (144, 20)]), "B": curve([(0, 0), (72, 20), (144, 21)])}
    for name, runs in arms.items():
        for run in runs:  # curriculum/metrics.json beside curriculum/final/
            points = [{"step": s, "correct": {"generic": c[:20], "aqua": c[20:]}} for s, c in curves[name]]
            (run / "final").mkdir()
            (run / "predictions").rename(run / "final" / "predictions")
            (run / "metrics.json").write_text(json.dumps({"accuracy_curve": points}))
    assert main(["--arms", *[f"{n}:{','.join(str(r / 'final') for r in runs)}" for n, runs in arms.items()],
                 "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [(row["arm"], row["steps"]) for row in result["steps_to_target"]] == [("A", [144, 144]), ("B", [72, 72])]
    assert "| B | 0.500 / 0.500 | 72 / 72 of 144 / 144 | 0.50 / 0.50 |" in (tmp_path / "out" / "compare.md").read_text()
