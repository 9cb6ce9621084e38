"""Posterior Network (Charpentier et al. 2020): density-based Dirichlet evidence over a small latent.

x -> MLP encoder -> z (``latent_dim``), batch-normalised (as in the paper: it keeps the latents where
the class densities live) -> one density p(z | c) per class -> α_c(x) = 1 + N_c · p(z | c), N_c the
number of training examples of class c (``losses.postnet_alpha``). Each class density is a diagonal
Gaussian after ``flow_layers`` radial flows (``losses.radial_flow``; 0 layers = a diagonal Gaussian per
class). Trained with ``losses.postnet_loss`` (UCE minus an entropy bonus) in ``train.py``.

Far from the training latents every p(z | c) is small, so α → 1 (the flat prior) there: the evidence,
not the network's extrapolation, carries the OOD signal.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmthink.methods.edl import losses as L


class PosteriorNetwork(nn.Module):
    """``alpha(x)`` as in the module docstring; ``class_counts`` (K,) is set from the training labels."""

    arch = "postnet"

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 64, latent_dim: int = 4, flow_layers: int = 4):
        super().__init__()
        self.in_dim, self.n_classes, self.hidden = in_dim, n_classes, hidden
        self.latent_dim, self.flow_layers = latent_dim, flow_layers
        self.encoder = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, latent_dim),
        )
        self.norm = nn.BatchNorm1d(latent_dim)
        k, d = n_classes, latent_dim
        # per class and layer: centre z0, free a, free b (see losses.radial_params); small random centres
        # so that the layers of a class do not start identical
        self.z0 = nn.Parameter(0.5 * torch.randn(flow_layers, k, d))
        self.a_raw = nn.Parameter(torch.zeros(flow_layers, k))
        self.b_raw = nn.Parameter(torch.zeros(flow_layers, k))
        self.mean = nn.Parameter(0.5 * torch.randn(k, d))
        self.log_std = nn.Parameter(torch.zeros(k, d))
        self.register_buffer("log_counts", torch.zeros(k))

    def set_class_counts(self, y: Tensor) -> None:
        counts = torch.bincount(y, minlength=self.n_classes).float()
        # a class absent from the training set gets no evidence (log 0 = -inf would give α = 1; keep it finite)
        self.log_counts.copy_(torch.log(counts.clamp_min(1e-6)))

    def latent(self, x: Tensor) -> Tensor:
        z = self.encoder(x)
        if self.training and z.shape[0] == 1:
            # batch statistics of one row are undefined; use the running ones for a lone last minibatch
            return nn.functional.batch_norm(z, self.norm.running_mean, self.norm.running_var,
                                            self.norm.weight, self.norm.bias, False, 0.0, self.norm.eps)
        return self.norm(z)

    def log_density(self, z: Tensor) -> Tensor:
        """log p(z | c) for every class: (N, K)."""
        u = z.unsqueeze(1).expand(-1, self.n_classes, -1)  # (N, K, D)
        total = torch.zeros(u.shape[:2], dtype=u.dtype, device=u.device)
        for layer in range(self.flow_layers):
            a, b = L.radial_params(self.a_raw[layer], self.b_raw[layer])
            u, logdet = L.radial_flow(u, self.z0[layer], a, b)
            total = total + logdet
        return total + L.diag_gaussian_log_prob(u, self.mean, self.log_std)

    def alpha(self, x: Tensor) -> Tensor:
        return L.postnet_alpha(self.log_density(self.latent(x)), self.log_counts)

    def arch_config(self) -> dict:
        return dict(arch=self.arch, in_dim=self.in_dim, n_classes=self.n_classes, hidden=self.hidden,
                    latent_dim=self.latent_dim, flow_layers=self.flow_layers)
