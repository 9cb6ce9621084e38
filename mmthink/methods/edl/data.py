"""Offline toy data for the EDL experiments (arXiv 2402.06160 toy-scale claims).

``synthetic``: Gaussian blobs, balanced classes. ``digits_split``: sklearn ``load_digits`` (bundled,
no download), digits 0-4 in distribution, digits 5-9 out of distribution.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


def synthetic(n: int, k: int = 3, d: int = 2, seed: int = 0, radius: float = 3.0,
              std: float = 1.0) -> tuple[Tensor, Tensor]:
    """``n`` points from ``k`` isotropic Gaussian blobs in ``d`` dimensions; returns x (n, d) float32, y (n,) long.

    Class c has mean ``radius * (cos 2πc/k, sin 2πc/k, 0, ...)`` (evenly spread on a circle in the
    first two coordinates; needs d >= 2) and standard deviation ``std`` in every coordinate. Labels
    are balanced (``arange(n) % k``, shuffled). The same ``seed`` gives the same data.
    """
    if n < 1 or k < 2 or d < 2:
        raise ValueError(f"synthetic needs n >= 1, k >= 2, d >= 2; got n={n}, k={k}, d={d}")
    g = torch.Generator().manual_seed(seed)
    angles = torch.tensor([2 * math.pi * c / k for c in range(k)])
    means = torch.zeros(k, d)
    means[:, 0], means[:, 1] = radius * torch.cos(angles), radius * torch.sin(angles)
    y = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    x = means[y] + std * torch.randn(n, d, generator=g)
    return x.float(), y.long()


class DigitsSplit(NamedTuple):
    x_train: Tensor  # (N, 64) float32, standardised with the training mean / std
    y_train: Tensor  # (N,) long in [0, 5)
    x_test: Tensor
    y_test: Tensor
    x_ood: Tensor  # every image of digits 5-9, standardised the same way


def digits_split(seed: int = 0, test_frac: float = 0.3) -> DigitsSplit:
    """sklearn digits: a shuffled train/test split of digits 0-4 and the OOD set of digits 5-9.

    Features are standardised per pixel with the training set's mean and std (a pixel that is
    constant on the training set keeps std 1). Deterministic given ``seed``.
    """
    from sklearn.datasets import load_digits

    ds = load_digits()
    x = torch.tensor(ds.data, dtype=torch.float32)
    y = torch.tensor(ds.target, dtype=torch.long)
    ind, ood = y < 5, y >= 5
    x_in, y_in = x[ind], y[ind]
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y_in), generator=g)
    n_test = int(round(test_frac * len(y_in)))
    te, tr = perm[:n_test], perm[n_test:]
    mean = x_in[tr].mean(0)
    std = x_in[tr].std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))

    def norm(a: Tensor) -> Tensor:
        return (a - mean) / std

    return DigitsSplit(norm(x_in[tr]), y_in[tr], norm(x_in[te]), y_in[te], norm(x[ood]))
