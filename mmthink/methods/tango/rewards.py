"""Tango's numerics: the process rewards the verifier's step verdicts place on the generator's tokens,
the mixed advantage, the α schedule, the verifier's reward and its class-balancing weights.

Conventions as in ``mmthink.rl.advantages``: completions right-padded (N, T) with a ``mask``; groups
contiguous ([prompt 0's G samples, prompt 1's, ...]).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from mmthink.methods.tango.config import ALPHA_SCHEDULES


def alpha_at(step: int, total: int, schedule: str = "exp", start: float = 0.1, end: float = 1e-3,
             target_frac: float = 1.0) -> float:
    """The process-advantage weight at generator step ``step`` of ``total``, never below ``end``."""
    if schedule == "exp":
        # α_t = α_0 exp(−k t), k = ln(α_0 / α_min) / (f T): α_min is reached at t = f T
        value = start * math.exp(-math.log(start / end) / (target_frac * total) * step)
    elif schedule == "linear":
        # α_t = α_0 − (α_0 − α_min) t / T
        value = start - (start - end) * step / total
    elif schedule == "cosine":
        # α_t = α_min + (α_0 − α_min) (1 + cos(π t / T)) / 2
        value = end + 0.5 * (start - end) * (1 + math.cos(math.pi * step / total))
    else:
        raise ValueError(f"schedule must be one of {ALPHA_SCHEDULES}; got {schedule!r}")
    return max(end, value)


def token_char_ends(tokenizer, ids: Sequence[int]) -> list[int]:
    """For each completion token, the length of the decoded text up to and including it.

    Decoded from the rollout's own ids (not a re-tokenisation of the text, which may split differently),
    so a character offset maps to exactly the sampled token that produced it."""
    return [len(tokenizer.decode(list(ids[: i + 1]), skip_special_tokens=True)) for i in range(len(ids))]


def step_end_tokens(spans: Sequence[tuple[int, int]], char_ends: Sequence[int]) -> list[int]:
    """The token that ends each step: the first whose decoded text reaches the step's last character.

    (The official code takes the token covering the character just after ``</step>``, usually the
    newline that follows: one token later; the return-to-go then also credits that token.)"""
    out = []
    for _, end in spans:
        out.append(next((t for t, c in enumerate(char_ends) if c >= end), len(char_ends) - 1))
    return out


def process_rewards(verdicts: Sequence[bool], n_steps: int, end_tokens: Sequence[int], length: int) -> Optional[list]:
    """Per-token rewards of one (solution, judgment): ±1/S at each step's end token, or None (no reward
    at all) unless the judgment has exactly S > 0 verdicts."""
    if n_steps == 0 or len(verdicts) != n_steps:
        return None
    out = [0.0] * length
    for ok, t in zip(verdicts, end_tokens):
        # r_step = +1/S when judged CORRECT, −1/S when INCORRECT
        out[min(t, length - 1)] = (1.0 if ok else -1.0) / n_steps
    return out


def mixed_advantage(outcome, process, process_mask, mask, group_size: int, alpha: Optional[float],
                    eps: float = 1e-6):
    """A = (1 − α) A_out + α A_proc, (N, T).

    A_out: the outcome z-scored within its group (sample std), constant over the completion's tokens.
    A_proc: each step reward z-scored over all step rewards of its group (every sample, every verifier
    rollout), then summed to go (return-to-go) per rollout and averaged over the R verifier rollouts.
    ``outcome`` (N,), ``process`` and ``process_mask`` (N, R, T), ``mask`` (N, T). ``alpha`` None: the
    outcome part alone (outcome-only GRPO).
    """
    import torch

    n, t = mask.shape
    groups = outcome.float().view(-1, group_size)
    # z = (r − mean_g) / (std_g + ε)
    z = (groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + eps) if group_size > 1 \
        else torch.zeros_like(groups)
    a_out = z.reshape(n, 1) * mask
    if alpha is None or process is None or not process_mask.any():
        return a_out
    r = process.shape[1]
    pm = process_mask.bool().view(-1, group_size * r * t)
    vals = process.float().view(-1, group_size * r * t)
    normed = torch.zeros_like(vals)
    for g in range(vals.shape[0]):
        picked = vals[g][pm[g]]
        mean, std = (picked.mean(), picked.std()) if picked.numel() > 1 else (picked.new_tensor(0.0),
                                                                            picked.new_tensor(1.0))
        normed[g][pm[g]] = (picked - mean) / (std + eps)
    normed = normed.view(n, r, t)
    # return-to-go: A_t = sum_{t' >= t} r̃_t'
    a_proc = normed.flip(-1).cumsum(-1).flip(-1).mean(1) * mask
    return (1 - alpha) * a_out + alpha * a_proc


def verifier_reward(final: Optional[bool], truth: bool, format_score: float, correctness_weight: float = 1.0,
                    format_weight: float = 0.8) -> float:
    """w_c 1[final verdict == truth] + w_f format; a missing final verdict earns no correctness."""
    return correctness_weight * float(final is not None and final == truth) + format_weight * format_score


class ClassWeights:
    """Running (decay d) counts of truly correct and incorrect solutions the verifier judged; each judgment
    is weighted 1/√count of its class (or 1/count), normalised to mean 1 over the batch."""

    def __init__(self, decay: float = 0.8, method: str = "sqrt_inverse"):
        if method not in ("sqrt_inverse", "inverse"):
            raise ValueError(f"method must be sqrt_inverse or inverse; got {method!r}")
        self.decay, self.method = decay, method
        self.pos: Optional[float] = None
        self.neg: Optional[float] = None
        self.last = (1.0, 1.0)  # the weights of a correct and of an incorrect solution's judgment, last step

    def __call__(self, truths: Sequence[bool], batch: Optional[tuple[float, float]] = None) -> list[float]:
        """Weights of ``truths`` (True: a correct solution); ``batch`` = (correct, incorrect) counts of the
        whole step over every process (default: of ``truths``), which update the running counts."""
        if batch is None:
            batch = (float(sum(map(bool, truths))), float(len(truths) - sum(map(bool, truths))))
        pos, neg = batch
        if self.pos is None:
            self.pos, self.neg = pos, neg
        else:
            # c ← d c + (1 − d) c_batch
            self.pos = self.decay * self.pos + (1 - self.decay) * pos
            self.neg = self.decay * self.neg + (1 - self.decay) * neg
        f = math.sqrt if self.method == "sqrt_inverse" else (lambda x: x)
        coef_pos, coef_neg = 1.0 / (f(self.pos) + 1e-6), 1.0 / (f(self.neg) + 1e-6)
        # normalised to mean 1 over the whole step's judgments
        scale = (pos + neg) / (pos * coef_pos + neg * coef_neg)
        self.last = (coef_pos * scale, coef_neg * scale)
        return [(coef_pos if x else coef_neg) * scale for x in truths]

    def state_dict(self) -> dict:
        return {"pos": self.pos, "neg": self.neg}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.neg = state["pos"], state["neg"]
