import json
import random
import re

import pytest

from mmthink.errors import UserError
from mmthink.tasks.grading import grade
from mmthink.tasks.math import (
    KINDS, LEVELS, STEP_EQUATION, apply, cot_solution, generate, generate_split, load_math, make_row,
    normalize_row, prompt,
)
from mmthink.io import write_jsonl

ROWS = generate(240, seed=7, levels=LEVELS)


def test_generation_is_deterministic_by_seed():
    assert generate(30, seed=3) == generate(30, seed=3)
    assert generate(30, seed=3) != generate(30, seed=4)


def test_kinds_and_levels_cycle_evenly():
    rows = generate(18, seed=0)
    assert [(r["kind"], r["level"]) for r in rows[:6]] == [
        ("chain", 1), ("linear", 1), ("word", 1), ("chain", 2), ("linear", 2), ("word", 2)]
    assert {(r["kind"], r["level"]) for r in rows} == {(k, lv) for k in KINDS for lv in (1, 2, 3)}
    assert [r["id"] for r in rows[:2]] == ["math-0-0", "math-0-1"]


def test_golden_rows():
    # Pinned so that a change to the generator is a visible, deliberate change to the data.
    rows = generate(3, seed=0, levels=(2,))
    assert rows[1] == {
        "id": "math-0-1", "kind": "linear", "level": 2, "question": "Solve for x: 6 * x - 16 = 74.",
        "answer": "15",
        "steps": ["Add 16 to both sides: 74 + 16 = 90.", "Divide both sides by 6: 90 / 6 = 15."],
        "step_values": [90, 15],
    }
    assert cot_solution(rows[1]) == (
        "Add 16 to both sides: 74 + 16 = 90.\nDivide both sides by 6: 90 / 6 = 15.\nThe answer is \\boxed{15}.")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["id"])
def test_every_step_is_a_true_equation_and_the_last_value_is_the_answer(row):
    assert len(row["steps"]) == len(row["step_values"]) >= 1
    for step, value in zip(row["steps"], row["step_values"]):
        m = STEP_EQUATION.search(step)
        assert m, step
        assert apply(int(m[1]), m[2], int(m[3])) == int(m[4]) == value >= 0
    assert row["answer"] == str(row["step_values"][-1])
    assert grade(cot_solution(row), row["answer"])


def test_levels_add_steps():
    mean = {lv: sum(len(r["steps"]) for r in ROWS if r["level"] == lv) / 60 for lv in LEVELS}
    assert mean[1] < mean[2] < mean[3] < mean[4]


def test_chain_steps_recompute_from_the_question():
    for row in (r for r in ROWS if r["kind"] == "chain"):
        expr = row["question"].removeprefix("Compute ").removesuffix(".")
        assert re.fullmatch(r"[\d+\-*/() ]+", expr)
        assert eval(expr) == int(row["answer"])  # only digits, operators and brackets: safe to eval
        # each step applies one operation to the running value, starting from a number of the question
        values = [int(STEP_EQUATION.search(s)[1]) for s in row["steps"]]
        assert values[1:] == row["step_values"][:-1]
        assert str(values[0]) in re.findall(r"\d+", expr)
        assert len(row["steps"]) == row["level"] + 1


def test_linear_answers_solve_the_equation():
    for row in (r for r in ROWS if r["kind"] == "linear"):
        lhs, rhs = row["question"].removeprefix("Solve for x: ").removesuffix(".").split(" = ")
        x = int(row["answer"])
        assert eval(lhs.replace("x", str(x))) == eval(rhs.replace("x", str(x))), row["question"]


def test_word_problem_example():
    row = make_row(random.Random(5), "word", 4, "w")
    assert row["question"].endswith("?")
    assert len(row["steps"]) == 4


def test_split_keeps_test_questions_out_of_train():
    train, test = generate_split(300, 60, seed=1, kinds=("linear",), levels=(1,))
    assert len(train) == 300 and len(test) == 60
    assert not {r["question"] for r in train} & {r["question"] for r in test}


def test_bad_kind_or_level_is_a_user_error():
    with pytest.raises(UserError, match="kinds"):
        generate(3, 0, kinds=("geometry",))
    with pytest.raises(UserError, match="levels"):
        generate(3, 0, levels=(9,))


def test_prompt_is_satoris():
    assert prompt("What is 2 + 3?") == (
        "Solve the following math problem efficiently and clearly. Please reason step by step, and put your "
        "final answer within \\boxed{}. Problem: What is 2 + 3?")


# ---------------------------------------------------------------- reading files


def test_normalize_gsm8k_row():
    row = {"question": "Tom has 3 boxes of 400 coins. How many?",
           "answer": "3 boxes hold 3*400=<<3*400=1200>>1200 coins.\n#### 1,200"}
    assert normalize_row(row) == {
        "question": "Tom has 3 boxes of 400 coins. How many?", "answer": "1200",
        "steps": ["3 boxes hold 3*400=1200 coins."],
    }


def test_normalize_math_rows():
    solution = "Half of it: $\\frac{1}{2}$, so \\boxed{1} first... final: $\\boxed{\\frac{1}{2}}$."
    assert normalize_row({"problem": "P?", "solution": solution}) == {"question": "P?", "answer": "\\frac{1}{2}"}
    assert normalize_row({"problem": "P?", "answer": "7", "solution": "\\boxed{8}", "id": 3}) == {
        "id": "3", "question": "P?", "answer": "7"}


def test_load_math_reads_all_three_formats(tmp_path):
    ours = generate(2, seed=0)
    path = tmp_path / "mixed.jsonl"
    write_jsonl(ours + [
        {"question": "Q?", "answer": "so 4\n#### 4"},
        {"problem": "P?", "solution": "It is \\boxed{9}."},
    ], path)
    rows = load_math(path)
    assert rows[:2] == ours
    assert [(r["question"], r["answer"]) for r in rows[2:]] == [("Q?", "4"), ("P?", "9")]
    assert len(load_math(path, limit=1)) == 1


@pytest.mark.parametrize("bad, line, field", [
    ({"question": "Q?"}, 2, "answer"),
    ({"problem": "P?", "solution": "no box"}, 2, "solution"),
    ({"text": "hi"}, 2, "question"),
    ({"question": "Q?", "answer": "x ####  "}, 2, "answer"),
    ({"question": "Q?", "answer": "3", "steps": ["a"], "step_values": [1, 2]}, 2, "step_values"),
])
def test_a_malformed_row_names_file_line_and_field(tmp_path, bad, line, field):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "ok?", "answer": "1"}) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(UserError) as e:
        load_math(path)
    assert f"{path}:{line}" in str(e.value) and f"'{field}'" in str(e.value)
