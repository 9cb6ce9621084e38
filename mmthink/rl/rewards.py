"""Rewards: plain Python callables over (prompt, completion, row), registered by name.

A recipe lists ``rewards: [{name: accuracy, weight: 1.0}, {name: format, weight: 0.5}]``; the step's
reward is the weighted sum, and each function is logged on its own (mean, std, and the fraction of
GRPO groups where it does not vary — such groups carry no learning signal from it).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from mmthink.errors import UserError
from mmthink.rl.config import RewardSpec

RewardFn = Callable[[str, str, dict], float]
REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str):
    """Decorator: make ``fn(prompt, completion, row) -> float`` available to recipes as ``name``."""

    def wrap(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn

    return wrap


def check_rewards(specs: Sequence[RewardSpec], key: str = "rl.rewards") -> None:
    if not specs:
        raise UserError(f"recipe key '{key}' lists no reward")
    for s in specs:
        if s.name not in REWARDS:
            raise UserError(f"recipe key '{key}': unknown reward '{s.name}'; registered: {', '.join(sorted(REWARDS))}")


def score(specs: Sequence[RewardSpec], prompts: Sequence[str], completions: Sequence[str], rows: Sequence[dict],
          group_size: int) -> tuple[list[float], dict]:
    """Weighted total reward per completion, and per-function metrics.

    ``prompts``/``rows`` hold one entry per prompt; completions come ``group_size`` per prompt.
    """
    totals = [0.0] * len(completions)
    metrics: dict = {}
    for spec in specs:
        fn = REWARDS[spec.name]
        values = [float(fn(prompts[i // group_size], c, rows[i // group_size])) for i, c in enumerate(completions)]
        totals = [t + spec.weight * v for t, v in zip(totals, values)]
        metrics.update(reward_stats(f"reward/{spec.name}", values, group_size))
    metrics.update(reward_stats("reward/total", totals, group_size))
    return totals, metrics


def reward_stats(prefix: str, values: Sequence[float], group_size: int) -> dict:
    import torch

    from mmthink.rl.advantages import zero_std_fraction

    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    flat = zero_std_fraction(torch.tensor(values, dtype=torch.float64), group_size)
    return {f"{prefix}/mean": mean, f"{prefix}/std": std, f"{prefix}/zero_std_groups": flat}
