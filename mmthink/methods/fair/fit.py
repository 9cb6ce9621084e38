"""Fit a fair predictor on a table with a partly missing sensitive column; evaluate, save, load, plot.

Methods: ``gaussian`` (nominal closed form, plug-in Cov(X,S)), ``robust`` (closed form at t − r,
r from the concentration bound or the bootstrap) and ``bootstrap`` (generic penalised training).
ε is a mutual-information budget I(S;Ŷ) ≤ ε (nats) under the Gaussian model, i.e. |ρ(Ŷ,S)| ≤ √(1 − e^{−2ε});
with the bootstrap method and measure "dp" (the default for a discrete S with > 2 groups) it is the
demographic-parity gap itself (probability for classification, target sd units for regression).

Fairness is measured on the rows whose S is known: for gaussian/robust on the linear score wᵀx + c
(the quantity the theory constrains; for a two-valued target a Platt-scaled sigmoid of it gives the
probabilities used by accuracy/log-loss), for bootstrap on the model's prediction/probability.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mmthink.errors import UserError
from mmthink.methods.fair import gaussian as G
from mmthink.methods.fair.config import ALGORITHMS, RADII, TASKS, BootstrapConfig
from mmthink.methods.fair.data import FairData, check_eps, is_discrete, read_table, select_columns



@dataclass
class FairResult:
    method: str
    task: str  # regression | classification
    model: str  # linear | logistic | mlp
    features: list
    target: str
    sensitive: str
    eps: float
    regime: str  # "no loss" | "constrained"
    guarantee: str  # what is guaranteed, in words
    guarantee_level: Optional[float]  # 1 − δ (robust) or q (bootstrap); None for the plug-in gaussian method
    measure: str  # corr | dp: the constrained violation measure
    notion: str  # independence | separation
    budget: float  # on the measure's scale
    params: dict = field(repr=False)  # numpy arrays, saved to weights.npz
    metrics: dict = field(default_factory=dict)  # {"train": {...}, "holdout": {...}}
    details: dict = field(default_factory=dict)  # threshold, radius, objective, ... of the method
    config: dict = field(default_factory=dict)  # the resolved arguments


HOLDOUT_STREAM = 0x401D  # salt of the holdout split's random stream


def _as_data(table, target, sensitive, features) -> FairData:
    if isinstance(table, FairData):
        return table
    frame = read_table(table) if isinstance(table, (str, Path)) else table
    return select_columns(frame, target, sensitive, features)


def _moments(x, y):
    # Σ_X = (1/n) Σ (x − x̄)(x − x̄)ᵀ, c_Y = (1/n) Σ (x − x̄)(y − ȳ)
    xc = x - x.mean(0)
    return xc.T @ xc / len(x), xc.T @ (y - y.mean()) / len(x), float(y.var())


def _fit_linear_gaussian(data: FairData, task, eps, method, radius, delta, radius_replicates, seed):
    x, y, lab = data.x, data.y, data.labelled
    if is_discrete(data.s[lab]) and len(np.unique(data.s[lab])) > 2:
        raise UserError(f"method '{method}' needs a binary or continuous sensitive column; "
                        f"'{data.sensitive}' has {len(np.unique(data.s[lab]))} groups: use --method bootstrap")
    sigma_x, c_y, var_y = _moments(x, y)
    x_l, s_l = x[lab], data.s[lab]
    c_s, var_s = G.cross_covariance(x_l, s_l), float(s_l.var())
    t = G.threshold(eps, var_s)
    if method == "gaussian":
        w, info = G.fair_direction(sigma_x, c_y, c_s, t, var_y, var_s)
        guarantee, level = "none: plug-in Cov(X,S) from the labelled rows (nominal)", None
    else:
        n_l, d = int(lab.sum()), x.shape[1]
        if radius == "concentration":
            r = G.radius_concentration(n_l, d, var_s, delta)
        else:
            r = G.radius_bootstrap(x_l, s_l, sigma_x, radius_replicates, 1 - delta, np.random.default_rng(seed))
        w, info = G.robust_fair_direction(sigma_x, c_y, c_s, t, r, var_y, var_s, eps=eps, n=n_l)
        guarantee = (f"I(S;Ŷ) ≤ eps for every Cov(X,S) in the {radius} ball of radius {r:.4g} around the "
                     f"estimate from {n_l} labelled rows, which holds the true one with probability ≥ {1 - delta:g}")
        level = 1 - delta
    coef = float(w @ c_y) * w  # least-squares scale along w (wᵀΣw = 1)
    params = {"coef": coef, "intercept": np.float64(y.mean() - coef @ x.mean(0))}
    if task == "classification":
        from sklearn.linear_model import LogisticRegression

        score = x @ coef + params["intercept"]
        platt = LogisticRegression(C=1e6).fit(score[:, None], y.astype(int))
        params.update(platt_a=np.float64(platt.coef_[0, 0]), platt_b=np.float64(platt.intercept_[0]))
    info.update(var_s=var_s, var_y=var_y, n_labelled=int(lab.sum()))
    return params, info, info["regime"], guarantee, level


def fit_fair(table, target: Optional[str] = None, sensitive: Optional[str] = None,
             features: Optional[Sequence[str]] = None, eps: float = 0.1, method: str = "robust", *,
             task: str = "auto", radius: str = "concentration", delta: float = 0.05, radius_replicates: int = 200,
             bootstrap=None, holdout: float = 0.0, seed: int = 0, progress: str = "none") -> FairResult:
    """Fit on ``table`` (path, DataFrame or FairData); ``holdout`` > 0 keeps that fraction of rows for evaluation."""
    from mmthink.methods.fair.bootstrap import fit_bootstrap

    eps = check_eps(eps)
    if method not in ALGORITHMS:
        raise UserError(f"method must be one of {ALGORITHMS} (got '{method}')")
    if task not in TASKS:
        raise UserError(f"task must be one of {TASKS} (got '{task}')")
    if radius not in RADII:
        raise UserError(f"radius must be one of {RADII} (got '{radius}')")
    if not 0 <= holdout < 1:
        raise UserError(f"holdout must be in [0, 1) (got {holdout})")
    cfg = bootstrap or BootstrapConfig(seed=seed)
    if method == "bootstrap":
        cfg.check()
    data = _as_data(table, target, sensitive, features)
    two_valued = data.y_labels is not None
    if task == "auto":
        task = "classification" if two_valued else "regression"
    if task == "classification" and not two_valued:
        raise UserError(f"task classification needs a two-valued target; '{data.target}' has more values")
    train, test = data, None
    if holdout > 0:
        # Its own stream: `fair data` hides S with rng(seed) too, and the same permutation would put every
        # labelled row in training, so the held-out violation would never be measured.
        perm = np.random.default_rng([seed, HOLDOUT_STREAM]).permutation(len(data.y))
        cut = int(round(len(perm) * (1 - holdout)))
        train, test = data.subset(perm[:cut]), data.subset(perm[cut:])
    if not train.labelled.any():
        raise UserError(f"no labelled '{data.sensitive}' rows are left for training after the holdout split")
    if task == "classification" and len(np.unique(train.y)) < 2:
        raise UserError("the training rows hold a single target class")

    if method == "bootstrap":
        fit = fit_bootstrap(train.x, train.y, train.s, task, eps, cfg, progress)
        params, regime, measure, notion, budget = fit.params, fit.regime, fit.measure, cfg.notion, fit.budget
        model = "mlp" if cfg.model == "mlp" else ("logistic" if task == "classification" else "linear")
        details = {"violation_q": fit.violation_q, "unconstrained_violation_q": fit.unconstrained_violation_q,
                   "loss": fit.loss, "unconstrained_loss": fit.unconstrained_loss, "lam": fit.lam,
                   "history": fit.history, "n_labelled": int(train.labelled.sum())}
        level = cfg.quantile
        guarantee = (f"the {notion} {measure} violation is ≤ {budget:.4g} on ≥ {cfg.quantile:.0%} of "
                     f"{cfg.replicates} bootstrap replicates of the {details['n_labelled']} labelled rows")
    else:
        params, details, regime, guarantee, level = _fit_linear_gaussian(
            train, task, eps, method, radius, delta, radius_replicates, seed)
        measure, notion, model, budget = "corr", "independence", "linear", G.rho_from_mutual_information(eps)
    params["y_scale"] = np.float64(train.y.std()) if task == "regression" else np.float64(1.0)
    config = {"method": method, "task": task, "eps": eps, "radius": radius, "delta": delta,
              "radius_replicates": radius_replicates, "holdout": holdout, "seed": seed,
              "bootstrap": asdict(cfg) if method == "bootstrap" else None}
    result = FairResult(method, task, model, list(data.features), data.target, data.sensitive, eps, regime,
                        guarantee, level, measure, notion, budget, params, details=details, config=config)
    result.metrics["train"] = score_result(result, train)
    if test is not None:
        result.metrics["holdout"] = score_result(result, test)
    return result


def predict(result: FairResult, x: np.ndarray) -> np.ndarray:
    """Target-unit predictions (regression) or P(Y = 1) (classification)."""
    if result.method == "bootstrap":
        from mmthink.methods.fair.bootstrap import forward_numpy

        return forward_numpy(result.params, x, result.task)
    score = np.asarray(x, dtype=float) @ result.params["coef"] + result.params["intercept"]
    if result.task == "classification":
        return 1.0 / (1.0 + np.exp(-(result.params["platt_a"] * score + result.params["platt_b"])))
    return score


def fairness_output(result: FairResult, x: np.ndarray) -> np.ndarray:
    """The output whose fairness is constrained: the linear score (gaussian/robust) or the prediction."""
    if result.method == "bootstrap":
        return predict(result, x)
    return np.asarray(x, dtype=float) @ result.params["coef"] + result.params["intercept"]


def score_result(result: FairResult, data: FairData) -> dict:
    """Utility on every row; fairness (both notions, every applicable measure) on the rows with known S."""
    import torch

    from mmthink.methods.fair.bootstrap import violations

    y = data.y
    if result.task == "regression":
        pred = predict(result, data.x)
        # R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²
        utility = {"r2": float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)),
                   "rmse": float(np.sqrt(np.mean((y - pred) ** 2)))}
    else:
        p = np.clip(predict(result, data.x), 1e-12, 1 - 1e-12)
        # log-loss = −mean(y log p + (1 − y) log(1 − p))
        utility = {"accuracy": float(np.mean((p > 0.5) == (y == 1))),
                   "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))}
    out = {"n_rows": int(len(y)), "n_labelled": int(data.labelled.sum()), "utility": utility, "fairness": {}}
    lab = data.labelled
    if lab.sum() < 2 or len(np.unique(data.s[lab])) < 2:
        return out
    f = fairness_output(result, data.x[lab]) / (result.params["y_scale"] if result.task == "regression" else 1)
    y_l = y[lab] if result.task == "classification" else (y[lab] - y.mean()) / max(y.std(), 1e-300)
    ft, st, yt = (torch.as_tensor(np.ascontiguousarray(a, dtype=float)) for a in (f, data.s[lab], y_l))
    W = torch.full((1, len(f)), 1.0 / len(f), dtype=torch.float64)
    levels = np.unique(data.s[lab])
    measures = ["dp"] if is_discrete(data.s[lab]) else []
    if len(levels) == 2 or not measures:
        measures.insert(0, "corr")
    onehot = torch.as_tensor((data.s[lab][:, None] == levels[None, :]).astype(float))
    for notion in ("independence", "separation"):
        for m in measures:
            v = float(violations(ft, st, yt, W, notion, m, result.task, onehot)[0])
            out["fairness"][f"{notion}_{m}"] = v
            if m == "corr":
                out["fairness"][f"{notion}_mi_gaussian"] = G.mutual_information_from_rho(v)
    key = f"{result.notion}_{result.measure}"
    if key in out["fairness"]:
        out["violation"], out["budget"] = out["fairness"][key], result.budget
        out["within_budget"] = bool(out["violation"] <= result.budget)
    return out


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v)}")


def save_result(folder, result: FairResult) -> Path:
    """``folder/result.json`` (everything but the weights) and ``folder/weights.npz``, each written atomically."""
    from mmthink.io import strict_json, write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".weights.npz.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **result.params)
    os.replace(tmp, folder / "weights.npz")
    body = {k: v for k, v in asdict(result).items() if k != "params"}
    body = json.loads(json.dumps({"format": 1, **body}, default=_plain))  # plain types first, then strict JSON
    write_text_atomic(folder / "result.json", json.dumps(strict_json(body), indent=2, allow_nan=False))
    return folder


def load_result(folder) -> FairResult:
    folder = Path(folder)
    if not (folder / "result.json").is_file() or not (folder / "weights.npz").is_file():
        raise UserError(f"{folder} holds no fair result (result.json and weights.npz)")
    body = json.loads((folder / "result.json").read_text())
    body.pop("format", None)
    with np.load(folder / "weights.npz") as npz:
        params = {k: npz[k] for k in npz.files}
    return FairResult(params=params, **body)


def label_curve(table, target: Optional[str] = None, sensitive: Optional[str] = None,
                features: Optional[Sequence[str]] = None, eps: float = 0.1, ns: Sequence[int] = (50, 100, 200),
                methods: Sequence[str] = ("gaussian", "robust", "bootstrap"), seed: int = 0, **fit_kwargs) -> dict:
    """Utility and violation against the number n of S-labelled rows kept (a random subset of them).

    The violation is measured on every originally labelled row; an infeasible fit gives NaN.
    """
    data = _as_data(table, target, sensitive, features)
    order = np.random.default_rng(seed).permutation(np.flatnonzero(data.labelled))
    ns = [int(n) for n in ns if 0 < n <= len(order)]
    if not ns:
        raise UserError(f"every n is outside 1..{len(order)} (the labelled rows)")
    curves = {"n": ns, "eps": eps, "n_labelled": len(order), "methods": {}}
    for m in methods:
        rows = curves["methods"][m] = {"utility": [], "violation": [], "budget": None, "regime": []}
        for n in ns:
            s = np.full_like(data.s, np.nan)
            s[order[:n]] = data.s[order[:n]]
            part = FairData(data.x, data.y, s, data.features, data.target, data.sensitive, data.y_labels,
                            data.s_labels)
            try:
                res = fit_fair(part, eps=eps, method=m, seed=seed, **fit_kwargs)
            except UserError:  # robust radius above the budget, or bootstrap penalty rounds exhausted
                utility, violation, regime = math.nan, math.nan, G.INFEASIBLE
            else:
                ev = score_result(res, data)
                utility, regime = next(iter(ev["utility"].values())), res.regime
                violation = ev.get("violation", math.nan)
                rows["budget"] = res.budget
            rows["utility"].append(utility)
            rows["violation"].append(violation)
            rows["regime"].append(regime)
    return curves


def plot_value_of_labels(curves: dict, path, theory: Optional[dict] = None, title: str = "") -> Path:
    """PNG: utility (left) and violation vs budget (right) against the number of S-labelled rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_u, ax_v) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in curves["methods"].items():
        ax_u.plot(curves["n"], rows["utility"], marker="o", label=name)
        ax_v.plot(curves["n"], rows["violation"], marker="o", label=name)
        if rows["budget"] is not None:
            ax_v.axhline(rows["budget"], linestyle=":", color="grey")
    if theory is not None and "r2" in theory:
        ax_u.plot(theory["n"], theory["r2"], linestyle="--", color="black", label="robust (theory, b̂ = b)")
        ax_u.axhline(theory["nominal_r2"], linestyle=":", color="black", label="nominal (n = ∞)")
    for ax in (ax_u, ax_v):
        ax.set_xscale("log")
        ax.set_xlabel("S-labelled rows n")
        ax.legend(fontsize=8)
    ax_u.set_ylabel("utility (R² / accuracy)")
    ax_v.set_ylabel("violation on all labelled rows (budget dotted)")
    fig.suptitle(title or f"value of sensitive labels (eps={curves['eps']:g})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
