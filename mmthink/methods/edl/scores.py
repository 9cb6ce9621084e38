"""Uncertainty scores of a Dirichlet meta-distribution Dir(alpha), alpha (N, K) -> (N,)."""
from __future__ import annotations

import torch
from torch import Tensor


def total_concentration(alpha: Tensor) -> Tensor:
    """Total evidence alpha_0, read as an (inverse) energy score."""
    # S = sum_k alpha_k
    return alpha.sum(-1)


def expected_entropy(alpha: Tensor) -> Tensor:
    """Aleatoric uncertainty E_Dir[H(p)]."""
    # E[H(p)] = -sum_k (alpha_k / S)(psi(alpha_k + 1) - psi(S + 1))
    s = alpha.sum(-1, keepdim=True)
    return -((alpha / s) * (torch.digamma(alpha + 1) - torch.digamma(s + 1))).sum(-1)


def entropy_of_mean(alpha: Tensor) -> Tensor:
    """Total uncertainty H(E_Dir[p])."""
    # H(alpha / S) = -sum_k p_k log p_k
    p = alpha / alpha.sum(-1, keepdim=True)
    return -(p * torch.log(p)).sum(-1)


def mutual_information(alpha: Tensor) -> Tensor:
    """Epistemic uncertainty I(y; p), >= 0."""
    # MI = H(alpha / S) - E_Dir[H(p)]
    return entropy_of_mean(alpha) - expected_entropy(alpha)


def differential_entropy(alpha: Tensor) -> Tensor:
    """Differential entropy of Dir(alpha) (equals torch Dirichlet(alpha).entropy())."""
    # h = log B(alpha) + (S - K) psi(S) - sum_k (alpha_k - 1) psi(alpha_k)
    s = alpha.sum(-1)
    k = alpha.shape[-1]
    log_b = torch.lgamma(alpha).sum(-1) - torch.lgamma(s)
    return log_b + (s - k) * torch.digamma(s) - ((alpha - 1) * torch.digamma(alpha)).sum(-1)
