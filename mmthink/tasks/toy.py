"""A toy chat task for smoke runs of the supervised path: two-number arithmetic with exact answers.

``mmthink data toy`` rewrites the committed copies under ``data/toy/``; a test checks that
they match this generator.
"""

from __future__ import annotations

import random
from pathlib import Path

from mmthink.io import write_jsonl


def arithmetic_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        op = rng.choice("+-")
        value = a + b if op == "+" else a - b
        rows.append({"messages": [
            {"role": "user", "content": f"What is {a} {op} {b}?"},
            {"role": "assistant", "content": str(value)},
        ]})
    return rows


# File name -> (rows, seed) of the committed splits.
SPLITS = {"arith_train.jsonl": (2000, 0), "arith_eval.jsonl": (100, 1)}


def write_all(out_dir) -> list[Path]:
    """Write every split of ``SPLITS`` under ``out_dir``; returns the paths."""
    paths = []
    for name, (n, seed) in SPLITS.items():
        paths.append(Path(out_dir) / name)
        write_jsonl(arithmetic_rows(n, seed), paths[-1])
    return paths
