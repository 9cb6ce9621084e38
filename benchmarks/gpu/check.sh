#!/usr/bin/env bash
# The prepared GPU check (see check.py): one command, one JSON ($OUT/gpu_check.json or runs/gpu_check.json).
#   benchmarks/gpu/check.sh              on the lent GPU machine (about 5 minutes on one H200)
#   benchmarks/gpu/check.sh --dry-run    tiny shapes on the CPU, what CI runs
# The lent machine has torch and transformers but not every dependency: the wheels listed in
# wheels.txt, when present under benchmarks/gpu/wheels/, are installed first (no index is reachable there).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
if [ -d benchmarks/gpu/wheels ] && ls benchmarks/gpu/wheels/* >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps benchmarks/gpu/wheels/*
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$PY" benchmarks/gpu/check.py "$@"
