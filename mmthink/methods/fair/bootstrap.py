"""Generic fair training with uncertain S: constrain an upper quantile of the violation over bootstrap replicates.

Reconstruction of the paper's generic (non-Gaussian) algorithm (arXiv 2302.08077):
1. Draw B bootstrap replicates of the n S-labelled rows: multinomial weights W (B × n, rows sum to 1).
2. V_k(θ): the fairness violation of the predictor on replicate k (weighted moments, differentiable).
3. Minimise loss(θ) on every row (S known or not) + λ·max(0, Q_q(V_1..V_B) − m·budget), full-batch Adam.
   Round 0 has λ = 0: if the unconstrained predictor already has Q_q ≤ budget the regime is "no loss".
   Then λ = λ0, λ0·g, λ0·g², … (warm starts) until an iterate meets Q_q ≤ budget; the feasible iterate
   with the lowest loss is kept. The linear hinge is an exact penalty (for λ above the multiplier its
   minimiser is feasible); the margin m < 1 absorbs the oscillation of Adam on the kink.
Guarantee: the kept predictor meets the budget on ≥ a fraction q of the replicates — the bootstrap
q-upper confidence bound of its violation is within the budget (q = 1: the worst replicate).

Measures (ŷ: probability for classification, standardised prediction — target sd units — for regression):
  corr  |ρ(ŷ, S)| ≤ √(1 − e^{−2ε})     (Gaussian MI ε: the same ε as the closed form; continuous or binary S)
  dp    max_g E[ŷ|S=g] − min_g E[ŷ|S=g] ≤ ε   (demographic parity gap; discrete S, the default with > 2 groups)
For a binary S both measure parity: ρ(ŷ, S) = (E[ŷ|S=1] − E[ŷ|S=0])·√(p(1 − p))/σ_ŷ (point-biserial).
Notions: independence (Ŷ ⊥ S) or separation (Ŷ ⊥ S | Y): for classification the worst class
y ∈ {0, 1} of the measure within {Y = y} (equalised odds); for regression the partial correlation
ρ(ŷ, S | Y) (corr) or the gap of ŷ − β_k·Y, ŷ residualised on Y per replicate (dp).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from mmthink.errors import UserError
from mmthink.methods.fair.config import BootstrapConfig
from mmthink.methods.fair.data import is_discrete
from mmthink.methods.fair.gaussian import CONSTRAINED, NO_LOSS, rho_from_mutual_information
from mmthink.runner.tracking import Progress

@dataclass
class BootstrapFit:
    params: dict  # numpy arrays: w0, b0[, w1, b1], x_mean, x_scale, y_mean, y_scale
    regime: str  # "no loss" | "constrained"
    measure: str
    budget: float  # on the measure's scale
    violation_q: float  # Q_q of the replicate violations of the kept predictor
    unconstrained_violation_q: float
    lam: float  # penalty weight of the round that was kept
    loss: float
    unconstrained_loss: float
    history: list = field(default_factory=list)


def bootstrap_weights(n: int, B: int, rng: np.random.Generator) -> np.ndarray:
    # W_k = counts_k / n, counts_k ~ Multinomial(n, 1/n)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=B) / n


def weighted_corr(W: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    # ρ_k = cov_k(p, q) / √(var_k(p) var_k(q)), moments under the replicate weights W_k
    mp, mq = W @ p, W @ q
    cov = W @ (p * q) - mp * mq
    vp, vq = (W @ (p * p) - mp * mp).clamp_min(0), (W @ (q * q) - mq * mq).clamp_min(0)
    return cov / torch.sqrt(vp * vq + 1e-18)


def group_gap(W: torch.Tensor, p: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    # gap_k = max_g E_k[p | S=g] − min_g E_k[p | S=g] over the groups present in replicate k; p: (n,) or (B, n)
    counts, sums = W @ onehot, (W * p) @ onehot
    means, present = sums / counts.clamp_min(1e-18), counts > 0
    hi = torch.where(present, means, -torch.inf).amax(1)
    lo = torch.where(present, means, torch.inf).amin(1)
    return torch.where(present.sum(1) > 0, hi - lo, torch.zeros_like(hi))


def _independence(W, p, s, measure, onehot):
    return weighted_corr(W, p, s).abs() if measure == "corr" else group_gap(W, p, onehot)


def violations(p: torch.Tensor, s: torch.Tensor, y: torch.Tensor, W: torch.Tensor, notion: str, measure: str,
               task: str, onehot: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The (B,) violations of predictions ``p`` on the labelled rows under each replicate's weights."""
    if notion == "independence":
        return _independence(W, p, s, measure, onehot)
    if task == "classification":  # equalised odds: the worst class
        per_class = []
        for c in (0.0, 1.0):
            Wc = W * (y == c)
            per_class.append(_independence(Wc / Wc.sum(1, keepdim=True).clamp_min(1e-18), p, s, measure, onehot))
        return torch.stack(per_class).amax(0)
    if measure == "corr":
        r_ps, r_py, r_sy = weighted_corr(W, p, s), weighted_corr(W, p, y), weighted_corr(W, s, y)
        # ρ(p,s | y) = (ρ_ps − ρ_py ρ_sy) / √((1 − ρ_py²)(1 − ρ_sy²))
        return ((r_ps - r_py * r_sy) / torch.sqrt(((1 - r_py**2) * (1 - r_sy**2)).clamp_min(1e-18))).abs()
    my = W @ y
    beta = (W @ (p * y) - (W @ p) * my) / (W @ (y * y) - my * my).clamp_min(1e-18)
    return group_gap(W, p[None, :] - beta[:, None] * y[None, :], onehot)


def resolve_measure(measure: str, s_labelled: np.ndarray) -> str:
    discrete, levels = is_discrete(s_labelled), len(np.unique(s_labelled))
    if measure == "auto":
        return "dp" if discrete and levels > 2 else "corr"
    if measure == "dp" and not discrete:
        raise UserError("measure 'dp' needs a discrete sensitive column (≤ 10 integer values); use 'corr'")
    if measure == "corr" and discrete and levels > 2:
        raise UserError(f"measure 'corr' needs a binary or continuous sensitive column ({levels} groups); use 'dp'")
    return measure


def measure_budget(eps: float, measure: str) -> float:
    # corr: ρ_max = √(1 − e^{−2ε}); dp: the gap itself
    return rho_from_mutual_information(eps) if measure == "corr" else eps


def forward_numpy(params: dict, x: np.ndarray, task: str) -> np.ndarray:
    """Predictions of a fitted model: target units for regression, P(Y = 1) for classification."""
    h = (np.asarray(x, dtype=float) - params["x_mean"]) / params["x_scale"]
    layers = sum(1 for k in params if k.startswith("w"))
    for i in range(layers):
        h = h @ params[f"w{i}"].T + params[f"b{i}"]
        if i < layers - 1:
            h = np.tanh(h)
    z = h[:, 0]
    if task == "classification":
        return 1.0 / (1.0 + np.exp(-z))
    return z * params["y_scale"] + params["y_mean"]


def _model(d: int, cfg: BootstrapConfig) -> torch.nn.Module:
    if cfg.model == "linear":
        return torch.nn.Sequential(torch.nn.Linear(d, 1)).double()
    return torch.nn.Sequential(torch.nn.Linear(d, cfg.hidden), torch.nn.Tanh(), torch.nn.Linear(cfg.hidden, 1)).double()


def fit_bootstrap(x: np.ndarray, y: np.ndarray, s: np.ndarray, task: str, eps: float, cfg: BootstrapConfig,
                  progress: str = "none") -> BootstrapFit:
    """Fit on all rows (``s`` NaN where unknown); the fairness term uses the bootstrap replicates of the rest."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    lab = ~np.isnan(s)
    measure = resolve_measure(cfg.measure, s[lab])
    budget = measure_budget(eps, measure)
    x_mean, x_scale = x.mean(0), x.std(0)
    y_mean, y_scale = (0.0, 1.0) if task == "classification" else (float(y.mean()), float(y.std()))
    xt = torch.as_tensor((x - x_mean) / x_scale)
    yt = torch.as_tensor((y - y_mean) / y_scale)
    s_l, y_l = torch.as_tensor(s[lab]), yt[torch.as_tensor(lab)]
    levels = np.unique(s[lab])
    onehot = torch.as_tensor((s[lab][:, None] == levels[None, :]).astype(float)) if measure == "dp" else None
    W = torch.as_tensor(bootstrap_weights(int(lab.sum()), cfg.replicates, rng))
    lab_t = torch.as_tensor(lab)
    model = _model(x.shape[1], cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def objective():
        out = model(xt)[:, 0]
        loss = bce(out, yt) if task == "classification" else torch.mean((out - yt) ** 2)
        pred = torch.sigmoid(out[lab_t]) if task == "classification" else out[lab_t]
        v = violations(pred, s_l, y_l, W, cfg.notion, measure, task, onehot)
        return loss, torch.quantile(v, cfg.quantile)

    bar = Progress(total=(cfg.max_rounds + 1) * cfg.steps, mode=progress, desc="fair-bootstrap")
    best, history, regime, lam = None, [], None, 0.0
    free_loss = free_vq = None
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        for rnd in range(cfg.max_rounds + 1):
            lam = 0.0 if rnd == 0 else cfg.lam0 * cfg.lam_growth ** (rnd - 1)
            for step in range(cfg.steps):
                loss, vq = objective()
                if rnd > 0 and vq.item() <= budget and (best is None or loss.item() < best[0]):
                    best = (loss.item(), vq.item(), copy.deepcopy(model.state_dict()))
                opt.zero_grad()
                (loss + lam * torch.relu(vq - cfg.margin * budget)).backward()
                opt.step()
                if step % 10 == 0:
                    bar.update(rnd * cfg.steps + step + 1, info=f"λ={lam:g} Q_q={vq.item():.4f} budget={budget:.4f}")
            with torch.no_grad():
                loss, vq = objective()
            history.append({"round": rnd, "lam": lam, "loss": loss.item(), "violation_q": vq.item()})
            if rnd == 0:
                free_loss, free_vq = loss.item(), vq.item()
            if vq.item() <= budget and (best is None or loss.item() < best[0]):
                best = (loss.item(), vq.item(), copy.deepcopy(model.state_dict()))
            if best is not None:
                regime = NO_LOSS if rnd == 0 else CONSTRAINED
                break
        bar.update(bar.total, info="done")
    finally:
        bar.close()
        torch.set_num_threads(threads)
    if best is None:
        raise UserError(f"bootstrap training could not bring the q={cfg.quantile:g} quantile of the {measure} "
                        f"violation ({history[-1]['violation_q']:.4g}) below the budget {budget:.4g} in "
                        f"{cfg.max_rounds} penalty rounds; raise eps, lower the quantile or label more S rows")
    model.load_state_dict(best[2])
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    params = {f"{k}{i}": getattr(m, name).detach().numpy().copy()
              for i, m in enumerate(linears) for k, name in (("w", "weight"), ("b", "bias"))}
    params.update(x_mean=x_mean, x_scale=x_scale, y_mean=np.float64(y_mean), y_scale=np.float64(y_scale))
    return BootstrapFit(params, regime, measure, budget, best[1], free_vq, lam, best[0], free_loss, history)
