"""Learning-rate schedules: a linear warmup, then constant, linear or cosine decay (to zero, or to a floor).

Written here as pure functions (rather than taken from transformers.get_scheduler, whose import pulls
peft and bitsandbytes for seconds) and golden-tested against hand-computed values.
"""

from __future__ import annotations

import math


def lr_factor(step: int, warmup: int, total: int, kind: str, floor: float = 0.0) -> float:
    """Multiplier of the base lr at ``step``: step/warmup during warmup, then 1 | 1-p | (1+cos(pi p))/2,
    with p = (step - warmup) / (total - warmup); a decay ends at ``floor`` instead of 0:
    floor + (1 - floor) * decay (transformers' cosine_with_min_lr, min_lr = floor * lr)."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        decay = 1.0 - progress
    elif kind == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    return floor + (1.0 - floor) * decay


def make_scheduler(optimizer, kind: str, warmup: int, total: int, floor: float = 0.0):
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total, kind, floor))
