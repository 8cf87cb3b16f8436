"""W&B dashboards as code (reasoning_lab.dashboard): the workspace names only keys that a pipeline run logs, and a
sweep's report is written offline as a spec and a static page that a real browser renders with its charts."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT, WORKDIR, make_config, run_cli
from tests.wandb_files import find_wandb_files, wandb_records

BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")


def logged_keys(run_dir) -> set[str]:
    """Every history and summary key of the offline W&B runs under `run_dir`."""
    keys = set()
    for file in find_wandb_files(run_dir):
        for record in wandb_records(file):
            which = record.WhichOneof("record_type")
            items = record.history.item if which == "history" else record.summary.update if which == "summary" else []
            keys |= {item.nested_key[0] if item.nested_key else item.key for item in items}
    return keys


def dashboard(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_API_KEY": "", "WANDB_MODE": ""}
    return subprocess.run([sys.executable, "-m", "reasoning_lab.dashboard", *args], cwd=WORKDIR, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.app
@pytest.mark.slow
def test_the_workspace_names_only_keys_that_a_pipeline_run_logs(tmp_path, shared_data):
    """With the real sets present (every set of eval.datasets evaluated), a bandit update every step (the tiny
    curriculum is shorter than the default 8 steps between updates) and the accuracy curve on."""
    from reasoning_lab.dashboard import build_workspace, workspace_keys, workspace_sections

    run = tmp_path / "run"
    result = run_cli("debug=tiny", "stage=pipeline", "logger=wandb", f"data.root={shared_data}",
                     "curriculum.adaptive.update_every=1", "curriculum.curve_every=2", "curriculum.curve_limit=1",
                     f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    logged = logged_keys(run)
    # the adapters' lineage in the same offline run files: what each stage logged, and what the next one used
    edges = {(record.artifact.use_after_commit, record.artifact.name) for file in find_wandb_files(run)
             for record in wandb_records(file) if record.WhichOneof("record_type") == "artifact"
             and record.artifact.type == "lora-adapter"}
    made = {name for used, name in edges if not used}
    assert len(made) == 3 and {name for used, name in edges if used} == made  # warm-up, curriculum, RL: each used next
    sections = workspace_sections(make_config("debug=tiny"))
    keys, patterns = workspace_keys(sections)
    assert keys - logged == set(), f"panels name keys no run logs: {sorted(keys - logged)}"
    assert all(any(re.fullmatch(p, k) for k in logged) for p in patterns)
    assert {"rl/rollouts", "report/accuracy", "train/loss", "train/rewards/correctness/mean"} <= keys
    spec = build_workspace(None, "reasoning_lab", sections)._spec
    built = spec["spec"]["section"]["panelBankConfig"]["sections"]
    assert [s["name"] for s in built] == [name for name, _ in sections]
    named = {m for s in built for p in s["panels"] for m in p["config"].get("metrics", [])}
    assert named and named <= logged  # what the saved spec itself names
    # offline, the command writes the spec and says once how it will be published; nothing reaches for the network
    out = dashboard("workspace", "debug=tiny", "--out", str(tmp_path / "dashboard"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "dashboard" / "workspace.json").read_text())["project"] == "reasoning_lab"
    assert out.stdout.count("publishes it when online") == 1 and "python -m reasoning_lab.dashboard workspace" in out.stdout


@pytest.mark.app
@pytest.mark.slow
def test_a_two_seed_sweep_report_is_a_spec_and_a_page_a_browser_draws(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "stage=curriculum", "debug=tiny_sweep", "logger=none", "seed=0,1",
                     "curriculum=shuffled_mix,adaptive", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = dashboard("report", str(sweep))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("publishes it when online") == 1
    content = json.loads((sweep / "dashboard" / "report.json").read_text())
    assert content["command"].startswith("python -m reasoning_lab -m") and "seed=0,1" in content["command"]
    assert len(content["jobs"]) == 4 and all(j["accuracy"]["generic"]["ci95"] for j in content["jobs"])
    pooled = content["comparison"]["comparisons"]  # the pooled table: adaptive against the mix, per-seed deltas
    assert [c["dataset"] for c in pooled] == ["generic"] and len(pooled[0]["per_seed_delta"]) == 2
    page = (sweep / "dashboard" / "index.html").read_text()
    assert "pooled delta" in page and page.count("<rect") == 4 and content["command"] in page.replace("&quot;", '"')

    console, _ = screenshot(sweep / "dashboard" / "index.html", tmp_path / "page.png")
    assert console == [], console  # the real sweep's page: no console message, errors included


@pytest.mark.app
def test_the_page_draws_each_jobs_bar_to_its_accuracy(tmp_path):
    """A page of known accuracies (the tiny sweep's are all 0): each job's bar is drawn, its height follows its
    accuracy, and the page logs nothing to the console."""
    from reasoning_lab.dashboard import PALETTE, html_page

    accuracies = [0.2, 0.4, 0.6, 0.8]
    content = {"title": "four jobs", "sweep_dir": "sweep", "command": "python -m reasoning_lab -m seed=0,1",
               "comparison": {}, "jobs": [{"job": str(j), "overrides": [f"seed={j}"], "status": "completed",
                                           "wall_seconds": 1.0, "timing": {},
                                           "accuracy": {"generic": {"accuracy": a, "n": 100, "ci95": [a - 0.1, a + 0.1]}}}
                                          for j, a in enumerate(accuracies)]}
    (tmp_path / "index.html").write_text(html_page(content))
    console, pixels = screenshot(tmp_path / "index.html", tmp_path / "page.png")
    assert console == [], console
    drawn = [sum(1 for p in pixels if p == tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))) for c in PALETTE[:4]]
    legend = 12 * 12  # each legend key's square
    bars = [n - legend for n in drawn]
    assert all(b > 1000 for b in bars), drawn
    assert bars[3] / bars[0] == pytest.approx(4, rel=0.15) and bars[1] / bars[0] == pytest.approx(2, rel=0.15)


def screenshot(page, shot) -> tuple[list[str], list]:
    """Headless Chromium's console lines and the screenshot's RGB pixels of `page`."""
    if BROWSER is None:
        if os.environ.get("CI"):
            pytest.fail("no headless Chromium: `make browser` installs it (CI runs it)")
        pytest.skip("no headless Chromium here (`make browser` installs it)")
    rendered = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                               "--v=0", "--hide-scrollbars", "--force-device-scale-factor=1", f"--screenshot={shot}",
                               "--window-size=1000,1400", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), rendered.stderr[-2000:]
    from PIL import Image

    return ([line for line in rendered.stderr.splitlines() if "CONSOLE" in line],
            list(Image.open(shot).convert("RGB").getdata()))


def test_a_report_of_a_folder_without_jobs_is_one_line(tmp_path, capsys):
    from reasoning_lab.dashboard import main

    with pytest.raises(SystemExit) as stop:
        main(["report", str(tmp_path)])
    out = capsys.readouterr()
    assert stop.value.code == 2 and out.err.count("\n") == 1 and out.out == ""
    assert "has no multirun jobs" in out.err and not (tmp_path / "dashboard").exists()


def test_the_pinned_workspace_library_is_installed():
    import importlib.metadata

    pinned = re.search(r'"wandb-workspaces==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert importlib.metadata.version("wandb-workspaces") == pinned
