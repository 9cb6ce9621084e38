"""Soft prompts from a low-dimensional z (arXiv 2305.00593, after Black-Box Tuning).

p = A·z, A ∈ R^{(L·D)×d} fixed and random, reshaped to L prompt tokens of width D. The entries of A are
drawn from N(μ, σ) scaled from the vocabulary embeddings, so that for z ~ N(0, I) the prompt has
about the spread of a real embedding.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def projection_stats(emb_mean: float, emb_std: float, d: int) -> tuple[float, float]:
    """(μ, σ) of A's entries: μ = μ̂ / (d − σ̂²), σ = σ̂ / √(d − σ̂²) (the official code's scaling)."""
    t = d - emb_std**2
    if t <= 0:
        raise ValueError(f"intrinsic dimension d={d} must exceed the embedding variance {emb_std ** 2:.3g}")
    return emb_mean / t, emb_std / math.sqrt(t)


def random_projection(d: int, n_tokens: int, dim: int, emb_mean: float, emb_std: float, seed: int) -> Tensor:
    """A as a (d, L·D) float32 matrix (so that prompts = z @ A), the same for the same seed."""
    mu, sigma = projection_stats(emb_mean, emb_std, d)
    g = torch.Generator().manual_seed(seed)
    return mu + sigma * torch.randn(d, n_tokens * dim, generator=g)


def to_prompts(z: Tensor, A: Tensor, n_tokens: int) -> Tensor:
    """(P, d) latent points → (P, L, D) prompt embeddings."""
    return (z.float() @ A).reshape(len(z), n_tokens, -1)


def kl_diag_gaussian(mean: Tensor, var: Tensor, prior_var: float) -> Tensor:
    """KL(N(m, diag v) ‖ N(0, s I)) = ½ Σ (v/s + m²/s − 1 − log(v/s))."""
    r = var / prior_var
    return 0.5 * (r + mean.pow(2) / prior_var - 1.0 - torch.log(r)).sum(-1)


def negative_elbo(ce_per_sample: Tensor, n_train: int, kl: Tensor, kl_weight: float) -> Tensor:
    """N · mean_s CE(z_s) + λ·KL(q‖prior), z_s ~ q (the official fitness, λ = 1e-3)."""
    return n_train * ce_per_sample.mean(-1) + kl_weight * kl
