"""Procedural graded task: find a list of digits that satisfies several constraints (partial credit).

Each problem is made from a hidden solution, so every constraint set is satisfiable; the score of an
answer is the fraction of constraints it satisfies (0 when the answer is not a list of the right
length). It trains and evaluates on a CPU in minutes and gives the graded signal EvoScale's selection
and its improvement reward need. Answers are the last ``\\boxed{a, b, c, ...}`` of the text.

Constraint kinds (``kind``, arguments): ``sum`` (s), ``greater`` (i, j: x_i > x_j), ``parity`` (i, 0
even / 1 odd), ``contains`` (d), ``distinct`` (), ``equals`` (i, d).
"""

from __future__ import annotations

import random
import re
from typing import Optional

KINDS = ("sum", "greater", "parity", "contains", "distinct", "equals")
_BOX = re.compile(r"\\boxed\{([^{}]*)\}")


def _describe(c: dict) -> str:
    k, a = c["kind"], c["args"]
    if k == "sum":
        return f"the numbers add up to {a[0]}"
    if k == "greater":
        return f"number {a[0] + 1} is greater than number {a[1] + 1}"
    if k == "parity":
        return f"number {a[0] + 1} is {'odd' if a[1] else 'even'}"
    if k == "contains":
        return f"the list contains the digit {a[0]}"
    if k == "distinct":
        return "no digit appears twice"
    if k == "equals":
        return f"number {a[0] + 1} is {a[1]}"
    raise ValueError(f"unknown constraint kind {k!r}")


def holds(c: dict, xs: list) -> bool:
    k, a = c["kind"], c["args"]
    if k == "sum":
        return sum(xs) == a[0]
    if k == "greater":
        return xs[a[0]] > xs[a[1]]
    if k == "parity":
        return xs[a[0]] % 2 == a[1]
    if k == "contains":
        return a[0] in xs
    if k == "distinct":
        return len(set(xs)) == len(xs)
    if k == "equals":
        return xs[a[0]] == a[1]
    raise ValueError(f"unknown constraint kind {k!r}")


def _constraint(kind: str, xs: list, rng: random.Random) -> dict:
    n = len(xs)
    if kind == "sum":
        return {"kind": kind, "args": [sum(xs)]}
    if kind == "greater":
        pairs = [(i, j) for i in range(n) for j in range(n) if xs[i] > xs[j]]
        return {"kind": kind, "args": list(rng.choice(pairs))} if pairs else {"kind": "sum", "args": [sum(xs)]}
    if kind == "parity":
        i = rng.randrange(n)
        return {"kind": kind, "args": [i, xs[i] % 2]}
    if kind == "contains":
        return {"kind": kind, "args": [rng.choice(xs)]}
    if kind == "distinct":
        return {"kind": kind, "args": []}
    i = rng.randrange(n)
    return {"kind": "equals", "args": [i, xs[i]]}


def prompt_text(length: int, constraints: list) -> str:
    lines = "\n".join(f"{i + 1}. {_describe(c)}" for i, c in enumerate(constraints))
    example = ", ".join(["d"] * length)
    return (f"Find a list of {length} digits (0-9) such that:\n{lines}\n"
            f"Answer with the list as \\boxed{{{example}}}.")


def make_problem(rng: random.Random, length: int = 5, n_constraints: int = 5, index: int = 0) -> dict:
    """One problem: its constraints hold for a hidden solution (distinct digits when ``distinct`` is used)."""
    kinds = [rng.choice(KINDS) for _ in range(n_constraints)]
    distinct = "distinct" in kinds
    xs = rng.sample(range(10), length) if distinct else [rng.randrange(10) for _ in range(length)]
    seen, constraints = set(), []
    for kind in kinds:
        c = _constraint(kind, xs, rng)
        key = (c["kind"], tuple(c["args"]))
        if key not in seen:
            seen.add(key)
            constraints.append(c)
    # prompt + completion (the hidden solution, boxed): the rows train classical SFT as they are (train sft)
    return {"id": f"digits-{index}", "length": length, "constraints": constraints, "solution": xs,
            "prompt": prompt_text(length, constraints), "completion": "\\boxed{" + ", ".join(map(str, xs)) + "}"}


def generate(n: int, seed: int = 0, length: int = 5, n_constraints: int = 5) -> list[dict]:
    rng = random.Random(seed)
    return [make_problem(rng, length, n_constraints, i) for i in range(n)]


def parse(text: str, length: int) -> Optional[list]:
    """The digits of the last ``\\boxed{...}``, or None when it is missing or not ``length`` digits."""
    boxes = _BOX.findall(text)
    if not boxes:
        return None
    parts = [p.strip() for p in boxes[-1].split(",")]
    if len(parts) != length or not all(p.isdigit() and len(p) == 1 for p in parts):
        return None
    return [int(p) for p in parts]


def score(problem: dict, text: str) -> float:
    """Fraction of the problem's constraints the answer satisfies; 0 for a malformed answer."""
    xs = parse(text, problem["length"])
    if xs is None:
        return 0.0
    return sum(holds(c, xs) for c in problem["constraints"]) / len(problem["constraints"])


def well_formed(problem: dict, text: str) -> bool:
    """The format check F(y) of EvoScale's reward: a boxed list of the right length."""
    return parse(text, problem["length"]) is not None
