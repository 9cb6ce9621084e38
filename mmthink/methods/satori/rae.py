"""Restart and Explore (RAE): restart states built from the policy's own trajectories during training.

Every scored rollout goes into a positive (correct) or a negative (wrong) buffer. A restart state is
a trajectory prefix cut at a step boundary T ∈ [0, max_back] steps before its last reasoning step
(the answer line is never kept), with ``<|reflect|>`` appended. The restarted row keeps its parent's
problem and answer and gets ``reflect_status`` −1 (cut from a wrong trajectory: reflecting should
repair it) or +1 (cut from a right one: reflecting must not break it); fresh rows have 0. The
official code ships only pre-built restart data; here the buffers fill and refresh as the policy
learns, and each step mixes ``rae.ratio`` restart states into its prompts.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Optional

from mmthink.methods.satori.coat import REFLECT, split_steps
from mmthink.tasks.grading import last_boxed


def restart_prefix(completion: str, back: int) -> Optional[str]:
    """The completion cut ``back`` steps before its last reasoning step, then ``<|reflect|>``; None if too short.

    The last step is dropped when it holds the boxed answer: a restart re-opens the reasoning.
    """
    steps = split_steps(completion)
    if steps and last_boxed(steps[-1]) is not None:
        steps = steps[:-1]
    if not steps:
        return None
    keep = len(steps) - min(back, len(steps) - 1)
    prefix = "".join(steps[:keep])
    if not prefix.endswith("\n") and not prefix.endswith(REFLECT):
        prefix += "\n"
    return prefix + REFLECT


class RestartBuffers:
    def __init__(self, size: int, max_back: int):
        self.max_back = max_back
        self.positive: deque = deque(maxlen=size)
        self.negative: deque = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self.positive) + len(self.negative)

    def add(self, row: dict, completion: str, correct: bool) -> None:
        """Keep a fresh row's trajectory (restarted rows are not re-cut: their prefix is not the policy's)."""
        if row.get("reflect_status", 0) != 0 or not completion.strip():
            return
        entry = {k: row[k] for k in ("question", "answer", "id") if k in row}
        entry["completion"] = completion
        (self.positive if correct else self.negative).append(entry)

    def sample(self, n: int, rng: random.Random) -> list[dict]:
        """``n`` restart rows, alternating between the buffers while both hold trajectories."""
        pools = [p for p in (self.negative, self.positive) if p]
        out: list[dict] = []
        tries = 0
        while pools and len(out) < n and tries < 10 * n:
            pool = pools[tries % len(pools)]
            tries += 1
            parent = pool[rng.randrange(len(pool))]
            prefix = restart_prefix(parent["completion"], rng.randint(0, self.max_back))
            if prefix is None:
                continue
            status = 1 if pool is self.positive else -1
            out.append({k: v for k, v in parent.items() if k != "completion"} | {"prefix": prefix, "reflect_status": status})
        return out

    def state_dict(self) -> dict:
        return {"positive": list(self.positive), "negative": list(self.negative)}

    def load_state_dict(self, state: dict) -> None:
        self.positive.clear()
        self.negative.clear()
        self.positive.extend(state["positive"])
        self.negative.extend(state["negative"])


def mix_restarts(rows: list[dict], buffers: RestartBuffers, ratio: float, rng: random.Random) -> list[dict]:
    """Replace the last ``round(ratio * len(rows))`` fresh rows by restart states, when there are any."""
    n = int(round(ratio * len(rows)))
    restarts = buffers.sample(n, rng) if n else []
    return rows[: len(rows) - len(restarts)] + restarts
