"""Synthetic Chain-of-Action-Thought (COAT) demonstrations for Satori's format tuning, and step cuts.

The paper builds its ~10K demonstrations with a generator / critic / reward-model pipeline; for our
procedural rows (``mmthink.tasks.math``: every step ends in an equation ``a op b = v.`` whose value is
known) we write them directly. One step a line; a meta-action token opens the line of the step it
announces; the last line is the answer::

    13 + 8 = 21.
    <|continue|>21 * 3 = 64.                          <- a wrong step (reflect demos only)
    <|reflect|>Wait, let me check: 21 * 3 is 63, not 64.
    <|continue|>21 * 3 = 63.                          <- the corrected step
    <|continue|>63 - 4 = 59.
    <|explore|>Let me check by working backwards: 59 + 4 = 63. 63 / 3 = 21. 21 - 8 = 13. Every step checks out.
    The answer is \\boxed{59}.

Step boundaries (``split_steps``): a step ends after a newline, and a meta token always starts a new
step, so the token belongs to the step it opens. Restart-and-Explore cuts trajectories there and
appends ``<|reflect|>``; ``step_prefixes`` gives the exact cut texts.
"""

from __future__ import annotations

import random
import re

from mmthink.errors import UserError
from mmthink.methods.satori.config import CONTINUE, DEFAULT_MIX, DEMO_KINDS, EXPLORE, META_TOKENS, REFLECT
from mmthink.tasks.math import STEP_EQUATION, answer_line, apply, cot_solution, prompt

_META = re.compile("|".join(re.escape(t) for t in META_TOKENS))
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


def hide_meta(text: str) -> str:
    """The text without meta tokens, for a person to read (graders keep them: they never read them)."""
    text = _META.sub(" ", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# ---------------------------------------------------------------- steps of a row


def _equation(row: dict, k: int) -> tuple[re.Match, int, str, int, int]:
    """The closing equation of step k as (match, a, op, b, v), checked against ``step_values[k]``."""
    step, value = row["steps"][k], row["step_values"][k]
    m = STEP_EQUATION.search(step)
    if m is None or int(m[4]) != value:
        raise UserError(f"math row {row.get('id', '?')} step {k}: expected it to end in 'a op b = {value}.', "
                        f"got {step!r}")
    return m, int(m[1]), m[2], int(m[3]), value


def _exact(a: int, op: str, b: int):
    try:
        return apply(a, op, b)
    except ValueError:
        return None


def wrong_step(row: dict, k: int, rng: random.Random) -> tuple[str, str, int]:
    """(step k written wrongly, the reflection that catches it, the wrong value).

    Two kinds of slip, as a student makes them: a swapped operation (consistent arithmetic, wrong
    operation) or a miscalculation (the right operation, a value off by a little).
    """
    m, a, op, b, value = _equation(row, k)
    step = row["steps"][k]
    swaps = [o for o in "+-*/" if o != op and _exact(a, o, b) is not None and 0 <= _exact(a, o, b) != value]
    if swaps and rng.random() < 0.5:
        o = rng.choice(swaps)
        wrong = apply(a, o, b)
        text = step[:m.start(2)] + o + step[m.end(2):m.start(4)] + str(wrong) + step[m.end(4):]
        return text, f"Wait, let me check: this step needs {a} {op} {b}, not {a} {o} {b}.", wrong
    wrong = value + rng.choice([d for d in (-3, -2, -1, 1, 2, 3, 10) if value + d >= 0])
    text = step[:m.start(4)] + str(wrong) + step[m.end(4):]
    return text, f"Wait, let me check: {a} {op} {b} is {value}, not {wrong}.", wrong


def inverse_check(row: dict, k: int) -> str:
    """Step k undone: ``a op b = v`` becomes ``v op' b = a`` (for linear rows this is substitution)."""
    _, a, op, b, value = _equation(row, k)
    return f"{value} {_INVERSE[op]} {b} = {a}."


# ---------------------------------------------------------------- demonstrations


def _opened(lines: list[str]) -> list[str]:
    """Every line but a demo's first opens with <|continue|>."""
    return [line if i == 0 else CONTINUE + line for i, line in enumerate(lines)]


def coat_demo(row: dict, rng: random.Random, kind: str) -> str:
    """A COAT trajectory for a procedural math row; its last ``\\boxed{}`` is always the row's answer.

    "continue": the steps joined by <|continue|>. "reflect": at a random step a wrong version, then
    <|reflect|>, why it is wrong, and the corrected step. "explore": after a random number of steps
    (possibly all), <|explore|> and a check of those steps by working backwards.
    """
    steps = row.get("steps") or []
    if not steps or len(row.get("step_values") or []) != len(steps):
        raise UserError(f"math row {row.get('id', '?')}: COAT demos need 'steps' and one 'step_values' entry "
                        "per step (procedural rows from mmthink.tasks.math)")
    if kind == "continue":
        lines = _opened(steps)
    elif kind == "reflect":
        k = rng.randrange(len(steps))
        wrong, why, _ = wrong_step(row, k, rng)
        lines = _opened(steps[:k] + [wrong]) + [REFLECT + why] + [CONTINUE + s for s in steps[k:]]
    elif kind == "explore":
        k = rng.randint(1, len(steps))
        checks = " ".join(inverse_check(row, i) for i in reversed(range(k)))
        explore = f"{EXPLORE}Let me check by working backwards: {checks} Every step checks out."
        lines = _opened(steps[:k]) + [explore] + [CONTINUE + s for s in steps[k:]]
    else:
        raise UserError(f"COAT demo kind must be one of {', '.join(DEMO_KINDS)}, got {kind!r}")
    return "\n".join(lines) + "\n" + answer_line(row["answer"])


def chat_row(row: dict, completion: str) -> dict:
    # id and answer ride along so that an evaluation of the SFT model can grade its generations.
    return {
        **({"id": row["id"]} if "id" in row else {}),
        "answer": row["answer"],
        "messages": [{"role": "user", "content": prompt(row["question"])},
                     {"role": "assistant", "content": completion}],
    }


def _check_mix(mix: dict) -> None:
    unknown = set(mix) - set(DEMO_KINDS)
    if unknown or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise UserError(f"COAT mix needs non-negative weights for {', '.join(DEMO_KINDS)} with a positive "
                        f"sum, got {mix}")


def coat_sft_rows(rows: list[dict], seed: int, mix: dict = DEFAULT_MIX) -> list[dict]:
    """Chat rows for the SFT method: Satori's prompt, a COAT demo whose kind is drawn from ``mix``."""
    _check_mix(mix)
    kinds = [k for k in DEMO_KINDS if mix.get(k, 0) > 0]
    weights = [mix[k] for k in kinds]
    rng = random.Random(seed)
    return [chat_row(row, coat_demo(row, rng, rng.choices(kinds, weights)[0])) for row in rows]


def cot_sft_rows(rows: list[dict]) -> list[dict]:
    """The baseline: the same prompts with plain chain-of-thought solutions."""
    return [chat_row(row, cot_solution(row)) for row in rows]


# ---------------------------------------------------------------- step boundaries


def split_steps(completion: str) -> list[str]:
    """The completion cut into steps; ``"".join(split_steps(c)) == c``.

    A step ends right after a newline or right before a meta token. A piece that is only whitespace
    (a blank line) joins the step before it, so every step has content.
    """
    cuts = {i + 1 for i, ch in enumerate(completion) if ch == "\n"} | {m.start() for m in _META.finditer(completion)}
    cuts = sorted(c for c in cuts if 0 < c < len(completion))
    pieces = [completion[i:j] for i, j in zip([0] + cuts, cuts + [len(completion)])]
    steps: list[str] = []
    for piece in pieces:
        if steps and not piece.strip():
            steps[-1] += piece
        elif steps and not steps[-1].strip():  # leading blank lines join the first real step
            steps[-1] += piece
        else:
            steps.append(piece)
    return steps if completion else []


def step_prefixes(completion: str) -> list[str]:
    """The completion cut after 0, 1, 2, ... complete steps: exact prefixes, the last one the whole text."""
    prefixes, end = [""], 0
    for step in split_steps(completion):
        end += len(step)
        prefixes.append(completion[:end])
    return prefixes
