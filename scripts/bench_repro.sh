#!/usr/bin/env bash
# Benchmark: wall time of a full `dvc repro` from scratch and of a no-op re-run.
# "From scratch" = every stage forced (`dvc repro --force`), same data and params.
# Prints the figures the README table quotes. Run from the repo root: make bench-repro
set -euo pipefail
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(python -c 'import torch; print("torch", torch.__version__)')"
start=$(date +%s%N)
dvc repro --force > /tmp/bench_repro_full.log 2>&1
full_ms=$(( ($(date +%s%N) - start) / 1000000 ))
start=$(date +%s%N)
dvc repro > /tmp/bench_repro_noop.log 2>&1
noop_ms=$(( ($(date +%s%N) - start) / 1000000 ))
ran=$(grep -c "^Running stage" /tmp/bench_repro_noop.log || true)
echo "full dvc repro (all stages forced): $((full_ms / 1000)).$(( (full_ms % 1000) / 100 )) s"
echo "no-op dvc repro: $((noop_ms / 1000)).$(( (noop_ms % 1000) / 100 )) s ($ran stages ran)"
