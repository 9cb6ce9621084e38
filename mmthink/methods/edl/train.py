"""Training of the evidential objectives compared in arXiv 2402.06160, and Bootstrap-Distill.

Classic objectives (one network α(x) = evidence(f(x)) + 1, loss from ``losses.py``):

- ``edl_mse`` / ``edl_log`` / ``edl_digamma``: Sensoy et al. 2018, Eq. 5 / 3 / 4, plus the KL
  regulariser ``edl_kl_regulariser`` weighted by ``edl_annealing(epoch, kl_anneal_epochs)``
  (epochs counted from 0, so the first epoch has no KL term).
- ``belief_matching``: Joo et al. 2020, ``belief_matching_loss(prior=1, coef=bm_coef)``.
- ``reverse_kl``: reverse-KL prior network, target concentration ``target_concentration``.

``bootstrap_distill`` (NeurIPS version of 2402.06160): ``members`` softmax classifiers (the same MLP,
cross-entropy) each trained ``epochs`` epochs on its own bootstrap resample of the training set (n
draws with replacement); then one Dirichlet network is trained ``epochs`` epochs on the full training
inputs to minimise ``dirichlet_nll(α(x), [p_1(x), ..., p_M(x)])``, i.e. to maximise
Σ_m log Dir(p_m(x); α(x)). The members' probabilities are used as they are (no smoothing; the loss
floors them at 1e-8). The distilled net uses ``distill_evidence`` (default ``exp_raw``: α = exp(logits),
so α_k may drop below 1 as near one-hot targets need; with α >= 1 the fit collapses on digits).
The members themselves are plain MLPs whose logits are read through a softmax. Its α(x) concentrates as the members agree, so the epistemic uncertainty
can vanish with more data (the consistency the paper argues for).

Everything is deterministic given ``seed`` (CPU; the ``seed`` seeds the init, the shuffles and the
bootstrap draws through explicit generators).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.methods.edl import losses as L
from mmthink.methods.edl.model import EVIDENCE_KINDS, EvidentialMLP
from mmthink.runner.tracking import Progress

OBJECTIVES = ["edl_mse", "edl_log", "edl_digamma", "belief_matching", "reverse_kl", "bootstrap_distill"]
_KL_ANNEALED = {"edl_mse": L.edl_mse_loss, "edl_log": L.edl_log_loss, "edl_digamma": L.edl_digamma_loss}


@dataclass
class EDLConfig:
    objective: str = "edl_digamma"  # one of OBJECTIVES
    hidden: int = 64  # MLP width (two hidden layers)
    epochs: int = 50  # per network (each member and the distilled net for bootstrap_distill)
    lr: float = 1e-3  # Adam
    batch_size: int = 64
    kl_anneal_epochs: int = 10  # edl_*: KL weight min(1, epoch / kl_anneal_epochs)
    members: int = 5  # bootstrap_distill: M bootstrap softmax classifiers
    evidence: str = "softplus"  # classic objectives: softplus | exp | relu (α = evidence + 1) | exp_raw
    distill_evidence: str = "exp_raw"  # bootstrap_distill's Dirichlet net: α = exp(logits), may be < 1
    bm_coef: float = 1.0  # belief_matching: KL weight (1 = exact ELBO)
    target_concentration: float = 100.0  # reverse_kl
    seed: int = 0

    def check(self) -> None:
        choice("edl.objective", self.objective, OBJECTIVES)
        choice("edl.evidence", self.evidence, EVIDENCE_KINDS)
        choice("edl.distill_evidence", self.distill_evidence, EVIDENCE_KINDS)
        for key in ("hidden", "epochs", "batch_size", "members"):
            if int(getattr(self, key)) < 1:
                raise UserError(f"recipe key 'edl.{key}' must be >= 1; got {getattr(self, key)}")
        if self.kl_anneal_epochs < 0:
            raise UserError(f"recipe key 'edl.kl_anneal_epochs' must be >= 0; got {self.kl_anneal_epochs}")
        for key in ("lr", "bm_coef", "target_concentration"):
            if not float(getattr(self, key)) > 0:
                raise UserError(f"recipe key 'edl.{key}' must be > 0; got {getattr(self, key)}")


def _check_data(x: Tensor, y: Tensor) -> int:
    if x.dim() != 2 or y.dim() != 1 or len(x) != len(y) or len(y) == 0:
        raise UserError(f"EDL training needs x (N, D) and y (N,) with N >= 1; got {tuple(x.shape)} and {tuple(y.shape)}")
    k = int(y.max()) + 1
    if int(y.min()) < 0 or k < 2:
        raise UserError(f"EDL labels must be integers in [0, K) with K >= 2; got range [{int(y.min())}, {k - 1}]")
    return k


def _fit(model: EvidentialMLP, x: Tensor, n_epochs: int, cfg: EDLConfig, g: torch.Generator, loss_fn,
         progress: Progress, done: int, desc: str) -> int:
    """Adam over shuffled minibatches; ``loss_fn(model, idx, epoch)`` gives the mean loss of a batch."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    for epoch in range(n_epochs):
        perm = torch.randperm(len(x), generator=g)
        total = 0.0
        for start in range(0, len(x), cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            loss = loss_fn(model, idx, epoch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        done += 1
        progress.update(done, f"{desc} loss {total / len(x):.4f}")
    model.eval()
    return done


def train_edl(x: Tensor, y: Tensor, cfg: EDLConfig, progress: str = "auto") -> EvidentialMLP:
    """Train a Dirichlet network on (x, y) with ``cfg.objective``; returns it in eval mode."""
    cfg.check()
    k = _check_data(x, y)
    x, y = x.float(), y.long()
    torch.manual_seed(cfg.seed)  # parameter init
    g = torch.Generator().manual_seed(cfg.seed)
    distill = cfg.objective == "bootstrap_distill"
    total = cfg.epochs * (cfg.members + 1 if distill else 1)
    bar = Progress(total, mode=progress, desc=f"edl {cfg.objective}")
    try:
        if not distill:
            model = EvidentialMLP(x.shape[1], k, cfg.hidden, cfg.evidence)
            _fit(model, x, cfg.epochs, cfg, g, _classic_loss(cfg, x, y, k), bar, 0, "")
            return model
        # 1) M softmax classifiers on bootstrap resamples
        done, probs = 0, []
        for m in range(cfg.members):
            boot = torch.randint(0, len(x), (len(x),), generator=g)
            xb, yb = x[boot], y[boot]
            member = EvidentialMLP(x.shape[1], k, cfg.hidden, cfg.evidence)

            def ce(net, idx, epoch, xb=xb, yb=yb):
                return F.cross_entropy(net(xb[idx]), yb[idx])

            done = _fit(member, xb, cfg.epochs, cfg, g, ce, bar, done, f"member {m + 1}/{cfg.members}")
            with torch.no_grad():
                probs.append(torch.softmax(member(x), -1))
        p = torch.stack(probs, 1)  # (N, M, K)
        # 2) distil the members into one Dirichlet network
        model = EvidentialMLP(x.shape[1], k, cfg.hidden, cfg.distill_evidence)

        def nll(net, idx, epoch):
            return L.dirichlet_nll(net.alpha(x[idx]), p[idx]).mean()

        _fit(model, x, cfg.epochs, cfg, g, nll, bar, done, "distill")
        return model
    finally:
        bar.close()


def _classic_loss(cfg: EDLConfig, x: Tensor, y: Tensor, k: int):
    if cfg.objective in _KL_ANNEALED:
        base = _KL_ANNEALED[cfg.objective]

        def fn(net, idx, epoch):
            a = net.alpha(x[idx])
            lam = L.edl_annealing(epoch, cfg.kl_anneal_epochs) if cfg.kl_anneal_epochs > 0 else 1.0
            return (base(a, y[idx]) + lam * L.edl_kl_regulariser(a, y[idx])).mean()
    elif cfg.objective == "belief_matching":
        def fn(net, idx, epoch):
            return L.belief_matching_loss(net.alpha(x[idx]), y[idx], prior=1.0, coef=cfg.bm_coef).mean()
    else:  # reverse_kl
        def fn(net, idx, epoch):
            return L.reverse_kl_prior_network_loss(net.alpha(x[idx]), y[idx], cfg.target_concentration).mean()
    return fn
