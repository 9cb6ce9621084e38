"""A toy chat task for smoke runs of the supervised path: two-number arithmetic with exact answers.

``python -m mmthink.tasks.toy`` rewrites the committed copies under ``data/toy/``; a test checks that
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




SPLITS = {"arith_train.jsonl": (2000, 0), "arith_eval.jsonl": (100, 1)}

if __name__ == "__main__":
    for name, (n, seed) in SPLITS.items():
        write_jsonl(arithmetic_rows(n, seed), Path("data/toy") / name)
        print(f"wrote data/toy/{name}")
