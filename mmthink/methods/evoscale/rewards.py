"""EvoScale's RL reward: the improvement over the conditioning set, with a format penalty."""

from __future__ import annotations

from typing import Sequence


def baseline_score(parent_scores: Sequence[float], kind: str) -> float:
    """R(x, y') of the conditioning set: its best (max) or its mean score."""
    return max(parent_scores) if kind == "max" else sum(parent_scores) / len(parent_scores)


def shaped_reward(score: float, parent_scores: Sequence[float], well_formed: bool, baseline: str = "max",
                  format_penalty: float = 0.5) -> float:
    # r = R(x, y) - R(x, y') - lambda * F(y)   (F = 1 when the answer is malformed)
    return score - baseline_score(parent_scores, baseline) - format_penalty * (0.0 if well_formed else 1.0)
