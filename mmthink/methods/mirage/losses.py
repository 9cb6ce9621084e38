"""Mirage's losses and latent targets as small pure functions."""

from __future__ import annotations


def pooled_latent_targets(image_tokens, k: int):
    """K latent targets from a helper image's merged vision tokens (raster order): trim to a multiple
    of K, cut into K contiguous chunks, mean-pool each chunk. (n, H) -> (K, H)."""
    n = image_tokens.shape[0] // k * k
    if n == 0:
        raise ValueError(f"a helper image with {image_tokens.shape[0]} vision tokens cannot give {k} latent targets")
    return image_tokens[:n].reshape(k, n // k, -1).mean(dim=1)


def latent_cosine_per_example(hidden_before, targets):
    """1 - mean_p cos(h_{p-1}, e_p) for each example; hidden_before, targets: (B, K, H) -> (B,)."""
    import torch.nn.functional as F

    return 1.0 - F.cosine_similarity(hidden_before.float(), targets.float(), dim=-1).mean(dim=-1)


def stage1_loss(ce, cos_loss, gamma: float):
    """L = gamma * CE(text) + (1 - mean cos)."""
    return gamma * ce + cos_loss
