"""Thermometer's training objective: cross-entropy at the task temperature plus a Gamma prior on it.

Which quantity carries the prior: the network outputs inverse temperatures 1/tau_n; a minibatch (all
from one task) gives the task's 1/tau as their mean, exactly as at test time, and the Gamma prior
(shape k = 1.25, scale theta = 4, mode (k - 1) theta = 1) is on tau = 1 / (that mean), the
temperature itself, not on 1/tau. This is what the authors' code does (``regularizer(1 /
temperature_global_inverse)``); it pulls temperatures towards 1 and keeps tau away from 0 (the
density vanishes there for k > 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmthink.methods.thermometer.config import GAMMA_SCALE, GAMMA_SHAPE


def gamma_prior_nll(tau: torch.Tensor, shape: float = GAMMA_SHAPE, scale: float = GAMMA_SCALE) -> torch.Tensor:
    """-log Gamma(tau; k, theta), the full density (normalising constant included), elementwise."""
    tau = torch.as_tensor(tau, dtype=torch.get_default_dtype()) if not torch.is_tensor(tau) else tau  # floats too
    k = torch.tensor(shape, dtype=tau.dtype, device=tau.device)
    # -log p(tau) = -(k - 1) log tau + tau / theta + log Gamma(k) + k log theta
    return -(k - 1) * tau.log() + tau / scale + torch.lgamma(k) + shape * math.log(scale)


def thermometer_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    inv_tau: torch.Tensor,
    lam: float = 1e-2,
    shape: float = GAMMA_SHAPE,
    scale: float = GAMMA_SCALE,
) -> torch.Tensor:
    """Loss of one minibatch of ONE task.

    ``inv_tau``: the network's per-prompt inverse temperatures (B,) (or already one scalar). They are
    averaged first, because a task is calibrated with one temperature (the mean over its prompts),
    and training should optimise the quantity used at test time; then the CE is averaged over the B
    examples and the prior is added once for the task's tau.
    """
    inv = inv_tau.mean()
    # L = 1/B sum_b CE(z_b / tau, y_b) + lam * [-log Gamma(tau; k, theta)],  1/tau = 1/B sum_b 1/tau_b
    return F.cross_entropy(logits * inv, labels) + lam * gamma_prior_nll(1.0 / inv, shape, scale)
