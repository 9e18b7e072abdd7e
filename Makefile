# One entry point for set-up, the pipeline, tests and the service.
# `make all` is the main job (environment + `dvc repro`); `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PORT ?= 3000

.PHONY: all setup repro test lint serve mlflow-ui actor-report bench-repro dev-eval bench-batch

all: setup repro

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build from the machine's local wheel (unpinned pulls CUDA).
	$(PY) -m pip install --quiet torch==2.13.0

# [spark]: pyspark for `stance-watch score --engine spark` and its test (needs Java 17).
setup: $(PY)
	$(PY) -m pip install --quiet -e ".[dev,spark]"

repro:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/dvc repro

test:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

serve:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/bentoml serve serving.service:StanceService --host 127.0.0.1 --port $(PORT)

# The store the stages log to (pipeline.tracking), so the UI and the pipeline agree.
mlflow-ui:
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port 5000 \
		--backend-store-uri "$$($(PY) -c 'from pipeline.tracking import tracking_uri; print(tracking_uri())')"

actor-report:
	$(PY) scripts/actor_detection_report.py

# Real-news dev set (outside the repository; never trained on): figures to stdout and
# to the model's MLflow run, misclassified rows to reports/dev/ (git-ignored).
# Override with `make dev-eval DEV=path/to/dev.jsonl MODEL=path/to/model_dir`.
DEV ?= ../shared/realnews-dev.jsonl
MODEL ?= models/stance
dev-eval:
	$(PY) scripts/dev_eval.py --dev $(DEV) --model-dir $(MODEL)

bench-repro:
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/bench_repro.sh

# 10k and 100k invented sentences through `stance-watch score` and Spark local[2]:
# sentences/s, peak memory, growth. Uses the registry's champion (run `make all` first).
bench-batch:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) scripts/bench_batch.py
