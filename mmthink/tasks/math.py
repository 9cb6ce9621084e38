"""Procedural multi-step math with known answers and known intermediate steps, and math row files.

Three kinds, each ``level`` (1..4) adding one step or so:
- "chain": ``Compute ((7 + 5) * 3) - 4.``, one operation per step;
- "linear": ``Solve for x: 3 * x + 5 = 23.``, one inverse operation per step;
- "word": shopping, ages and production-rate stories, one operation per step.

Every step is a sentence ending in one equation ``a op b = v.`` (op one of + - * /, all values
non-negative integers, every division exact), so a step can be re-checked by machine, and its value is
stored in ``step_values`` (the step-level truth a process verifier is scored against). The last step's
value is the answer. Our row:
``{"id", "kind", "level", "question", "answer": str, "steps": [str], "step_values": [int]}``.

``load_math`` also reads GSM8K rows (``question``, ``answer`` ending ``#### 42``) and MATH rows
(``problem`` with ``answer`` or a ``solution`` holding ``\\boxed{}``) and maps them to ours.

``mmthink data math --out DIR [--n-train N --n-test N --seed S]`` writes train.jsonl and test.jsonl.
"""

from __future__ import annotations

import random
import re
from typing import Callable, Optional

from mmthink.data.rows import BadRow, load_rows, need
from mmthink.errors import UserError
from mmthink.tasks.grading import last_boxed

KINDS = ("chain", "linear", "word")
LEVELS = (1, 2, 3, 4)
PROMPT = (
    "Solve the following math problem efficiently and clearly. Please reason step by step, "
    "and put your final answer within \\boxed{}. Problem: "
)
# The equation a step ends with; COAT demos and checks re-read steps through it.
STEP_EQUATION = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)\.$")


def apply(a: int, op: str, b: int) -> int:
    """a op b for the four operations; division must be exact."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/" and b != 0 and a % b == 0:
        return a // b
    raise ValueError(f"{a} {op} {b} is not an exact integer operation")


def _step(text: str, a: int, op: str, b: int) -> tuple[str, int]:
    value = apply(a, op, b)
    return f"{text}{a} {op} {b} = {value}.", value


def prompt(question: str) -> str:
    """Satori's prompt, verbatim."""
    return PROMPT + question


def answer_line(answer: str) -> str:
    return f"The answer is \\boxed{{{answer}}}."


def cot_solution(row: dict) -> str:
    """The plain chain-of-thought reference: one step a line, then the boxed answer."""
    return "".join(s + "\n" for s in row.get("steps") or []) + answer_line(row["answer"])


# ---------------------------------------------------------------- chain


def _chain_op(rng: random.Random, v: int, hi: int) -> tuple[str, int]:
    """One operation that keeps the running value a positive integer of modest size."""
    options = ["+"]
    if v >= 2:
        options.append("-")
    if v <= 12 * hi:
        options.append("*")
    divisors = [d for d in range(2, 10) if v % d == 0 and v > d]
    if divisors:
        options.append("/")
    op = rng.choice(options)
    if op == "+":
        return op, rng.randint(1, hi)
    if op == "-":
        return op, rng.randint(1, v - 1)
    if op == "*":
        return op, rng.randint(2, 9)
    return op, rng.choice(divisors)


def _chain(rng: random.Random, level: int) -> tuple[str, list[tuple[str, int]]]:
    hi = 5 + 5 * level
    v = rng.randint(2, hi)
    expr, steps = str(v), []
    for i in range(level + 1):
        op, b = _chain_op(rng, v, hi)
        if i > 0:
            expr = f"({expr})"
        # + and * are commutative: put the new number on either side so the form varies.
        expr = f"{b} {op} {expr}" if op in "+*" and rng.random() < 0.5 else f"{expr} {op} {b}"
        steps.append(_step("", v, op, b))
        v = steps[-1][1]
    return f"Compute {expr}.", steps


# ---------------------------------------------------------------- linear


def _linear(rng: random.Random, level: int) -> tuple[str, list[tuple[str, int]]]:
    x = rng.randint(1, 5 + 5 * level)
    a, b, d = rng.randint(2, 9), rng.randint(1, 20), rng.randint(1, 20)

    def subtract(v, n):
        return _step(f"Subtract {n} from both sides: ", v, "-", n)

    def divide(v, n):
        return _step(f"Divide both sides by {n}: ", v, "/", n)

    if level == 1 and rng.random() < 0.5:
        return f"Solve for x: x + {b} = {x + b}.", [subtract(x + b, b)]
    if level == 1:
        return f"Solve for x: {a} * x = {a * x}.", [divide(a * x, a)]
    if level == 2 and (rng.random() < 0.5 or a * x <= b):
        s1 = subtract(a * x + b, b)
        return f"Solve for x: {a} * x + {b} = {a * x + b}.", [s1, divide(s1[1], a)]
    if level == 2:
        s1 = _step(f"Add {b} to both sides: ", a * x - b, "+", b)
        return f"Solve for x: {a} * x - {b} = {a * x - b}.", [s1, divide(s1[1], a)]
    if level == 3:
        c = a * (x + b) + d
        s1 = subtract(c, d)
        s2 = divide(s1[1], a)
        return f"Solve for x: {a} * (x + {b}) + {d} = {c}.", [s1, s2, subtract(s2[1], b)]
    # level 4: a * (x + b) = d * x + e with a - d >= 2 (no "divide by 1"), so e = (a - d) * x + a * b.
    a = max(a, 3)
    d = rng.randint(1, a - 2)
    e = (a - d) * x + a * b
    s1 = _step("Expand the left side: ", a, "*", b)
    s2 = _step(f"Subtract {d} * x from both sides: ", a, "-", d)
    s3 = subtract(e, s1[1])
    return f"Solve for x: {a} * (x + {b}) = {d} * x + {e}.", [s1, s2, s3, divide(s3[1], s2[1])]


# ---------------------------------------------------------------- word

NAMES = ("Tom", "Ann", "Ben", "Sara", "Lily", "Sam", "Maya", "Leo", "Nora", "Max")
ITEMS = (("book", "books"), ("cup", "cups"), ("ball", "balls"), ("apple", "apples"), ("box", "boxes"))


def _shopping(rng: random.Random, level: int) -> tuple[str, list[tuple[str, int]]]:
    name = rng.choice(NAMES)
    (_, item1), (_, item2) = rng.sample(ITEMS, 2)
    q1, p1, q2, p2 = rng.randint(2, 9), rng.randint(2, 12), rng.randint(2, 9), rng.randint(2, 12)
    steps = [_step(f"The {item1} cost ", q1, "*", p1)]
    buys = f"{name} buys {q1} {item1} at {p1} dollars each"
    if level >= 3:
        steps.append(_step(f"The {item2} cost ", q2, "*", p2))
        steps.append(_step("Together they cost ", steps[0][1], "+", steps[1][1]))
        buys += f" and {q2} {item2} at {p2} dollars each"
    if level in (1, 3):
        return f"{buys}. How many dollars does {name} spend?", steps
    cost = steps[-1][1]
    paid = (cost // 10 + 1 + rng.randint(0, 2)) * 10  # a round note above the cost
    steps.append(_step("The change is ", paid, "-", cost))
    return f"{buys}, and pays with {paid} dollars. How many dollars of change does {name} get?", steps


def _ages(rng: random.Random, level: int) -> tuple[str, list[tuple[str, int]]]:
    a, b, c = rng.sample(NAMES, 3)
    age, older, times, years = rng.randint(3, 15), rng.randint(1, 10), rng.choice((2, 3)), rng.randint(2, 12)
    q = f"{a} is {age} years old. {b} is {older} years older than {a}."
    steps = [_step(f"{b} is ", age, "+", older)]
    if level == 1:
        return f"{q} How old is {b}?", steps
    q += f" {c} is {'twice' if times == 2 else 'three times'} as old as {b}."
    steps.append(_step(f"{c} is ", steps[0][1], "*", times))
    if level == 2:
        return f"{q} How old is {c}?", steps
    if level == 3:
        steps.append(_step(f"In {years} years {c} will be ", steps[1][1], "+", years))
        return f"{q} How old will {c} be in {years} years?", steps
    steps.append(_step(f"{a} and {b} together are ", age, "+", steps[0][1]))
    steps.append(_step(f"Adding {c}, the sum is ", steps[2][1], "+", steps[1][1]))
    return f"{q} What is the sum of the ages of {a}, {b} and {c}?", steps


def _rates(rng: random.Random, level: int) -> tuple[str, list[tuple[str, int]]]:
    rate, hours, days = rng.randint(2, 12), rng.randint(2, 10), rng.randint(2, 7)
    q = f"A machine makes {rate} cups per hour and works {hours} hours a day."
    steps = [_step("Cups made in one day: ", rate, "*", hours)]
    if level == 1:
        return f"{q} How many cups does it make in a day?", steps
    q += f" It works for {days} days."
    steps.append(_step(f"Cups made in {days} days: ", steps[0][1], "*", days))
    total = steps[1][1]
    if level == 2:
        return f"{q} How many cups does it make?", steps
    if level == 3:
        broken = rng.randint(1, min(20, total - 1))
    else:  # choose the filled boxes first, so that the broken cups leave an exact multiple
        size = rng.randint(2, min(9, total - 1))
        boxes = rng.randint(max(1, total // size // 2), (total - 1) // size)
        broken = total - boxes * size
    q += f" Then {broken} of the cups break."
    steps.append(_step("Cups left: ", total, "-", broken))
    if level == 3:
        return f"{q} How many cups are left?", steps
    steps.append(_step(f"Boxes of {size}: ", steps[2][1], "/", size))
    return f"{q} The rest are packed in boxes of {size}. How many boxes are filled?", steps


WORD_TEMPLATES: tuple[Callable, ...] = (_shopping, _ages, _rates)


def _word(rng: random.Random, level: int) -> tuple[str, list[tuple[str, int]]]:
    return rng.choice(WORD_TEMPLATES)(rng, level)


MAKERS = {"chain": _chain, "linear": _linear, "word": _word}

# ---------------------------------------------------------------- rows


def make_row(rng: random.Random, kind: str, level: int, row_id: str) -> dict:
    question, steps = MAKERS[kind](rng, level)
    return {
        "id": row_id, "kind": kind, "level": level, "question": question, "answer": str(steps[-1][1]),
        "steps": [text for text, _ in steps], "step_values": [value for _, value in steps],
    }


def generate(n: int, seed: int, kinds=KINDS, levels=(1, 2, 3), exclude=frozenset()) -> list[dict]:
    """``n`` rows cycling through kinds, then levels (balanced when n is a multiple of both counts).

    A question in ``exclude`` (e.g. the test set's) is drawn again, so train and test never overlap.
    """
    kinds, levels = tuple(kinds), tuple(levels)
    if not kinds or not set(kinds) <= set(KINDS):
        raise UserError(f"math kinds must be a non-empty subset of {', '.join(KINDS)}, got {kinds}")
    if not levels or not set(levels) <= set(LEVELS):
        raise UserError(f"math levels must be a non-empty subset of {LEVELS}, got {levels}")
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind, level = kinds[i % len(kinds)], levels[(i // len(kinds)) % len(levels)]
        for _ in range(1000):
            row = make_row(rng, kind, level, f"math-{seed}-{i}")
            if row["question"] not in exclude:
                break
        else:
            raise UserError(f"cannot draw a {kind} level-{level} question outside the excluded set")
        rows.append(row)
    return rows


def problems_for_run(d, seed: int, out_dir) -> tuple[list, list]:
    """(train rows, held-out rows) of a recipe's ``data`` section (train_file, eval_file, n_train, n_eval,
    kinds, levels, limit): its files, or generated problems written to ``out_dir/data``."""
    from pathlib import Path

    from mmthink.io import write_jsonl

    if d.train_file:
        return load_math(d.train_file, d.limit), (load_math(d.eval_file) if d.eval_file else [])
    train, held_out = generate_split(d.n_train, d.n_eval, seed, tuple(d.kinds), tuple(d.levels))
    write_jsonl(train, Path(out_dir) / "data" / "train.jsonl")
    write_jsonl(held_out, Path(out_dir) / "data" / "eval.jsonl")
    return (train[: d.limit] if d.limit else train), held_out


def generate_split(n_train: int, n_test: int, seed: int = 0, kinds=KINDS, levels=(1, 2, 3)):
    """(train, test) with no question in both; test uses ``seed``, train ``seed + 1``."""
    test = generate(n_test, seed, kinds, levels)
    return generate(n_train, seed + 1, kinds, levels, exclude={r["question"] for r in test}), test




# ---------------------------------------------------------------- reading rows: ours, GSM8K, MATH

FORMATS_HINT = "a row needs 'question' and 'answer' (ours, GSM8K) or 'problem' with 'answer' or 'solution' (MATH)"


def _validate_ours(row: dict) -> None:
    need(row, "answer", (str, int), nonempty=False)
    if str(row["answer"]).strip() == "":
        raise BadRow("answer", "empty")
    if "steps" in row:
        for i, step in enumerate(need(row, "steps", list)):
            if not isinstance(step, str):
                raise BadRow(f"steps[{i}]", f"expected str, got {type(step).__name__}")
    if "step_values" in row:
        values = need(row, "step_values", list)
        for i, v in enumerate(values):
            if not isinstance(v, int) or isinstance(v, bool):
                raise BadRow(f"step_values[{i}]", f"expected int, got {type(v).__name__}")
        if len(values) != len(row.get("steps") or []):
            raise BadRow("step_values", f"{len(values)} values for {len(row.get('steps') or [])} steps")
    if "level" in row:
        need(row, "level", int)


def validate_math_row(row: dict) -> None:
    """For ``load_rows``: our rows, GSM8K rows or MATH rows; raises ``BadRow`` naming the field."""
    if isinstance(row, dict) and "problem" in row:
        need(row, "problem", str, nonempty=True)
        if "answer" in row:
            need(row, "answer", (str, int))
        elif last_boxed(need(row, "solution", str, nonempty=True)) is None:
            raise BadRow("solution", "no closed \\boxed{} answer in it")
        return
    if isinstance(row, dict) and "question" in row:
        need(row, "question", str, nonempty=True)
        answer = need(row, "answer", (str, int))
        if isinstance(answer, str) and "####" in answer and not answer.rsplit("####", 1)[1].strip():
            raise BadRow("answer", "nothing after '####'")
        _validate_ours(row)
        return
    raise BadRow("question", f"missing ({FORMATS_HINT})")


def _gsm8k_steps(solution: str) -> list[str]:
    # GSM8K marks calculator calls as <<48/2=24>>; the text around them already states the result.
    lines = (re.sub(r"<<[^<>]*>>", "", ln).strip() for ln in solution.splitlines())
    return [ln for ln in lines if ln]


def normalize_row(row: dict) -> dict:
    """Our row format from any accepted format: ``question``, ``answer`` (str), and whatever else is known."""
    row = {k: v for k, v in row.items() if v is not None}  # Arrow fills absent keys with None
    keep = {"id": str(row["id"])} if "id" in row else {}
    if "problem" in row:
        answer = row["answer"] if "answer" in row else last_boxed(row["solution"])
        return {**keep, "question": row["problem"], "answer": str(answer).strip()}
    answer = str(row["answer"])
    if "####" in answer:
        solution, final = answer.rsplit("####", 1)
        return {**keep, "question": row["question"], "answer": final.strip().replace(",", ""),
                "steps": _gsm8k_steps(solution)}
    out = {k: row[k] for k in ("id", "kind", "level", "question", "steps", "step_values") if k in row}
    return {**out, "answer": answer.strip()}


def load_math(path, limit: Optional[int] = None) -> list[dict]:
    """Rows of a .jsonl/.parquet file in our format, GSM8K's or MATH's, validated and normalised."""
    return [normalize_row(r) for r in load_rows(path, validate_math_row, limit)]
