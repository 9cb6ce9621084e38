"""Dirichlet evidential objectives side by side (arXiv 2402.06160 and the methods it compares).

Every objective takes ``alpha`` (N, K) > 0 and integer labels ``y`` (N,) and returns the
per-example loss (N,); reduce it yourself. ``dirichlet_nll`` is the Bootstrap-Distill target.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def evidence_to_alpha(logits: Tensor, kind: str = "softplus") -> Tensor:
    """Map network outputs to Dirichlet concentrations."""
    # alpha = g(logits) + 1, g in {softplus, exp, relu} (non-negative evidence)
    if kind == "softplus":
        evidence = F.softplus(logits)
    elif kind == "exp":
        evidence = torch.exp(logits)
    elif kind == "relu":
        evidence = F.relu(logits)
    else:
        raise ValueError(f"unknown evidence kind {kind!r}; expected softplus, exp or relu")
    return evidence + 1.0


def _one_hot(y: Tensor, k: int, like: Tensor) -> Tensor:
    return F.one_hot(y, k).to(like.dtype)


def log_beta(alpha: Tensor) -> Tensor:
    """Log of the multivariate Beta function over the last axis."""
    # log B(alpha) = sum_k lgamma(alpha_k) - lgamma(sum_k alpha_k)
    return torch.lgamma(alpha).sum(-1) - torch.lgamma(alpha.sum(-1))


def dirichlet_kl(alpha: Tensor, beta: Tensor) -> Tensor:
    """Closed-form KL(Dir(alpha) || Dir(beta)) over the last axis."""
    # KL = log B(beta) - log B(alpha) + sum_k (alpha_k - beta_k)(psi(alpha_k) - psi(S_alpha))
    s = alpha.sum(-1, keepdim=True)
    return log_beta(beta) - log_beta(alpha) + ((alpha - beta) * (torch.digamma(alpha) - torch.digamma(s))).sum(-1)


def edl_mse_loss(alpha: Tensor, y: Tensor) -> Tensor:
    """Sensoy et al. 2018, Eq. 5: expected squared error under Dir(alpha)."""
    # L = sum_k (y_k - p_k)^2 + p_k (1 - p_k) / (S + 1),  p = alpha / S
    s = alpha.sum(-1, keepdim=True)
    p = alpha / s
    t = _one_hot(y, alpha.shape[-1], alpha)
    return ((t - p) ** 2 + p * (1 - p) / (s + 1)).sum(-1)


def edl_kl_regulariser(alpha: Tensor, y: Tensor) -> Tensor:
    """Sensoy et al. 2018: KL to the uniform Dirichlet after removing the true-class evidence."""
    # R = KL(Dir(alpha~) || Dir(1)),  alpha~ = y + (1 - y) * alpha
    t = _one_hot(y, alpha.shape[-1], alpha)
    alpha_tilde = t + (1 - t) * alpha
    return dirichlet_kl(alpha_tilde, torch.ones_like(alpha))


def edl_annealing(epoch: int, total: int = 10) -> float:
    """Weight of ``edl_kl_regulariser`` at ``epoch``."""
    # lambda_t = min(1, t / total)
    return min(1.0, epoch / total)


def edl_log_loss(alpha: Tensor, y: Tensor) -> Tensor:
    """Type-II maximum likelihood (Sensoy et al. 2018, Eq. 3): -log E_Dir[p_y]."""
    # L = sum_k y_k (log S - log alpha_k)
    t = _one_hot(y, alpha.shape[-1], alpha)
    return (t * (torch.log(alpha.sum(-1, keepdim=True)) - torch.log(alpha))).sum(-1)


def edl_digamma_loss(alpha: Tensor, y: Tensor) -> Tensor:
    """Expected cross-entropy (Sensoy et al. 2018, Eq. 4): -E_Dir[log p_y]."""
    # L = sum_k y_k (psi(S) - psi(alpha_k))
    t = _one_hot(y, alpha.shape[-1], alpha)
    return (t * (torch.digamma(alpha.sum(-1, keepdim=True)) - torch.digamma(alpha))).sum(-1)


def belief_matching_loss(alpha: Tensor, y: Tensor, prior: float = 1.0, coef: float = 1.0) -> Tensor:
    """Belief matching, Joo et al. 2020 (negative ELBO); ``coef=1`` is the exact ELBO.

    The unifying view of 2402.06160: this equals coef * KL(Dir(alpha) || Dir(prior + onehot(y)/coef))
    + const, a target whose total concentration does not grow with the sample size.
    """
    # L = -E_Dir(alpha)[log p_y] + coef * KL(Dir(alpha) || Dir(prior * 1))
    return edl_digamma_loss(alpha, y) + coef * dirichlet_kl(alpha, torch.full_like(alpha, prior))


def prior_network_target(y: Tensor, k: int, target_concentration: float = 100.0,
                         smoothing: float = 0.01, like: Tensor | None = None) -> Tensor:
    """Malinin & Gales 2019 in-domain target: flat Dir(1) plus smoothed one-hot concentration."""
    # alpha_target = 1 + target_concentration * ((1 - smoothing) * onehot(y) + smoothing / K)
    t = F.one_hot(y, k).to(like.dtype if like is not None else torch.get_default_dtype())
    return 1.0 + target_concentration * ((1 - smoothing) * t + smoothing / k)


def reverse_kl_prior_network_loss(alpha: Tensor, y: Tensor, target_concentration: float = 100.0,
                                  smoothing: float = 0.01) -> Tensor:
    """Reverse-KL prior network loss (Malinin & Gales 2019), target from ``prior_network_target``."""
    # L = KL(Dir(alpha) || Dir(alpha_target(y)))
    target = prior_network_target(y, alpha.shape[-1], target_concentration, smoothing, like=alpha)
    return dirichlet_kl(alpha, target)


def dirichlet_nll(alpha: Tensor, p_samples: Tensor, eps: float = 1e-8) -> Tensor:
    """Bootstrap-Distill (2402.06160, NeurIPS version): fit Dir(alpha) to M member predictions.

    ``alpha`` (N, K); ``p_samples`` (N, M, K) softmax outputs of M bootstrap classifiers.
    Maximising sum_m log Dir(p_m; alpha) is minimising this mean negative log-likelihood.
    """
    # L = -(1/M) sum_m [ -log B(alpha) + sum_k (alpha_k - 1) log p_mk ]
    a = alpha.unsqueeze(-2)
    log_p = torch.log(p_samples.clamp_min(eps))
    log_lik = -log_beta(alpha).unsqueeze(-1) + ((a - 1) * log_p).sum(-1)
    return -log_lik.mean(-1)
