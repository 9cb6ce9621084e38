"""Training of the evidential objectives compared in arXiv 2402.06160 and of its two proposals.

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

``mixture_distill`` (v1 of 2402.06160, "a mixture of Dirichlets learned by variational inference, then
distilled"). The paper's body was not available to us (only its abstract), so this is our design from
its stated principle (departures below and in docs/methods.md). The target is a Bayesian model with
K = ``components_per_class`` × classes components:

    π_z ~ Dir(mixture_prior · 1)  (global, z = 1..K),   y | x ~ Cat(Σ_z g_z(x) π_z),

with a gate g(x) (the same MLP, softmax over K). Variational Bayes (mean field): q(π_z) = Dir(β_z),
q(z_i | x_i, y_i) = responsibilities r_iz; the gate is a point estimate (type-II maximum likelihood).
The dataset-level ELBO Σ_i log Σ_z g_z(x_i) exp(E_q log π_{z,y_i}) − Σ_z KL(Dir(β_z) ‖ Dir(prior))
(``losses.mixture_elbo``) counts the KL once for the data set — unlike belief matching, which pays it
once per example — so the optimum β_z = prior + Σ_i r_iz onehot(y_i) grows with n and the target's
mutual information vanishes as n → ∞. Fitting alternates, for ``epochs`` epochs: the closed-form VB
update of β and the responsibilities over the whole training set (``mixture_vb_update``), then one
epoch of Adam on the gate with β fixed (maximising Σ_i l_i, ``mixture_log_lik``); a last VB update
follows. Components start assigned to classes round-robin (component z to class z mod C, the random
gate splitting each class among its components), which breaks the symmetry between components.
The target of input x is the law of π(x) = Σ_z g_z(x) π_z under q — K Dirichlets mixed by the gate
(a convex combination of independent Dirichlet vectors; with a one-hot gate it is the component's
Dirichlet). A fresh Dirichlet network (``distill_evidence``) is then trained ``epochs`` epochs on the
training inputs to maximise E_{π ~ target(x)} log Dir(π; α(x)), estimated with ``target_samples``
draws per minibatch (``sample_mixture_target``, ``dirichlet_nll``).
Where this may depart from v1: the mixture is over global components mixed by a gate, not over network
parameters; the gate's own uncertainty is left out (a point estimate), so the target's epistemic
uncertainty shrinks like 1/n with the component counts but does not grow away from the data; the
target is the law of the gate-weighted combination, not the density mixture Σ_z g_z(x) Dir(π; β_z)
(which would count the gate's mixing at class boundaries, an aleatoric effect, as epistemic for ever);
VB empties surplus components in our runs (hence one per class by default); distillation sees the
training inputs only.

``postnet`` (Charpentier et al. 2020): ``postnet.PosteriorNetwork`` (encoder to a ``latent_dim``
latent, per-class radial-flow densities, α_c = 1 + N_c p(z | c)), trained ``epochs`` epochs on
``postnet_loss`` (UCE − ``entropy_reg`` · H(Dir(α))).

Everything is deterministic given ``seed`` (CPU; the ``seed`` seeds the init, the shuffles and the
bootstrap draws through explicit generators, and the mixture's Dirichlet draws through torch's global
generator, seeded with it at the start).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmthink.errors import UserError
from mmthink.methods.edl import losses as L
from mmthink.methods.edl.config import EDLConfig
from mmthink.methods.edl.model import EvidentialMLP
from mmthink.methods.edl.postnet import PosteriorNetwork
from mmthink.runner.tracking import Progress

_KL_ANNEALED = {"edl_mse": L.edl_mse_loss, "edl_log": L.edl_log_loss, "edl_digamma": L.edl_digamma_loss}


def _check_data(x: Tensor, y: Tensor) -> int:
    if x.dim() != 2 or y.dim() != 1 or len(x) != len(y) or len(y) == 0:
        raise UserError(f"EDL training needs x (N, D) and y (N,) with N >= 1; got {tuple(x.shape)} and {tuple(y.shape)}")
    k = int(y.max()) + 1
    if int(y.min()) < 0 or k < 2:
        raise UserError(f"EDL labels must be integers in [0, K) with K >= 2; got range [{int(y.min())}, {k - 1}]")
    return k


def _fit(model, x: Tensor, n_epochs: int, cfg: EDLConfig, g: torch.Generator, loss_fn,
         progress: Progress, done: int, desc: str, before_epoch=None) -> int:
    """Adam over shuffled minibatches; ``loss_fn(model, idx, epoch)`` gives the mean loss of a batch;
    ``before_epoch(epoch)``, if given, runs at the start of every epoch (the mixture's VB step)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    for epoch in range(n_epochs):
        if before_epoch is not None:
            before_epoch(epoch)
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


def train_edl(x: Tensor, y: Tensor, cfg: EDLConfig, progress: str = "auto"):
    """Train a Dirichlet network on (x, y) with ``cfg.objective``; returns it in eval mode (its ``alpha(x)``
    gives the concentrations)."""
    cfg.check()
    k = _check_data(x, y)
    x, y = x.float(), y.long()
    torch.manual_seed(cfg.seed)  # parameter init (and the mixture's Dirichlet draws)
    g = torch.Generator().manual_seed(cfg.seed)
    networks = {"bootstrap_distill": cfg.members + 1, "mixture_distill": 2}.get(cfg.objective, 1)
    bar = Progress(cfg.epochs * networks, mode=progress, desc=f"edl {cfg.objective}")
    try:
        if cfg.objective == "bootstrap_distill":
            return _train_bootstrap_distill(x, y, k, cfg, g, bar)
        if cfg.objective == "mixture_distill":
            return _train_mixture_distill(x, y, k, cfg, g, bar)
        if cfg.objective == "postnet":
            model = PosteriorNetwork(x.shape[1], k, cfg.hidden, cfg.latent_dim, cfg.flow_layers)
            model.set_class_counts(y)

            def uce(net, idx, epoch):
                return L.postnet_loss(net.alpha(x[idx]), y[idx], cfg.entropy_reg).mean()

            _fit(model, x, cfg.epochs, cfg, g, uce, bar, 0, "")
            return model
        model = EvidentialMLP(x.shape[1], k, cfg.hidden, cfg.evidence)
        _fit(model, x, cfg.epochs, cfg, g, _classic_loss(cfg, x, y, k), bar, 0, "")
        return model
    finally:
        bar.close()


def _train_bootstrap_distill(x: Tensor, y: Tensor, k: int, cfg: EDLConfig, g: torch.Generator, bar) -> EvidentialMLP:
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


def fit_mixture_target(x: Tensor, y: Tensor, k: int, cfg: EDLConfig, g: torch.Generator,
                       bar) -> tuple[EvidentialMLP, Tensor]:
    """VB-EM fit of the mixture-of-Dirichlets target (module docstring): (gate network, β (K_comp, C))."""
    n_comp = cfg.components_per_class * k
    gate = EvidentialMLP(x.shape[1], n_comp, cfg.hidden)
    owner = torch.arange(n_comp) % k
    with torch.no_grad():
        log_g = torch.log_softmax(gate(x), -1).masked_fill(owner[None, :] != y[:, None], float("-inf"))
        state = {"beta": L.mixture_vb_update(torch.softmax(log_g, -1), y, k, cfg.mixture_prior)}

    def vb_step(epoch=None):
        with torch.no_grad():
            log_gate = torch.log_softmax(gate(x), -1)
            resp = L.mixture_responsibilities(log_gate, state["beta"], y)
            state["beta"] = L.mixture_vb_update(resp, y, k, cfg.mixture_prior)

    def gate_loss(net, idx, epoch):
        return -L.mixture_log_lik(torch.log_softmax(net(x[idx]), -1), state["beta"], y[idx]).mean()

    _fit(gate, x, cfg.epochs, cfg, g, gate_loss, bar, 0, "target", before_epoch=vb_step)
    vb_step()
    return gate, state["beta"]


def _train_mixture_distill(x: Tensor, y: Tensor, k: int, cfg: EDLConfig, g: torch.Generator, bar) -> EvidentialMLP:
    gate, beta = fit_mixture_target(x, y, k, cfg, g, bar)
    with torch.no_grad():
        gate_p = torch.softmax(gate(x), -1)
    model = EvidentialMLP(x.shape[1], k, cfg.hidden, cfg.distill_evidence)

    def nll(net, idx, epoch):
        target = L.sample_mixture_target(gate_p[idx], beta, cfg.target_samples)
        return L.dirichlet_nll(net.alpha(x[idx]), target).mean()

    _fit(model, x, cfg.epochs, cfg, g, nll, bar, cfg.epochs, "distill")
    return model


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
