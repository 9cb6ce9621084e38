"""The tasks EvoScale evaluates on, read from their rows: the procedural digits task (``mmthink data
digits``), HumanEval completion and HumanEval bug-fix (``mmthink data humaneval [--bugfix]``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mmthink.errors import UserError

KINDS = ("digits", "code", "bugfix")


def kind_of(row: dict) -> str:
    if "constraints" in row and "length" in row:
        return "digits"
    if "buggy" in row and "test" in row and "entry_point" in row:
        return "bugfix"
    if {"prompt", "test", "entry_point"} <= set(row):
        return "code"
    raise UserError("a row is neither a digits problem (constraints, length), a HumanEval problem (prompt, test, "
                    "entry_point) nor a bug-fix task (buggy, test, entry_point)")


def validate_row(row: dict) -> None:
    kind_of(row)
    if "id" not in row and "task_id" not in row:
        raise UserError("a row needs an id (or task_id)")


def problem_id(row: dict) -> str:
    return str(row.get("id", row.get("task_id")))


def prompt_of(row: dict) -> str:
    kind = kind_of(row)
    if kind == "digits":
        return row["prompt"]
    if kind == "code":
        return ("Complete this Python function. Reply with the whole function in one ```python block.\n\n"
                f"```python\n{row['prompt']}```")
    return ("This Python function has a bug. Reply with the fixed function in one ```python block.\n\n"
            f"```python\n{row['buggy']}\n```")


def scorer(timeout_s: float, workers: int = 2):
    """[(row, text)] -> [graded score]: the fraction of constraints, or of asserts passed in the sandbox."""
    from mmthink.tasks import code, constraints

    def one(pair):
        row, text = pair
        kind = kind_of(row)
        if kind == "digits":
            return constraints.score(row, text)
        test = code.problem_test(row) if kind == "code" else row["test"]
        return code.execute(code.program_from(row, text), test, timeout_s).score

    def score(pairs):
        if all(kind_of(r) == "digits" for r, _ in pairs):
            return [one(p) for p in pairs]
        with ThreadPoolExecutor(workers) as pool:  # each program runs in its own sandboxed process
            return list(pool.map(one, pairs))

    return score
