"""Failures users hit, one family at a time: each ends in one line on stderr and exit code 2 (130 for an
interrupt), with no traceback and nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from reasoning_lab.config import validate
from reasoning_lab.errors import ReasoningLabError
from reasoning_lab.readers import Builtin, read_jsonl
from tests.helpers import ROOT, TINY_WARMUP_TRAINING, WORKDIR, make_config, run_cli, tiny_adapter

# a stage that needs no training and finishes in seconds on tiny_random
QUICK_EVAL = ["stage=eval", "model=tiny_random", "eval.datasets=[generic]", "eval.limit=2", "eval.k=1",
              "eval.max_new_tokens=4", "eval.direct_limit=0", "eval.with_base=false", "data.generic.size_per_level=8",
              "logger=none"]


def one_line_exit_2(result: subprocess.CompletedProcess, *expected: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(lines) >= 1
    line = lines[-1]
    assert line.startswith("reasoning_lab: error:"), result.stderr[-2000:]
    for text in expected:
        assert text in line, line
    return line


# ------------------------------------------------------------------ config: before any model is loaded


@pytest.mark.parametrize("override, message", [
    ("eval.limit=-3", "eval.limit=-3 must be at least 1"),
    ("eval.direct_limit=-1", "eval.direct_limit=-1 must be at least 0"),
    ("data.val_size=-1", "data.val_size=-1 must be at least 0"),
    ("curriculum.max_steps=0", "or -1 to train for curriculum.num_epochs"),
    ("warmup.max_steps=-5", "or -1 to train for warmup.num_epochs"),
    ("curriculum.extend_lr_scale=-1", "curriculum.extend_lr_scale"),
    ("+model.foo=1", "model.foo: no such setting"),
    ("+foo=1", "foo: no such setting"),
    ("seed=1234567890123456789012345678901234567890", "seed=1234567890123456789012345678901234567890 is outside"),
    ("seed=-1", "seed=-1 is outside"),
])
def test_bad_settings_are_refused_by_name(override, message):
    with pytest.raises(ReasoningLabError, match=message.replace("(", r"\(").replace("+", r"\+")):
        validate(make_config(override))


def test_every_preset_passes_the_schema(monkeypatch):
    monkeypatch.chdir(ROOT)  # the presets' own files (experiment=your_data's reward) are named from the checkout
    presets = sorted(p.stem for p in (ROOT / "experiments" / "presets" / "experiment").glob("*.yaml"))
    assert len(presets) >= 5
    for preset in presets:
        validate(make_config(f"experiment={preset}"))


@pytest.mark.app
def test_a_bad_setting_on_the_command_line_is_one_line(tmp_path):
    result = run_cli("stage=curriculum", "model=tiny_random", "curriculum.max_steps=0", "logger=none",
                     f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    one_line_exit_2(result, "curriculum.max_steps=0")
    assert not (tmp_path / "run" / "curriculum").exists()  # refused before the stage began


@pytest.mark.app
@pytest.mark.parametrize("run_dir", ["/proc/reasoning_lab_test", "/etc/passwd/reasoning_lab_test"])
def test_an_unwritable_run_dir_is_one_line(run_dir):
    one_line_exit_2(run_cli(*QUICK_EVAL, f"hydra.run.dir={run_dir}", timeout=120), "hydra.run.dir", "writable")


# ------------------------------------------------------------------ data files


def _write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    read_jsonl.cache_clear()


GSM8K_ROWS = [{"question": f"q{i}", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(200)]


def test_bom_and_crlf_are_read_as_data(tmp_path):
    path = tmp_path / "gsm8k" / "test.jsonl"
    _write(path, ("\ufeff" + "\r\n".join(json.dumps(r) for r in GSM8K_ROWS) + "\r\n").encode())
    problems = read_jsonl(str(path), Builtin("gsm8k"))
    assert len(problems) == 200 and problems[0].question == "q0" and problems[-1].answer == "200"


def test_an_empty_file_is_reported_as_empty(tmp_path):
    path = tmp_path / "gsm8k" / "test.jsonl"
    _write(path, "\n\n")
    with pytest.raises(ReasoningLabError, match="is empty"):
        read_jsonl(str(path), Builtin("gsm8k"))


@pytest.mark.parametrize("source, bad_row, reason", [
    ("gsm8k", "[" * 100000, "nested too deeply"),
    ("strategyqa", json.dumps({"question": "q", "answer": True, "facts": [1, 2]}), "facts is not a list of strings"),
    ("aqua", json.dumps({"question": "q", "options": [1, 2, 3, 4, 5], "rationale": "r", "correct": "A"}),
     "options is not a list of 5 strings"),
    ("aqua", json.dumps({"question": "q", "options": ["A)1", "B)2", "C)3", "D)4", "E)5"], "rationale": "r",
                         "correct": "BC"}), "not one of A-E"),
    ("aqua", json.dumps({"question": "q", "options": ["A)1", "B)2", "C)3", "D)4", "E)5"], "rationale": "r",
                         "correct": ""}), "not one of A-E"),
])
def test_a_row_with_wrong_types_is_a_counted_malformed_row(tmp_path, caplog, source, bad_row, reason):
    good = {"gsm8k": GSM8K_ROWS,
            "strategyqa": [{"question": f"q{i}", "answer": i % 2 == 0, "facts": ["f"]} for i in range(200)],
            "aqua": [{"question": f"q{i}", "options": ["A)1", "B)2", "C)3", "D)4", "E)5"], "rationale": "r",
                      "correct": "ABCDE"[i % 5]} for i in range(200)]}[source]
    path = tmp_path / source / "test.jsonl"
    _write(path, "\n".join([json.dumps(r) for r in good] + [bad_row]) + "\n")
    assert len(read_jsonl(str(path), Builtin(source))) == 200  # one bad row in 201: skipped and counted
    assert "test.jsonl:201 skipped: " in caplog.text and reason in caplog.text
    _write(path, bad_row + "\n")  # alone, it is the whole file: an error naming the reason
    with pytest.raises(ReasoningLabError, match=reason):
        read_jsonl(str(path), Builtin(source))


@pytest.mark.app
@pytest.mark.parametrize("content", [b"\x00\xff\xfe binary", "dir"])
def test_a_questions_file_that_is_not_text_is_one_line(tmp_path, content):
    path = tmp_path / "questions"
    if content == "dir":
        path.mkdir()
    else:
        path.write_bytes(content)
    result = run_cli("stage=answer", "model=tiny_random", "checkpoint.eval=base", f"answer.questions={path}",
                     "logger=none", f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    one_line_exit_2(result, f"answer.questions={path}")


# ------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return tiny_adapter(tmp_path_factory.mktemp("adapter") / "checkpoint")


WEIGHTS = "adapter_model.safetensors"
DAMAGE = {
    "truncated": lambda d: (d / WEIGHTS).write_bytes((d / WEIGHTS).read_bytes()[:200]),
    "empty": lambda d: (d / WEIGHTS).write_bytes(b""),
    "garbage": lambda d: (d / WEIGHTS).write_bytes(os.urandom(4096)),
    "missing": lambda d: (d / WEIGHTS).unlink(),
    "bad config": lambda d: (d / "adapter_config.json").write_text("{not json"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_named_before_loading(tmp_path, adapter, damage):
    from reasoning_lab.checkpoints import check_checkpoint

    broken = tmp_path / "checkpoint"
    shutil.copytree(adapter, broken)
    DAMAGE[damage](broken)
    with pytest.raises(ReasoningLabError, match="is a damaged checkpoint"):
        check_checkpoint(broken, make_config("model=tiny_random").model)


@pytest.mark.app
def test_a_damaged_checkpoint_on_the_command_line_is_one_line(tmp_path, adapter):
    broken = tmp_path / "checkpoint"
    shutil.copytree(adapter, broken)
    DAMAGE["truncated"](broken)
    result = run_cli(*QUICK_EVAL, f"checkpoint.eval={broken}", f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    one_line_exit_2(result, "damaged checkpoint", WEIGHTS)
    assert json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------ the run directory


@pytest.mark.app
def test_a_rerun_with_other_settings_is_refused_and_the_first_run_stays_intact(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(*QUICK_EVAL, f"hydra.run.dir={run_dir}", timeout=300).returncode == 0
    hydra_files = {p.name: p.read_text() for p in (run_dir / ".hydra").iterdir()}
    metrics = (run_dir / "eval" / "metrics.json").read_text()
    line = one_line_exit_2(run_cli(*QUICK_EVAL, "eval.limit=3", "seed=7", f"hydra.run.dir={run_dir}", timeout=300),
                           "other settings", "eval.limit=2 here, now 3", "seed=42 here, now 7")
    assert "another hydra.run.dir" in line
    assert {p.name: p.read_text() for p in (run_dir / ".hydra").iterdir()} == hydra_files
    assert (run_dir / "eval" / "metrics.json").read_text() == metrics
    assert run_cli(*QUICK_EVAL, "logger=wandb", f"hydra.run.dir={run_dir}", timeout=300).returncode == 0  # same settings


@pytest.mark.app
def test_a_second_process_in_the_same_run_dir_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time, pathlib\n"
                               f"p = pathlib.Path({str(run_dir)!r}); p.mkdir(parents=True)\n"
                               "h = open(p / '.lock', 'a+'); fcntl.flock(h, fcntl.LOCK_EX)\n"
                               "h.write('process 4242 on testhost'); h.flush(); print('locked', flush=True)\n"
                               "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        one_line_exit_2(run_cli(*QUICK_EVAL, f"hydra.run.dir={run_dir}", timeout=300), "in use by process 4242 on testhost")
        assert not (run_dir / "eval").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run_cli(*QUICK_EVAL, f"hydra.run.dir={run_dir}", timeout=300).returncode == 0  # the lock died with it


@pytest.mark.app
def test_sigterm_ends_in_one_line_and_exit_130(tmp_path):
    run_dir = tmp_path / "run"
    metrics = run_dir / "warmup" / "metrics.json"
    result = run_cli(*TINY_WARMUP_TRAINING, "warmup.max_steps=100000", "warmup.save_steps=2", "logger=none",
                     f"hydra.run.dir={run_dir}", env={"REASONING_LAB_STOP_AFTER": "trainer/checkpoint-2"}, timeout=300)
    stderr = result.stderr  # SIGTERM inside the training loop, right after checkpoint-2 (sft.stop_if_asked)
    assert result.returncode == 130, stderr[-2000:]
    ours = [line for line in stderr.splitlines() if line.startswith("reasoning_lab:")]
    assert ours == ["reasoning_lab: interrupted; rerun the same command to resume"], stderr[-2000:]
    assert "Traceback" not in stderr
    assert json.loads(metrics.read_text())["status"] == "interrupted"


# ------------------------------------------------------------------ a full disk


FULL_DISK = """
mount -t tmpfs -o size=6m tmpfs "$DISK" || exit 99
"$PYTHON" -m reasoning_lab "$@" > /dev/null 2> "$OUT/first.err"; echo $? > "$OUT/first.rc"
find "$DISK" -name '.*.tmp' > "$OUT/leftovers"
mount -o remount,size=64m "$DISK"
"$PYTHON" -m reasoning_lab "$@" > "$OUT/second.out" 2> "$OUT/second.err"; echo $? > "$OUT/second.rc"
cp "$DISK/run/warmup/metrics.json" "$OUT/metrics.json"
"""


@pytest.mark.app
def test_a_full_disk_is_one_line_and_the_rerun_resumes_from_the_last_complete_checkpoint(tmp_path):
    """A warm-up on a 6 MB disk (a tmpfs in a user namespace): checkpoint-2 (3.7 MB, most of it the tokenizer)
    fits, checkpoint-4 does not. The run ends in one line; with space freed, the same command resumes from
    checkpoint-2, not from the half-written checkpoint-4, and finishes."""
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    args = [*TINY_WARMUP_TRAINING, "warmup.max_steps=4", "warmup.save_steps=2", "logger=none",
            f"hydra.run.dir={disk / 'run'}"]
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"]).returncode:
        pytest.skip("user namespaces are not available here: the full disk cannot be simulated")
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", FULL_DISK, "sh", *args],
                            cwd=WORKDIR, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "DISK": str(disk), "OUT": str(out), "PYTHON": sys.executable,
                                 "WANDB_API_KEY": "", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    first = subprocess.CompletedProcess([], int((out / "first.rc").read_text()), "", (out / "first.err").read_text())
    one_line_exit_2(first, "No space left on device", "free some space, then rerun the same command to resume")
    assert (out / "leftovers").read_text() == ""  # no half-written metrics.json beside the old one
    second = (out / "second.out").read_text() + (out / "second.err").read_text()
    assert (out / "second.rc").read_text().strip() == "0", second[-2000:]
    assert "resuming from" in second and "checkpoint-2" in second.split("resuming from")[1].splitlines()[0]
    assert json.loads((out / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.app
def test_vllm_with_an_8bit_base_is_refused_before_loading(tmp_path):
    result = run_cli("stage=rl", "model=tiny_random", "model.quantization=8bit", "rl.use_vllm=true", "logger=none",
                     f"hydra.run.dir={tmp_path}", timeout=120)
    one_line_exit_2(result, "rl.use_vllm=true needs a 4-bit or unquantised base", "model.quantization=4bit")
    assert not (tmp_path / "rl").exists()


def test_continuous_batching_with_ppo_is_refused_by_name():
    from reasoning_lab.config import check_rl

    cfg = make_config("stage=rl", "rl=ppo", "rl.continuous_batching=true")
    with pytest.raises(ReasoningLabError, match=r"rl.continuous_batching=true needs rl=grpo or rl=rloo .*"
                                                r"set rl.continuous_batching=false"):
        check_rl(cfg.rl, cfg.model)
    check_rl(make_config("stage=rl", "rl=grpo", "rl.continuous_batching=true").rl, cfg.model)
