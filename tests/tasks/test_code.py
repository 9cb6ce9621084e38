"""Code tasks: graded execution against asserts, HumanEval offline, bug-fix mutants."""

import random

import pytest

from mmthink.tasks.code import bugfix_tasks, execute, humaneval, instrument, mutate, solution, problem_test

ADD_TEST = "assert add(1, 0) == 1\nassert add(2, 2) == 4\nassert add(0, 0) == 0\n"


def test_the_score_is_the_fraction_of_asserts_passed():
    r = execute("def add(a, b):\n    return a - b\n", ADD_TEST, 5)
    assert (r.status, r.n_asserts, r.n_passed) == ("failed", 3, 2) and r.score == pytest.approx(2 / 3)
    r = execute("def add(a, b):\n    return a + b\n", ADD_TEST, 5)
    assert (r.status, r.n_passed, r.score) == ("passed", 3, 1.0)


def test_an_assert_that_raises_fails_and_the_rest_still_run():
    r = execute("def add(a, b):\n    if a == 2: raise ValueError\n    return a + b\n", ADD_TEST, 5)
    assert (r.status, r.n_passed) == ("failed", 2)


def test_a_hang_keeps_the_credit_earned_before_it():
    r = execute("def f(x):\n    while x: pass\n    return 1\n", "assert f(0) == 1\nassert f(1) == 1\nassert f(0) == 1\n", 1.5)
    assert (r.status, r.n_passed, r.n_asserts) == ("timeout", 1, 3)


@pytest.mark.parametrize("program", ["def add(:\n", "raise RuntimeError('boom')", "import sys\nsys.exit(0)"])
def test_programs_that_do_not_define_or_exit_early_are_errors(program):
    r = execute(program, ADD_TEST, 5)
    assert r.status == "error" and r.score == 0.0


def test_asserts_inside_loops_count_once_and_fail_if_any_pass_fails():
    test = "for x in [1, 2, 3]:\n    assert sq(x) == x * x\nassert sq(0) == 0\n"
    assert instrument(test)[1] == 2
    r = execute("def sq(x):\n    return 5 if x == 2 else x * x\n", test, 5)
    assert (r.n_asserts, r.n_passed) == (2, 1)


def test_humaneval_ships_offline_and_canonical_solutions_pass():
    problems = humaneval()
    assert len(problems) == 164 and problems[0]["task_id"] == "HumanEval/0"
    for p in humaneval(task_ids=["HumanEval/0", "HumanEval/12", "HumanEval/163"]):
        r = execute(solution(p, p["canonical_solution"]), problem_test(p), 10)
        assert r.status == "passed" and r.n_asserts >= 3, (p["task_id"], r)
    assert execute(solution(problems[0], "    return False\n"), problem_test(problems[0]), 10).score < 1.0


def test_mutants_change_one_thing_and_bugfix_tasks_fail_their_tests():
    src = "def f(a, b):\n    if a < b:\n        return a + 1\n    return b\n"
    changed = {mutate(src, random.Random(s))[1] for s in range(20)}
    assert {"Lt -> GtE", "Add -> Sub"} <= changed and any(c.startswith("constant 1 ->") for c in changed)
    rows = bugfix_tasks(humaneval(limit=6), seed=0)
    assert rows and all(r["buggy_score"] < 1.0 for r in rows)
    assert len({r["task_id"] for r in rows}) == len(rows)
    assert rows == bugfix_tasks(humaneval(limit=6), seed=0)  # the same seed makes the same tasks


def test_a_chatty_program_keeps_its_graded_credit():
    # 200k characters printed before the asserts run: the reports that follow are still read.
    program = "print('x' * 200_000)\ndef add(a, b):\n    return a - b\n"
    r = execute(program, ADD_TEST, 5)
    assert (r.status, r.n_passed) == ("failed", 2)
