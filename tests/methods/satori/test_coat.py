import random
import re
from collections import Counter

import pytest

from mmthink.errors import UserError
from mmthink.methods.satori.coat import (
    CONTINUE, EXPLORE, META_TOKENS, REFLECT, coat_demo, coat_sft_rows, cot_sft_rows, hide_meta, split_steps,
    step_prefixes,
)
from mmthink.tasks.grading import grade, last_boxed
from mmthink.tasks.math import LEVELS, STEP_EQUATION, apply, generate, prompt

ROWS = generate(120, seed=11, levels=LEVELS)
ROW = {"id": "r", "question": "Compute (13 + 8) * 3 - 4.", "answer": "59",
       "steps": ["13 + 8 = 21.", "21 * 3 = 63.", "63 - 4 = 59."], "step_values": [21, 63, 59]}


def _value(line: str) -> int:
    return int(STEP_EQUATION.search(line.strip())[4])


def test_continue_demo_golden():
    assert coat_demo(ROW, random.Random(0), "continue") == (
        "13 + 8 = 21.\n<|continue|>21 * 3 = 63.\n<|continue|>63 - 4 = 59.\nThe answer is \\boxed{59}.")


@pytest.mark.parametrize("kind", ["continue", "reflect", "explore"])
def test_every_demo_ends_with_the_right_answer(kind):
    rng = random.Random(0)
    for row in ROWS:
        demo = coat_demo(row, rng, kind)
        assert last_boxed(demo) == row["answer"] and grade(demo, row["answer"])
        assert demo.endswith(f"The answer is \\boxed{{{row['answer']}}}.")
        assert (REFLECT in demo) == (kind == "reflect") and (EXPLORE in demo) == (kind == "explore")


def test_reflect_demo_has_a_wrong_value_right_before_reflect_then_the_correction():
    rng = random.Random(1)
    for row in ROWS:
        demo = coat_demo(row, rng, "reflect")
        before, after = demo.split(REFLECT)
        lines = before.strip("\n").split("\n")
        k = len(lines) - 1  # the wrong step is step k of the row
        wrong = lines[-1].removeprefix(CONTINUE)
        m = STEP_EQUATION.search(wrong)
        assert int(m[4]) != row["step_values"][k]
        assert [ln.removeprefix(CONTINUE) for ln in lines[:-1]] == row["steps"][:k]
        # the line after the reflection restates step k correctly, and the rest follows unchanged
        corrected = after.split("\n")[1:-1]
        assert [ln.removeprefix(CONTINUE) for ln in corrected] == row["steps"][k:]


def test_reflect_slips_are_both_kinds():
    rng, kinds = random.Random(2), Counter()
    for row in ROWS:
        demo = coat_demo(row, rng, "reflect")
        kinds["operation" if "this step needs" in demo else "value"] += 1
    assert kinds["operation"] > 20 and kinds["value"] > 20


def test_explore_demo_checks_the_steps_by_working_backwards():
    rng = random.Random(3)
    for row in ROWS:
        demo = coat_demo(row, rng, "explore")
        line = next(ln for ln in demo.split("\n") if ln.startswith(EXPLORE))
        checks = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)\.", line)
        assert checks
        for a, op, b, v in checks:
            assert apply(int(a), op, int(b)) == int(v)
        # the checks undo the steps in reverse: the first one starts from the latest value reached
        assert int(checks[0][0]) == row["step_values"][len(checks) - 1]


def test_explore_on_a_linear_row_is_substitution():
    row = {"id": "l", "question": "Solve for x: 3 * x + 5 = 23.", "answer": "6",
           "steps": ["Subtract 5 from both sides: 23 - 5 = 18.", "Divide both sides by 3: 18 / 3 = 6."],
           "step_values": [18, 6]}
    demo = coat_demo(row, random.Random(0), "explore")
    assert "working backwards: 6 * 3 = 18. 18 + 5 = 23." in demo


def test_demo_needs_known_steps():
    with pytest.raises(UserError, match="step_values"):
        coat_demo({"question": "Q", "answer": "1", "steps": ["it is 1"]}, random.Random(0), "reflect")
    with pytest.raises(UserError, match="kind"):
        coat_demo(ROW, random.Random(0), "ponder")


def test_sft_rows_are_chat_rows_deterministic_by_seed_and_follow_the_mix():
    rows = coat_sft_rows(ROWS, seed=5)
    assert rows == coat_sft_rows(ROWS, seed=5) and rows != coat_sft_rows(ROWS, seed=6)
    first = rows[0]
    assert first["messages"][0] == {"role": "user", "content": prompt(ROWS[0]["question"])}
    assert first["messages"][1]["role"] == "assistant" and first["answer"] == ROWS[0]["answer"]
    kinds = Counter(REFLECT in r["messages"][1]["content"] for r in coat_sft_rows(ROWS * 5, 0))
    assert 0.3 < kinds[True] / 600 < 0.5  # reflect weight 0.4
    only = coat_sft_rows(ROWS, 0, mix={"explore": 1.0})
    assert all(EXPLORE in r["messages"][1]["content"] for r in only)
    with pytest.raises(UserError, match="mix"):
        coat_sft_rows(ROWS, 0, mix={"reflect": -1})


def test_cot_sft_rows_have_no_meta_tokens():
    rows = cot_sft_rows(ROWS[:3])
    assert rows[0]["messages"][1]["content"] == "\n".join(ROWS[0]["steps"]) + (
        f"\nThe answer is \\boxed{{{ROWS[0]['answer']}}}.")
    assert not any(t in r["messages"][1]["content"] for r in rows for t in META_TOKENS)


def test_hide_meta():
    text = "13 + 8 = 21.\n<|continue|>21 * 3 = 64.\n<|reflect|>Wait.  Fix:<|continue|>21 * 3 = 63."
    assert hide_meta(text) == "13 + 8 = 21.\n21 * 3 = 64.\nWait. Fix: 21 * 3 = 63."


def test_split_steps_cuts_after_newlines_and_before_meta_tokens():
    text = "a = 1.\n<|continue|>b = 2. <|reflect|>no\n\n<|explore|>c\nThe answer is \\boxed{3}."
    assert split_steps(text) == ["a = 1.\n", "<|continue|>b = 2. ", "<|reflect|>no\n\n", "<|explore|>c\n",
                                 "The answer is \\boxed{3}."]
    assert split_steps("") == [] and split_steps("\n\nx") == ["\n\nx"]


def test_step_prefixes_are_exact_prefixes():
    rng = random.Random(4)
    for row in ROWS[:30]:
        demo = coat_demo(row, rng, "reflect")
        prefixes = step_prefixes(demo)
        assert prefixes[0] == "" and prefixes[-1] == demo
        assert all(demo.startswith(p) for p in prefixes)
        assert [len(p) for p in prefixes] == sorted({len(p) for p in prefixes})  # strictly growing
        assert "".join(split_steps(demo)) == demo
        # every cut lands on a line end, so a restart state ends with "\n" + <|reflect|>
        assert all(p.endswith("\n") for p in prefixes[1:-1])
    assert step_prefixes("x = 1.\ny = 2.\n") == ["", "x = 1.\n", "x = 1.\ny = 2.\n"]
