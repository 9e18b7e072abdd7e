# One entry point for set-up, the pipeline, tests and the service.
# `make all` is the main job (environment + `dvc repro`); `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PORT ?= 3000

.PHONY: all setup repro test lint serve mlflow-ui actor-report bench-repro dev-eval bench \
	compare bento serve-bento mlflow-screenshot bench-batch load

all: setup repro

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build from the machine's local wheel (unpinned pulls CUDA).
	$(PY) -m pip install --quiet torch==2.13.0

setup: $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"

repro:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/dvc repro

# The tests also need the [spark] extra (pyspark, for `stance-watch score --engine spark`
# and its test; Java 17): installed here, not by the main job, which does not use Spark.
test:
	$(PY) -m pip install --quiet -e ".[dev,spark]"
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
# Override with `make dev-eval DEV=path/to/dev.jsonl MODEL=path/to/model_dir`; add
# AGAINST=other/model_dir for the paired difference of two models on the same resamples.
DEV ?= ../shared/realnews-dev.jsonl
MODEL ?= models/stance
AGAINST ?=
dev-eval:
	$(PY) scripts/dev_eval.py --dev $(DEV) --model-dir $(MODEL) $(if $(AGAINST),--against $(AGAINST))

bench-repro:
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/bench_repro.sh

# Serving benchmark (scripts/bench_serving.py): naive loop, predictor, the running
# service end to end, cost growth. Needs `dvc repro` first; prints a Markdown table.
bench:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) scripts/bench_serving.py

# Sustained load (scripts/load.py): 16 clients, 10,000 mixed /classify and /score requests
# over loopback; latency percentiles, throughput, the service's memory at start and end.
# Starts `bentoml serve` with the store's model on a free port, or `make load URL=...`.
URL ?=
load:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) scripts/load.py $(if $(strip $(URL)),--url $(URL))

# Registered versions side by side (scripts/compare_versions.py): champion vs the newest
# other version by default; `make compare VERSIONS="3 5"` for others.
VERSIONS ?=
compare:
	$(PY) scripts/compare_versions.py $(if $(strip $(VERSIONS)),--versions $(VERSIONS))

# A Bento (bentofile.yaml): the service code with the champion the handoff stage put
# into the local BentoML store. `make serve-bento BENTO=<tag>` serves a built one.
bento:
	$(VENV)/bin/bentoml build -f bentofile.yaml
BENTO ?= stance-watch:latest
serve-bento:
	$(VENV)/bin/bentoml serve $(BENTO) --host 127.0.0.1 --port $(PORT)

# The MLflow UI's compare-versions page as a PNG (headless Chromium):
# `make mlflow-screenshot VERSIONS="3 5" PNG=docs/mlflow-compare.png`.
PNG ?= docs/mlflow-compare.png
mlflow-screenshot:
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/screenshot_mlflow_compare.sh $(VERSIONS) $(PNG)

# 10k and 100k invented sentences through `stance-watch score` and Spark local[2]:
# sentences/s, peak memory, growth. Uses the registry's champion (run `make all` first).
bench-batch:
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) scripts/bench_batch.py
