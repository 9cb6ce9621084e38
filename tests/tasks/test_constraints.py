"""The procedural digits task: satisfiable by construction, graded by the fraction of constraints met."""

import random

from mmthink.tasks.constraints import generate, holds, parse, score, well_formed


def test_every_problem_is_satisfied_by_its_hidden_solution():
    for p in generate(200, seed=3):
        assert all(holds(c, p["solution"]) for c in p["constraints"])
        box = "\\boxed{" + ", ".join(map(str, p["solution"])) + "}"
        assert score(p, "so " + box) == 1.0 and well_formed(p, box) and p["completion"] == box


def test_partial_credit_and_malformed_answers():
    p = {"length": 3, "constraints": [{"kind": "sum", "args": [6]}, {"kind": "equals", "args": [0, 1]},
                                      {"kind": "distinct", "args": []}, {"kind": "greater", "args": [2, 1]}]}
    assert score(p, "\\boxed{1, 2, 3}") == 1.0
    assert score(p, "\\boxed{2, 2, 2}") == 0.25  # only the sum holds
    assert score(p, "first \\boxed{1, 2, 3} then \\boxed{3, 3, 3}") == 0.0  # the last box counts: nothing holds
    for bad in ("1, 2, 3", "\\boxed{1, 2}", "\\boxed{1, 2, 10}", "\\boxed{a, b, c}"):
        assert score(p, bad) == 0.0 and not well_formed(p, bad)
    assert parse("\\boxed{ 4,5 ,6 }", 3) == [4, 5, 6]


def test_random_answers_score_in_between_on_average():
    rng = random.Random(0)
    problems = generate(100, seed=1)
    mean = sum(score(p, "\\boxed{" + ", ".join(str(rng.randrange(10)) for _ in range(5)) + "}")
               for p in problems) / len(problems)
    assert 0.1 < mean < 0.7  # graded: neither trivial nor hopeless
    assert generate(5, seed=1) == generate(5, seed=1) and generate(5, seed=1) != generate(5, seed=2)
    assert "Answer with the list as \\boxed{d, d, d, d, d}" in problems[0]["prompt"]
