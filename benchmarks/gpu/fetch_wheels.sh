#!/usr/bin/env bash
# Download the wheels of wheels.txt for the lent GPU machine (Python 3.12, Linux x86_64) into benchmarks/gpu/wheels/.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p wheels
grep -v '^#' wheels.txt | sed 's/#.*//' | grep -v '^ *$' | while read -r req; do
  python3 -m pip download -q --no-deps -d wheels --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 "$req" \
  || python3 -m pip download -q --no-deps -d wheels "$req"   # an sdist (antlr4)
done
du -sh wheels
