"""Tango's two output formats, the prompts that ask for them, their parsers and the format scores.

Generator: ``<think><step>…</step>…</think><answer>\\boxed{…}</answer>``. Verifier, given the problem, the
solution and its step count S: ``<step_verification><step>Step i Analysis: … \\boxed{CORRECT|INCORRECT}
</step> × S</step_verification><final_verification>\\boxed{…}</final_verification>``. The parsers accept
``\\box{}`` as well as ``\\boxed{}`` and either case of the verdicts, as the official code does. The
prompts are ours, asking for the official formats with a worked example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from mmthink.tasks.grading import last_boxed

GENERATOR_PROMPT = """Solve the math problem step by step in this exact format:
<think>
<step>one step of the reasoning</step>
<step>the next step</step>
</think>
<answer>\\boxed{{final answer}}</answer>

Example. Problem: Compute (4 + 2) * 3.
<think>
<step>4 + 2 = 6.</step>
<step>6 * 3 = 18.</step>
</think>
<answer>\\boxed{{18}}</answer>

Write nothing outside the tags.

Problem: {question}"""

VERIFIER_PROMPT = """Check a solution to a math problem, step by step.

Problem: {problem}
Solution:
{solution}

The solution has {n_steps} steps in <step> tags. Judge each of them in order, then the whole solution, in
this exact format:
<step_verification>
<step>Step 1 Analysis: your check of step 1. \\boxed{{CORRECT}} or \\boxed{{INCORRECT}}</step>
... one <step> per solution step, {n_steps} in all ...
</step_verification>
<final_verification>\\boxed{{CORRECT}} or \\boxed{{INCORRECT}}</final_verification>

Example. Problem: Compute 5 * 3 + 1.
Solution:
<think>
<step>5 * 3 = 15.</step>
<step>15 + 1 = 17.</step>
</think>
<answer>\\boxed{{17}}</answer>
Your verification:
<step_verification>
<step>Step 1 Analysis: 5 * 3 is 15. \\boxed{{CORRECT}}</step>
<step>Step 2 Analysis: 15 + 1 is 16, not 17. \\boxed{{INCORRECT}}</step>
</step_verification>
<final_verification>\\boxed{{INCORRECT}}</final_verification>

Your verification:"""

STEP = re.compile(r"<step>(.*?)</step>", re.DOTALL)
_VERDICT = r"\\box(?:ed)?\{(CORRECT|INCORRECT)\}(?:\.?\s*)?"
STEP_VERDICT = re.compile(r"<step>(.*?)" + _VERDICT + r"</step>", re.DOTALL | re.IGNORECASE)
STEP_ENDS_IN_VERDICT = re.compile(_VERDICT + r"$", re.IGNORECASE)
FINAL = re.compile(r"<final_verification>\s*" + _VERDICT + r"</final_verification>", re.IGNORECASE)
STEP_BLOCK = re.compile(r"<step_verification>(.*?)</step_verification>", re.DOTALL)
FINAL_BLOCK = re.compile(r"<final_verification>(.*?)</final_verification>", re.DOTALL)
WHOLE = re.compile(r"^<step_verification>.*?</step_verification>\s*<final_verification>.*?</final_verification>$",
                   re.DOTALL)


def generator_prompt(question: str) -> str:
    return GENERATOR_PROMPT.format(question=question)


def verifier_prompt(problem: str, solution: str) -> str:
    return VERIFIER_PROMPT.format(problem=problem, solution=solution.strip(), n_steps=len(step_spans(solution)))


def solution_text(steps: list, answer: str) -> str:
    """A solution in the generator's format (the format-tuning target)."""
    body = "".join(f"<step>{s}</step>\n" for s in steps)
    return f"<think>\n{body}</think>\n<answer>\\boxed{{{answer}}}</answer>"


def step_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the generator's ``<step>…</step>`` blocks, tags included."""
    return [m.span() for m in STEP.finditer(text)]


def answer_of(text: str) -> Optional[str]:
    """The boxed answer inside ``<answer>`` (or, without the tags, the last box)."""
    m = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    return last_boxed(m.group(1) if m else text)


@dataclass
class Judgment:
    steps: list  # one bool per judged step, in order (True: CORRECT)
    final: Optional[bool]  # the final verdict; None when the final box is missing or malformed

    @property
    def first_error(self) -> Optional[int]:
        """The earliest step judged INCORRECT (0-based), −1 when every judged step is CORRECT (ProcessBench's
        convention), None when no step was judged at all (it counts as wrong on either kind of row)."""
        if not self.steps:
            return None
        return next((i for i, ok in enumerate(self.steps) if not ok), -1)


def parse_judgment(text: str) -> Judgment:
    block = STEP_BLOCK.search(text)
    steps = [v.upper() == "CORRECT" for _, v in STEP_VERDICT.findall(block.group(1) if block else "")]
    final = FINAL.search(text)
    return Judgment(steps, final.group(1).upper() == "CORRECT" if final else None)


def generator_format_score(text: str) -> float:
    """1 − 0.8 (answer not boxed) − 0.8 (no step) − 0.4 (fewer than 3 steps), in [0, 1]; 0 without <answer>."""
    m = re.search(r"<answer>(.*?)</answer>", text.rstrip(), re.DOTALL)
    if not m:
        return 0.0
    inner = m.group(1).strip()
    score = 1.0
    if not (inner.startswith("\\boxed{") and inner.endswith("}") and len(inner) > len("\\boxed{}")):
        score -= 0.8
    n = len(STEP.findall(text))
    if n == 0:
        score -= 0.8
    elif n < 3:
        score -= 0.4
    return max(0.0, min(1.0, score))


def verifier_format_score(text: str, n_steps: Optional[int] = None, generator_format: float = 1.0) -> float:
    """0 unless the whole reply is the two blocks; else 1 − 0.8 (bad final box) − 0.8 (no step tags)
    − 0.8 (verdict count != the solution's S, checked when its own format score >= 0.6) − 0.4 (text
    outside the step tags), clipped to [0, 1]."""
    text = text.strip()
    if not WHOLE.match(text):
        return 0.0
    steps_block = STEP_BLOCK.search(text).group(1).strip()
    final_block = FINAL_BLOCK.search(text).group(1).strip()
    score = 1.0
    if not STEP_ENDS_IN_VERDICT.search(final_block):
        score -= 0.8
    contents = STEP.findall(steps_block)
    if not contents:
        score -= 0.8
    elif n_steps is not None and generator_format >= 0.6:
        if sum(bool(STEP_ENDS_IN_VERDICT.search(c)) for c in contents) != n_steps:
            score -= 0.8
    if re.sub(r"\s+", "", STEP.sub("", steps_block)):
        score -= 0.4
    return max(0.0, min(1.0, score))
