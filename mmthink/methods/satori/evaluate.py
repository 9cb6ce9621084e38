"""Satori's held-out evaluation: accuracy, reflect rate, and how often a reflection repairs a wrong prefix.

The reflection-fix rate restarts each problem from a prefix whose last step is wrong (the same slips
as the COAT demos: a swapped operation or a miscalculation), with ``<|reflect|>`` appended, and counts
the continuations that end on the right answer. Greedy decoding throughout.
"""

from __future__ import annotations

import random

from mmthink.methods.satori.coat import CONTINUE, REFLECT, hide_meta, wrong_step
from mmthink.rl.rollout import generate_rollouts
from mmthink.tasks.grading import grade
from mmthink.tasks.math import prompt


def chat_prompt(tokenizer, row: dict) -> str:
    """Satori's prompt in the chat template, continued by a restart row's prefix."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt(row["question"])}], tokenize=False,
                                         add_generation_prompt=True)
    return text + row.get("prefix", "")


def wrong_prefix_restarts(rows: list[dict], n: int, seed: int) -> list[dict]:
    """Restart rows whose prefix ends in a wrong step, then <|reflect|> (rows need steps/step_values)."""
    rng = random.Random(seed)
    usable = [r for r in rows if r.get("steps") and len(r.get("step_values") or []) == len(r["steps"])]
    out = []
    for row in usable[:n]:
        k = rng.randrange(len(row["steps"]))
        wrong, _, _ = wrong_step(row, k, rng)
        lines = row["steps"][:k] + [wrong]
        prefix = "\n".join(line if i == 0 else CONTINUE + line for i, line in enumerate(lines)) + "\n" + REFLECT
        out.append({**row, "prefix": prefix, "reflect_status": -1})
    return out


def _decode(model, tokenizer, rows, max_new_tokens: int, batch_size: int) -> list[str]:
    if not rows:
        return []
    ro = generate_rollouts(model, tokenizer, [chat_prompt(tokenizer, r) for r in rows], 1, max_new_tokens,
                           batch_size=batch_size, do_sample=False)
    return ro.texts


def evaluate_math(model, tokenizer, rows: list[dict], max_new_tokens: int, batch_size: int, restarts: int,
                  seed: int = 0, accelerator=None, samples: int = 3) -> tuple[dict, list]:
    """(metrics, a few samples): accuracy, reflect rate, reflection-fix rate.

    Each process scores its share; the sums are reduced.
    """
    import torch

    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    mine = rows[rank::world]
    texts = _decode(model, tokenizer, mine, max_new_tokens, batch_size)
    correct = [grade(t, r["answer"]) for t, r in zip(texts, mine)]
    reflected = [REFLECT in t for t in texts]
    starts = wrong_prefix_restarts(rows, restarts, seed)[rank::world]
    fixes = [grade(s["prefix"] + t, s["answer"]) for s, t in zip(starts, _decode(model, tokenizer, starts,
                                                                               max_new_tokens, batch_size))]
    sums = torch.tensor([sum(correct), len(mine), sum(reflected), sum(c for c, f in zip(correct, reflected) if f),
                         sum(fixes), len(starts)], dtype=torch.float64)
    if accelerator is not None:
        sums = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()
    hit, n, refl, refl_hit, fixed, n_starts = sums.tolist()
    metrics = {
        "accuracy": hit / max(n, 1),
        "reflect_rate": refl / max(n, 1),
        "accuracy_when_reflecting": refl_hit / refl if refl else float("nan"),
        "reflection_fix_rate": fixed / n_starts if n_starts else float("nan"),
        "n": int(n),
    }
    shown = [{"question": r["question"], "answer": r["answer"], "completion": hide_meta(t), "correct": c}
             for r, t, c in list(zip(mine, texts, correct))[:samples]]
    return metrics, shown
