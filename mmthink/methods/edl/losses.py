"""Dirichlet evidential objectives side by side (arXiv 2402.06160 and the methods it compares).

Every objective takes ``alpha`` (N, K) > 0 and integer labels ``y`` (N,) and returns the
per-example loss (N,); reduce it yourself. ``dirichlet_nll`` is the distillation loss of both proposals
(Bootstrap-Distill and the mixture-of-Dirichlets target). Read top to bottom: classic direct-α
objectives, then the distillation loss, then the mixture-of-Dirichlets target (variational Bayes,
``mixture_*``), then the PostNet pieces (``postnet_*``, ``radial_flow``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mmthink.methods.edl.scores import differential_entropy


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


# --- the mixture-of-Dirichlets target (arXiv 2402.06160 v1; see train.py for the model it belongs to) ---
# K global class-probability vectors π_z ~ Dir(prior·1), a gate g(x) over the K components, and
# y | x ~ Cat(Σ_z g_z(x) π_z). Variational posterior q(π_z) = Dir(β_z). Shapes: log_gate (N, K),
# beta (K, C), y (N,).


def dirichlet_expected_log(beta: Tensor) -> Tensor:
    """E_Dir(beta)[log π_k] over the last axis."""
    # E[log π_k] = psi(beta_k) - psi(sum_j beta_j)
    return torch.digamma(beta) - torch.digamma(beta.sum(-1, keepdim=True))


def _mixture_scores(log_gate: Tensor, beta: Tensor, y: Tensor) -> Tensor:
    # (N, K): log g_z(x_i) + E_q[log π_{z, y_i}]
    return log_gate + dirichlet_expected_log(beta)[:, y].T


def mixture_log_lik(log_gate: Tensor, beta: Tensor, y: Tensor) -> Tensor:
    """Per-example likelihood term of the ELBO, the local responsibilities already maximised out (N,)."""
    # l_i = log sum_z g_z(x_i) exp(E_q[log π_{z, y_i}])  (Jensen on log sum_z g_z π_{z, y_i})
    return torch.logsumexp(_mixture_scores(log_gate, beta, y), -1)


def mixture_responsibilities(log_gate: Tensor, beta: Tensor, y: Tensor) -> Tensor:
    """q(z_i = z | x_i, y_i) (N, K): the optimal local factor of the mean-field posterior."""
    # r_iz ∝ g_z(x_i) exp(E_q[log π_{z, y_i}])
    return torch.softmax(_mixture_scores(log_gate, beta, y), -1)


def mixture_vb_update(resp: Tensor, y: Tensor, n_classes: int, prior: float = 1.0) -> Tensor:
    """Closed-form (conjugate) update of the K Dirichlet posteriors (K, C) from the responsibilities."""
    # beta_zc = prior + sum_i r_iz [y_i = c]   (the counts grow with n: the target is consistent)
    return prior + resp.T @ _one_hot(y, n_classes, resp)


def mixture_elbo(log_gate: Tensor, beta: Tensor, y: Tensor, prior: float = 1.0) -> Tensor:
    """Dataset-level ELBO (a scalar): the KL to the prior is counted once, not once per example."""
    # ELBO = sum_i l_i - sum_z KL(Dir(beta_z) || Dir(prior·1))
    return mixture_log_lik(log_gate, beta, y).sum() - dirichlet_kl(beta, torch.full_like(beta, prior)).sum()


def sample_mixture_target(gate: Tensor, beta: Tensor, n_samples: int) -> Tensor:
    """``n_samples`` draws of π(x) = Σ_z g_z(x) π_z, π_z ~ Dir(beta_z): (N, n_samples, C).

    One draw of the K global vectors is shared by every row (they are global variables); draws come
    from torch's global generator, so seed it for reproducibility.
    """
    # pi_s(x) = sum_z g_z(x) pi_{s,z},  pi_{s,z} ~ Dir(beta_z)
    pis = torch.distributions.Dirichlet(beta).sample((n_samples,))  # (S, K, C)
    return torch.einsum("nz,szc->nsc", gate.to(pis.dtype), pis)


# --- PostNet (Charpentier et al. 2020): density-based evidence and the Bayesian (UCE) loss ---


def diag_gaussian_log_prob(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(z; mean, diag exp(2 log_std)) over the last axis (broadcasting)."""
    # log p = -sum_d [ (z_d - m_d)^2 / (2 s_d^2) + log s_d + log(2π)/2 ]
    return -(((z - mean) * torch.exp(-log_std)) ** 2 / 2 + log_std + 0.5 * math.log(2 * math.pi)).sum(-1)


def radial_flow(z: Tensor, z0: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """One radial flow layer (Rezende & Mohamed 2015) and its log |det Jacobian|.

    ``z`` (..., D), ``z0`` (..., D), ``a`` > 0 and ``b`` >= -a (...,) broadcast against z's batch shape;
    b >= -a keeps the map a bijection of R^D (use ``radial_params`` to get such a, b from free ones).
    """
    # f(z) = z + b h(r)(z - z0), h = 1/(a + r), r = |z - z0|;
    # log|det| = (D - 1) log(1 + b h) + log(1 + b h + b h'(r) r),  h' = -1/(a + r)^2
    d = z.shape[-1]
    diff = z - z0
    r = diff.norm(dim=-1)
    h = 1.0 / (a + r)
    bh = b * h
    logdet = (d - 1) * torch.log1p(bh) + torch.log1p(bh - b * h * h * r)
    return z + bh.unsqueeze(-1) * diff, logdet


def radial_params(a_raw: Tensor, b_raw: Tensor) -> tuple[Tensor, Tensor]:
    """Free parameters to an invertible radial flow's (a, b)."""
    # a = softplus(a_raw) > 0,  b = -a + softplus(b_raw) >= -a
    a = F.softplus(a_raw)
    return a, -a + F.softplus(b_raw)


def postnet_alpha(log_density: Tensor, log_counts: Tensor, prior: float = 1.0, max_log: float = 30.0) -> Tensor:
    """PostNet concentrations from per-class latent log-densities (N, C) and log class counts (C,).

    The log evidence is capped at ``max_log`` (α ≤ 1e13) because exp overflows float32 past 88 and a
    few outlying latents would otherwise give inf; below the cap the map is exact.
    """
    # alpha_c = prior + N_c p(z | c)  (= prior + N p(z | c) P(c) with P(c) = N_c / N)
    return prior + torch.exp((log_counts + log_density).clamp(max=max_log))


def postnet_loss(alpha: Tensor, y: Tensor, entropy_reg: float = 1e-5) -> Tensor:
    """PostNet's Bayesian loss: the uncertainty-aware cross-entropy minus an entropy bonus."""
    # L = E_Dir(alpha)[-log p_y] - lambda H(Dir(alpha)) = psi(S) - psi(alpha_y) - lambda h(alpha)
    return edl_digamma_loss(alpha, y) - entropy_reg * differential_entropy(alpha)
