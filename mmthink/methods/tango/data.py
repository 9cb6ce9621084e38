"""Tango's rows, all made from ``mmthink.tasks.math`` problems (they carry ``steps`` and ``step_values``):

- format-tuning rows for the generator: the problem in the generator prompt → its steps in the
  ``<step>`` format (without it no process reward is ever placed);
- the step-labelled set the verifier is scored on: each problem either as solved (label −1) or with the
  value of step k corrupted and every later step recomputed from the wrong value, so that k is the
  earliest wrong step and the final answer is wrong (label k).
"""

from __future__ import annotations

import random
from typing import Optional

from mmthink.methods.tango.formats import generator_prompt, solution_text, step_spans, verifier_prompt
from mmthink.tasks.math import STEP_EQUATION, apply

DELTAS = (1, -1, 2, -2, 3, -3, 5, -5, 10, -10)


def format_rows(rows: list) -> list[dict]:
    """prompt + completion rows for the generator's format tuning."""
    return [{"prompt": generator_prompt(r["question"]), "completion": solution_text(r["steps"], r["answer"])}
            for r in rows if r.get("steps")]


def corrupt(row: dict, k: int, rng: random.Random) -> Optional[dict]:
    """``row`` with step k's value changed and the later steps recomputed from it; None when no change
    keeps every value a non-negative integer (exact divisions) and the final answer different."""
    steps, values = row["steps"], row["step_values"]
    parsed = [STEP_EQUATION.search(s) for s in steps]
    if any(p is None for p in parsed):
        return None
    for delta in rng.sample(DELTAS, len(DELTAS)):
        new_values, texts = list(values), list(steps)
        new_values[k] = values[k] + delta
        if new_values[k] < 0:
            continue
        a, op, b = parsed[k].group(1), parsed[k].group(2), parsed[k].group(3)
        texts[k] = steps[k][: parsed[k].start()] + f"{a} {op} {b} = {new_values[k]}."  # a op b no longer equals it
        changed = {values[k]: new_values[k]}
        ok = True
        for j in range(k + 1, len(steps)):
            a, op, b = int(parsed[j].group(1)), parsed[j].group(2), int(parsed[j].group(3))
            a2, b2 = changed.get(a, a), changed.get(b, b)
            try:
                v = apply(a2, op, b2)
            except ValueError:
                ok = False
                break
            if v < 0:
                ok = False
                break
            texts[j] = steps[j][: parsed[j].start()] + f"{a2} {op} {b2} = {v}."
            new_values[j] = v
            if v != values[j]:
                changed[values[j]] = v
        if ok and new_values[-1] != values[-1]:
            return {**row, "id": f"{row['id']}-err{k}", "steps": texts, "step_values": new_values, "label": k,
                    "solution": solution_text(texts, str(new_values[-1])), "correct": False}
    return None


def step_labelled(rows: list, seed: int, error_share: float = 0.5) -> list[dict]:
    """Each row once: as solved (label −1), or, with probability ``error_share``, corrupted at a uniformly
    drawn step (label k). A row that cannot be corrupted stays correct."""
    rng = random.Random(seed)
    out = []
    for r in rows:
        if not r.get("steps") or not r.get("step_values"):
            continue
        made = corrupt(r, rng.randrange(len(r["steps"])), rng) if rng.random() < error_share else None
        out.append(made or {**r, "label": -1, "solution": solution_text(r["steps"], r["answer"]), "correct": True})
    return out


def judgment_text(solution: str, verdicts: list, final: bool) -> str:
    """A judgment in the verifier's format: each step restated, then the given verdicts."""
    box = lambda ok: "\\boxed{CORRECT}" if ok else "\\boxed{INCORRECT}"  # noqa: E731
    steps = [solution[a:b].removeprefix("<step>").removesuffix("</step>").strip() for a, b in step_spans(solution)]
    body = "".join(f"<step>Step {i + 1} Analysis: {text} {box(ok)}</step>\n"
                   for i, (text, ok) in enumerate(zip(steps, verdicts)))
    return f"<step_verification>\n{body}</step_verification>\n<final_verification>{box(final)}</final_verification>"


def verifier_format_rows(rows: list, seed: int) -> list[dict]:
    """prompt + completion rows teaching the verifier's format only: solutions (half with a corrupted step)
    judged with coin-flip verdicts, so no row says which step is wrong or whether the answer is."""
    rng = random.Random(seed)
    out = []
    for r in step_labelled(rows, seed):
        n = len(step_spans(r["solution"]))
        verdicts = [rng.random() < 0.5 for _ in range(n)]
        out.append({"prompt": verifier_prompt(r["question"], r["solution"]),
                    "completion": judgment_text(r["solution"], verdicts, rng.random() < 0.5),
                    "label": r["label"]})  # kept for inspection; the SFT reads prompt and completion only
    return out
