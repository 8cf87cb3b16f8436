"""sweep.md of a multirun (reasoning_lab.sweep_report): a seed sweep pools same-seed jobs; a failed job is listed
with its error and the others finish."""

import json
import random
import re

import pytest

from reasoning_lab.sweep_report import write_sweep_report
from tests.helpers import TINY_SWEEP, run_cli
from tests.test_compare import write_run
from tests.test_pooled import seed_pair


def test_a_seed_sweep_of_pipelines_pools_the_curriculum_against_the_end(tmp_path):
    """experiment=ablation_rl's sweep.md: seeds alone swept, each job evaluated after the curriculum and at its end."""
    from reasoning_lab.sweep_report import write_sweep_report

    rng = random.Random(5)
    for seed in range(3):
        job = tmp_path / str(seed)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n- experiment=ablation_rl\n")
        for stage in ("curriculum", "rl", "eval"):
            (job / stage).mkdir(exist_ok=True)
            (job / stage / "metrics.json").write_text(json.dumps({"status": "completed", "wall_seconds": 1.0}))
        before, after = seed_pair(rng, 200, 60, 30, 10)
        write_run(job / "curriculum" / "final", "generic", before)
        write_run(job / "eval", "generic", after)
    table = write_sweep_report(tmp_path)[0].read_text()
    assert "## Pooled paired comparison with curriculum/final" in table
    assert "- curriculum/final: jobs 0/curriculum/final, 1/curriculum/final, 2/curriculum/final" in table
    assert "| generic | eval | 3 x 200 |" in table and "+0.100 / +0.100 / +0.100" in table


@pytest.mark.app
@pytest.mark.slow
def test_a_failed_job_is_listed_with_its_error_and_the_others_finish(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "stage=curriculum", "curriculum=stages", *TINY_SWEEP, "logger=none", "curriculum.pacing=linear,bogus",
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 2  # the sweep reports the failure at the end
    table = (sweep / "sweep.md").read_text()
    assert re.search(r"\| 0 \| linear \| completed \|", table)
    assert re.search(r"\| 1 \| bogus \| failed \| .*curriculum.pacing='bogus' is not one of", table)
    again, _ = write_sweep_report(sweep)  # python -m reasoning_lab.sweep_report gives the same table
    assert again.read_text() == table
