"""Learning-rate schedules: a linear warmup, then constant, linear or cosine decay to zero.

Written here as pure functions (rather than taken from transformers.get_scheduler, whose import pulls
peft and bitsandbytes for seconds) and golden-tested against hand-computed values.
"""

from __future__ import annotations

import math


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """Multiplier of the base lr at ``step``: step/warmup during warmup, then 1 | 1-p | (1+cos(pi p))/2,
    with p = (step - warmup) / (total - warmup)."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}")


def make_scheduler(optimizer, kind: str, warmup: int, total: int):
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total, kind))
