"""Advantage estimators for policy-gradient training of language models.

Conventions: completions are right-padded (B, T) tensors with a `mask` (1 on real completion tokens).
Sequence rewards for group methods are a flat (N,) tensor whose groups are contiguous:
[prompt0 sample0..G-1, prompt1 sample0..G-1, ...].
"""

from __future__ import annotations

import torch

GROUP_STDS = ("group", "batch", "none")
BASELINES = ("none", "mean", "rloo", "batch")


def _groups(rewards, group_size):
    """(N,) -> (N / G, G) float view; the layout contract is checked here once for every estimator."""
    if group_size < 1 or rewards.dim() != 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards must be a flat (N,) tensor with N divisible by group_size; got shape "
            f"{tuple(rewards.shape)} and group_size={group_size}"
        )
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    return rewards.view(-1, group_size)


def _std(x, dim, unbiased):
    """Standard deviation that is 0 rather than NaN when fewer than two values remain after Bessel."""
    n = x.shape[dim] if dim is not None else x.numel()
    centered = x - x.mean(dim=dim, keepdim=dim is not None)
    # sum (x - mean)^2 / max(n - ddof, 1): a lone value has no spread, and its centred value is 0 anyway
    return (centered.pow(2).sum(dim=dim, keepdim=dim is not None) / max(n - int(unbiased), 1)).sqrt()


def group_normalized(rewards, group_size, std="group", eps=1e-6, unbiased=False):
    """GRPO advantages, one per completion (N,).

    std="group": DeepSeekMath GRPO; "batch": one std over all N rewards (TRL scale_rewards="batch");
    "none": Dr.GRPO (mean subtraction only). A group of size 1 has r - mean = 0, so its advantage is 0.
    """
    if std not in GROUP_STDS:
        raise ValueError(f"std must be one of {GROUP_STDS}; got {std!r}")
    g = _groups(rewards, group_size)
    centered = g - g.mean(dim=1, keepdim=True)
    if std == "none":
        return centered.reshape(-1)
    scale = _std(g, dim=1, unbiased=unbiased) if std == "group" else _std(g.reshape(-1), None, unbiased)
    # A_i = (r_i - mean(r_group)) / (std + eps)   (Shao et al. 2024, outcome supervision)
    return (centered / (scale + eps)).reshape(-1)


def zero_std_fraction(rewards, group_size) -> float:
    """Fraction of groups whose rewards are all equal: they get zero advantage and give no gradient."""
    g = _groups(rewards, group_size)
    return (g.amax(dim=1) == g.amin(dim=1)).float().mean().item()


def reinforce_baseline(rewards, group_size, baseline="rloo"):
    """REINFORCE advantages r - b per completion (N,).

    "none": b = 0; "mean": group mean; "batch": mean of all N rewards; "rloo": mean of the other G - 1
    completions of the group (Ahmadian et al. 2024). RLOO is undefined for G = 1 (no other sample), so it
    raises ValueError there instead of silently falling back: ask for baseline="none" to get A = r.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}; got {baseline!r}")
    g = _groups(rewards, group_size)
    if baseline == "none":
        return g.reshape(-1).clone()
    if baseline == "batch":
        return (g - g.mean()).reshape(-1)
    if baseline == "mean":
        return (g - g.mean(dim=1, keepdim=True)).reshape(-1)
    if group_size < 2:
        raise ValueError("baseline='rloo' needs group_size >= 2 (leave-one-out of a single sample is empty)")
    # A_i = r_i - (sum_j r_j - r_i) / (G - 1)
    return (g - (g.sum(dim=1, keepdim=True) - g) / (group_size - 1)).reshape(-1)


def last_token_rewards(scores, mask):
    """Put each row's score (B,) at its last real token of a (B, T) grid; rows without tokens stay 0."""
    mask = mask.bool()
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, -1).amax(dim=1)  # -1 for an empty row
    dtype = scores.dtype if scores.is_floating_point() else torch.get_default_dtype()
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    rows = (last >= 0).nonzero(as_tuple=True)[0]
    out[rows, last[rows]] = scores[rows].to(out.dtype)
    return out


@torch.no_grad()
def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    """Generalised advantage estimation (Schulman et al. 2016) on (B, T); returns (advantages, returns).

    The bootstrap value after the last real token is 0 (the completion ended). A masked position inside a
    row (e.g. tool output in a multi-turn rollout) is skipped, carrying V and A across it as verl does;
    for right padding this simply starts every row from its last real token. Masked positions are 0.
    Targets carry no gradient.
    """
    mask = mask.bool()
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    advantages = torch.zeros_like(values)
    for t in reversed(range(values.shape[1])):
        real = mask[:, t]
        # delta_t = r_t + gamma V_{t+1} - V_t;  A_t = delta_t + gamma lam A_{t+1}
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        # where(), not a product with the mask: padding may hold NaN and NaN * 0 is NaN
        advantages[:, t] = torch.where(real, adv, 0.0)
        next_value = torch.where(real, values[:, t], next_value)
        next_adv = torch.where(real, adv, next_adv)
    returns = torch.where(mask, advantages + values, 0.0)
    return advantages, returns


def whiten(x, mask, shift_mean=True, eps=1e-8):
    """Normalise x over all real tokens of the batch; masked positions -> 0.

    Variance is unbiased (Bessel, n / (n - 1)) like TRL's and verl's masked_whiten, which also refuse
    fewer than two tokens, as this does (ValueError).
    """
    mask = mask.bool()
    n = mask.sum()
    if n < 2:
        raise ValueError(f"whiten needs at least 2 real tokens; got {int(n.item())}")
    real = x[mask]  # padding may hold anything, even NaN; keep it out of the statistics
    mean = real.mean()
    var = (real - mean).pow(2).sum() / (n - 1)
    # (x - mu) / sqrt(var + eps), + mu when the mean is kept
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask, out, torch.zeros_like(out))
