"""Per-token policy-gradient losses and their reduction; tensors are (B, T), right-padded, with a `mask`.

Every loss here is per token; `aggregate` turns it into a (total, count) pair so that the step loss is
sum(total) / sum(count) over all micro-batches and processes, making gradient accumulation exact:
all-reduce the counts first, then backpropagate total / global_count for each micro-batch.

Why the GRPO/PPO clipped loss reads ~0 on the first inner step: the rollout's log-probabilities are the
ones being trained, so logp == old_logp, ratio = 1 and nothing is clipped; the loss is then -mean(A), and
group-normalised advantages have zero mean in each group. Its token-mean is ~0, not exactly 0, only
because longer completions contribute more tokens. The gradient, -mean(A * grad logp), is not zero: a
flat loss curve near 0 is expected and says nothing about learning; watch rewards and the KL instead.
"""

from __future__ import annotations

import torch

KL_KINDS = ("k1", "k2", "k3")
AGGREGATE_MODES = ("token-mean", "seq-mean-token-mean", "token-sum-norm")
LOG_RATIO_LIMIT = 20.0  # exp(20) ~ 5e8 is already far outside any clip range; exp(89) overflows float32


def clipped_surrogate(logp, old_logp, advantages, eps_low=0.2, eps_high=0.2, dual_clip=None):
    """PPO clipped surrogate per token; returns (loss, clipped), both (B, T).

    `advantages` may be (B, T) or per sequence (B,). eps_low != eps_high is DAPO's clip-higher. `clipped`
    is True where a clipped branch sets the value (clip range or dual clip), for the clip-fraction metric.
    The log-ratio is clamped to +-20 as in verl, so a stale token cannot overflow exp into inf * 0 = NaN.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    ratio = torch.exp((logp - old_logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT))
    unclipped = -advantages * ratio
    clipped_loss = -advantages * ratio.clamp(1 - eps_low, 1 + eps_high)
    # L = -min(ratio A, clip(ratio, 1 - eps_low, 1 + eps_high) A)   (Schulman et al. 2017, eq. 7)
    clipped = clipped_loss > unclipped
    loss = torch.where(clipped, clipped_loss, unclipped)
    if dual_clip is not None:
        if dual_clip <= 1:
            raise ValueError(f"dual_clip must be > 1; got {dual_clip}")
        bound = -advantages * dual_clip
        # A < 0: L = min(L, -c A)   (Ye et al. 2020; verl core_algos: where(A < 0, min(-A c, L), L))
        dual = (advantages < 0) & (loss > bound)
        loss = torch.where(dual, bound.expand_as(loss), loss)
        clipped = clipped | dual
    return loss, clipped


def kl_penalty(logp, ref_logp, kind="k3"):
    """Per-token estimate of KL(pi || pi_ref) from samples of pi (Schulman, "Approximating KL divergence").

    k1 is unbiased but noisy (and can be negative), k2 is biased but low-variance, k3 ("low_var_kl") is
    unbiased, non-negative and low-variance. k3's log-ratio is clamped to +-20 like verl's low_var_kl.
    """
    if kind not in KL_KINDS:
        raise ValueError(f"kind must be one of {KL_KINDS}; got {kind!r}")
    if kind == "k1":
        # k1 = log pi - log pi_ref
        return logp - ref_logp
    if kind == "k2":
        # k2 = 1/2 (log pi - log pi_ref)^2
        return 0.5 * (logp - ref_logp).pow(2)
    log_ratio = (ref_logp - logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    # k3 = exp(log pi_ref - log pi) - (log pi_ref - log pi) - 1
    return torch.exp(log_ratio) - log_ratio - 1


def entropy_from_logits(logits):
    """Entropy of softmax(logits) per position (B, T), in float32; logits must be finite."""
    # log p = z - logsumexp(z), shifted by max(z) inside log_softmax; the textbook logsumexp(z) - sum p z
    # cancels two large numbers and loses float32 digits once logits reach the hundreds
    logp = torch.log_softmax(logits.float(), dim=-1)
    # H = -sum_v p_v log p_v
    return -(logp.exp() * logp).sum(dim=-1)


def token_logprobs(logits, tokens):
    """log softmax(logits)[token] per position (B, T), at least float32; logits[:, t] must score tokens[:, t].

    Gathering then subtracting logsumexp avoids a (B, T, V) log_softmax. Half-precision logits are upcast
    one row at a time (as TRL's selective_log_softmax and verl's logprobs_from_logits_v2 do), so the
    float32 copy is (T, V), not (B, T, V).
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).to(dtype)
    if logits.dtype == dtype:
        lse = torch.logsumexp(logits, dim=-1)
    else:
        lse = torch.stack([torch.logsumexp(row.to(dtype), dim=-1) for row in logits])
    # log p(y) = z_y - logsumexp(z)
    return picked - lse


def value_loss(values, old_values, returns, clip=None):
    """Critic loss per token (B, T); `clip` turns on PPO's pessimistic value clipping (needs old_values)."""
    loss = (values - returns).pow(2)
    if clip is not None:
        clipped_values = old_values + (values - old_values).clamp(-clip, clip)
        # L = 1/2 max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)
        loss = torch.maximum(loss, (clipped_values - returns).pow(2))
    return 0.5 * loss


def aggregate(loss, mask, mode="token-mean", norm_length=None):
    """Reduce a per-token loss to 0-d (total, count), float32 or wider; loss = sum total / sum count.

    "token-mean": every real token weighs the same (DAPO). "seq-mean-token-mean": each completion's mean,
    averaged over completions with at least one token (original GRPO). "token-sum-norm": Dr.GRPO's constant
    normaliser, rows x norm_length (e.g. the generation budget), which no length can bias.
    `norm_length` is only read by "token-sum-norm".
    """
    if mode not in AGGREGATE_MODES:
        raise ValueError(f"mode must be one of {AGGREGATE_MODES}; got {mode!r}")
    if mode == "token-sum-norm" and norm_length is None:
        raise ValueError("mode='token-sum-norm' needs norm_length (e.g. the maximum completion length)")
    dtype = torch.promote_types(loss.dtype, torch.float32)
    mask = mask.bool()
    masked = torch.where(mask, loss.to(dtype), torch.zeros((), dtype=dtype, device=loss.device))
    if mode == "token-mean":
        # sum_{i,t} m_it l_it / sum_{i,t} m_it
        return masked.sum(), mask.sum().to(dtype)
    if mode == "seq-mean-token-mean":
        per_row = mask.sum(dim=1)
        # sum_i (sum_t m_it l_it / sum_t m_it) / #{i : sum_t m_it > 0}
        total = (masked.sum(dim=1) / per_row.clamp(min=1).to(dtype)).sum()
        return total, (per_row > 0).sum().to(dtype)
    # sum_{i,t} m_it l_it / (B * norm_length)
    return masked.sum(), torch.tensor(float(loss.shape[0] * norm_length), dtype=dtype, device=loss.device)
