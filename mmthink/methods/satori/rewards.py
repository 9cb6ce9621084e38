"""Satori's reward on the final token: r = σ(outcome RM) + (correct − 1) + reflection bonus, clipped.

``correct`` grades the last ``\\boxed{}`` of the whole solution (a restart's prefix + its
continuation) against the answer — all of it, not the last 128 characters the official grader reads.
"""

from __future__ import annotations

import math
from typing import Optional


def reflection_bonus(reflect_status: int, correct: bool, bonus: float) -> float:
    """+bonus when a restart from a wrong prefix (−1) is solved, −bonus when one from a right prefix (+1) fails."""
    if reflect_status == -1 and correct:
        return bonus
    if reflect_status == 1 and not correct:
        return -bonus
    return 0.0


def satori_reward(correct: bool, reflect_status: int = 0, rm_score: Optional[float] = None, bonus: float = 0.5,
                  clip: float = 10.0) -> float:
    # r = sigmoid(s_RM) + (correct - 1) + bonus(reflect_status, correct), clipped to [-clip, clip]
    r = (1.0 / (1.0 + math.exp(-rm_score)) if rm_score is not None else 0.0) + (float(correct) - 1.0)
    r += reflection_bonus(reflect_status, correct, bonus)
    return max(-clip, min(clip, r))
