"""Fair linear prediction for jointly Gaussian (X, Y, S): the nominal and the robust QCQP in closed form.

Paper: "Fairness with uncertain sensitive attributes" (arXiv 2302.08077), Gaussian case.
Ŷ = wᵀX. Maximise I(Y;Ŷ) subject to I(S;Ŷ) ≤ ε, i.e. maximise (wᵀc_Y)² s.t. wᵀΣ_X w = 1 and
|wᵀc_S| ≤ t with c_Y = Cov(X,Y), c_S = Cov(X,S), t² = σ_S²(1 − e^{−2ε}).

Whitening. Any factor F with F Fᵀ = Σ_X gives u = Fᵀw, a = F⁻¹c_Y, b = F⁻¹c_S and the problem
max (uᵀa)² s.t. ‖u‖ = 1, |uᵀb| ≤ t: the unit sphere cut by a slab around b. The optimal w does not
depend on the factor, and neither does ‖b − b'‖ = ((c − c')ᵀΣ⁻¹(c − c'))^½, so we use the Cholesky
factor (triangular solves; ~5× cheaper than the symmetric Σ^{1/2} at d = 200).

Robust version (c_S estimated from the n rows that carry S). Uncertainty set {b : ‖b − b̂‖ ≤ r} in
whitened space (a Mahalanobis ball around ĉ_S); Σ_X, σ_S² are treated as known (Σ_X comes from all
rows, labelled or not). For a unit u the worst case is attained at b* = b̂ + r·sgn(uᵀb̂)·u:
    max_{‖b − b̂‖ ≤ r} |uᵀb| = |uᵀb̂| + r‖u‖ = |uᵀb̂| + r,
so the robust problem is exactly the nominal one with threshold t − r: feasible iff r ≤ t (d ≥ 2;
r = t leaves only u ⊥ b̂), and it loses nothing against the unconstrained optimum while
|âᵀb̂| ≤ t − r. Note: the scale-free constraint must be imposed on the sphere; the convex relaxation
"|uᵀb̂| + r‖u‖ ≤ t, ‖u‖ ≤ 1" is a different (looser) problem whose optimum can sit inside the ball.

Radius. With whitened rows z = F⁻¹(x − μ) ~ N(0, I) and known means, b̂ = (1/n)Σ z_i s_i and, by
Isserlis, Cov(z s) = σ_S² I + b bᵀ; ‖b‖² = R²(S|X)·σ_S² ≤ σ_S². Chebyshev on the vector mean gives
P(‖b̂ − b‖ ≥ r) ≤ δ with r² = (dσ_S² + ‖b‖²)/(nδ) ≤ (d + 1)σ_S²/(nδ). Estimated means add O(1/n).
The bootstrap radius is the data-driven alternative (tighter, asymptotic).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from scipy.linalg.lapack import dpotrf as potrf, dtrtrs as trtrs

from mmthink.errors import UserError

NO_LOSS, CONSTRAINED, INFEASIBLE = "no loss", "constrained", "infeasible"


def threshold(eps: float, var_s: float) -> float:
    # t² = σ_S² (1 − e^{−2ε})
    if not eps > 0 or not math.isfinite(eps):
        raise UserError(f"eps must be > 0 (got {eps})")
    return math.sqrt(var_s * -math.expm1(-2.0 * eps))


def mutual_information_from_rho(rho):
    # I = −½ log(1 − ρ²)   (jointly Gaussian pair with correlation ρ; +inf at |ρ| = 1)
    r2 = np.minimum(np.square(np.asarray(rho, dtype=float)), 1.0)
    with np.errstate(divide="ignore"):
        out = -0.5 * np.log1p(-r2)
    return float(out) if out.ndim == 0 else out


def rho_from_mutual_information(eps: float) -> float:
    # ρ_max = √(1 − e^{−2ε}): the correlation whose Gaussian mutual information is ε
    return math.sqrt(-math.expm1(-2.0 * eps))


def whitening_factor(sigma_x: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor L, L Lᵀ = Σ_X; a singular Σ_X is a user error (collinear/constant features)."""
    sigma_x = np.asarray(sigma_x, dtype=float)
    if sigma_x.ndim != 2 or sigma_x.shape[0] != sigma_x.shape[1] or not np.isfinite(sigma_x).all():
        raise UserError(f"the feature covariance must be a finite square matrix (shape {sigma_x.shape})")
    lower, info = potrf(sigma_x, lower=1, clean=1)  # LAPACK directly: scipy's wrappers cost ~10 µs a call
    if info != 0:
        raise UserError("the feature covariance is singular: drop constant or collinear features")
    return lower


def whiten(lower: np.ndarray, c: np.ndarray) -> np.ndarray:
    # a = L⁻¹ c   (c: (d,) or (d, k))
    return trtrs(lower, np.asarray(c, dtype=float), lower=1)[0]


def unwhiten(lower: np.ndarray, u: np.ndarray) -> np.ndarray:
    # w = L⁻ᵀ u   (so that wᵀΣw = ‖u‖²)
    return trtrs(lower, u, lower=1, trans=1)[0]


def _orthogonal_unit(b_hat: np.ndarray) -> np.ndarray:
    e = np.zeros_like(b_hat)
    e[int(np.argmin(np.abs(b_hat)))] = 1.0
    v = e - (e @ b_hat) * b_hat
    return v / np.linalg.norm(v)


def slab_sphere_argmax(a: np.ndarray, b: np.ndarray, t: float) -> tuple[np.ndarray, bool]:
    """argmax aᵀu over ‖u‖ = 1, |uᵀb| ≤ t (t ≥ 0); returns (u*, constraint active)."""
    na = math.sqrt(a @ a)  # (math on dot products: np.linalg.norm costs µs per call here)
    if na == 0:
        raise UserError("the target is uncorrelated with every feature: there is nothing to predict")
    a_hat = a / na
    ab = float(a_hat @ b)
    if abs(ab) <= t:
        return a_hat, False
    nb = math.sqrt(b @ b)  # > t, since |âᵀb| ≤ ‖b‖
    b_hat = b / nb
    perp = a_hat - (a_hat @ b_hat) * b_hat
    n_perp = math.sqrt(perp @ perp)
    if n_perp <= 1e-12:  # a ∥ b: any direction orthogonal to b completes the optimum
        if a.size == 1:
            raise UserError(f"one feature correlated with S beyond the budget (|b|={nb:.4g} > t={t:.4g}): "
                            "no fair linear predictor exists; raise eps")
        perp = _orthogonal_unit(b_hat)
    else:
        perp = perp / n_perp
    # u* = sgn(aᵀb)(t/‖b‖) b̂ + √(1 − t²/‖b‖²) â⊥
    cos = t / nb
    return math.copysign(cos, ab) * b_hat + math.sqrt(max(1.0 - cos * cos, 0.0)) * perp, True


def _report(u, a, b, t, active, var_y, var_s) -> dict:
    ua, ub = float(u @ a), float(u @ b)
    info = {
        "objective": ua * ua,  # (wᵀc_Y)², = ‖a‖² when unconstrained
        "unconstrained_objective": float(a @ a),
        "constraint": abs(ub),  # |wᵀc_S|
        "threshold": t,
        "active": bool(active),
        "regime": CONSTRAINED if active else NO_LOSS,
    }
    if var_y is not None:
        info["r2"] = ua * ua / var_y  # ρ²(Y,Ŷ) = (wᵀc_Y)² / (σ_Y² wᵀΣw)
        info["mi_y"] = mutual_information_from_rho(ua / math.sqrt(var_y))
    if var_s is not None:
        info["mi_s"] = mutual_information_from_rho(ub / math.sqrt(var_s))
    return info


def fair_direction(sigma_x, c_y, c_s, t: float, var_y: Optional[float] = None,
                   var_s: Optional[float] = None) -> tuple[np.ndarray, dict]:
    """Nominal optimum: w with wᵀΣ_X w = 1 maximising (wᵀc_Y)² s.t. |wᵀc_S| ≤ t, and a report."""
    lower = whitening_factor(sigma_x)
    a, b = whiten(lower, np.array([c_y, c_s], dtype=float).T).T  # one solve, F-ordered
    u, active = slab_sphere_argmax(a, b, t)
    return unwhiten(lower, u), _report(u, a, b, t, active, var_y, var_s)


def robust_fair_direction(sigma_x, c_y, c_s_hat, t: float, r: float, var_y: Optional[float] = None,
                          var_s: Optional[float] = None, eps: Optional[float] = None,
                          n: Optional[int] = None) -> tuple[np.ndarray, dict]:
    """Robust optimum: |wᵀc_S| ≤ t for every c_S with ‖F⁻¹(c_S − ĉ_S)‖ ≤ r; the nominal one at t − r."""
    lower = whitening_factor(sigma_x)
    a, b_hat = whiten(lower, np.array([c_y, c_s_hat], dtype=float).T).T
    t_rob = t - r  # max_{‖b − b̂‖ ≤ r} |uᵀb| = |uᵀb̂| + r on the unit sphere
    if t_rob < 0 or (a.size == 1 and abs(float(b_hat[0])) > t_rob):
        budget = f"eps={eps:g} (t={t:.4g})" if eps is not None else f"t={t:.4g}"
        rows = f" from {n} labelled rows" if n is not None else ""
        raise UserError(f"fairness budget {budget} is below the estimation uncertainty r={r:.4g}{rows}; "
                        "label more S rows or raise eps")
    u, active = slab_sphere_argmax(a, b_hat, t_rob)
    info = _report(u, a, b_hat, t, active, var_y, var_s)
    info.update(radius=float(r), robust_threshold=t_rob, worst_case_constraint=info["constraint"] + r)
    if var_s is not None:
        info["worst_case_mi_s"] = mutual_information_from_rho(min(info["worst_case_constraint"] / math.sqrt(var_s), 1))
    return unwhiten(lower, u), info


def radius_concentration(n: int, d: int, var_s: float, delta: float) -> float:
    # r = √((d + 1) σ_S² / (n δ)) ≥ √((d σ_S² + ‖b‖²)/(n δ)): P(‖b̂ − b‖ ≥ r) ≤ δ (Chebyshev)
    if not 0 < delta < 1:
        raise UserError(f"delta must be in (0, 1) (got {delta})")
    if n < 1:
        raise UserError("no labelled S rows: the radius needs at least one")
    return math.sqrt((d + 1) * var_s / (n * delta))


def cross_covariance(x: np.ndarray, s: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    # ĉ = Σ_i w_i (x_i − x̄_w)(s_i − s̄_w) with weights summing to one (rows of `weights` for many at once)
    if weights is None:
        weights = np.full(len(s), 1.0 / len(s))
    return weights @ (x * s[:, None]) - np.expand_dims(weights @ s, -1) * (weights @ x)


def radius_bootstrap(x_l: np.ndarray, s_l: np.ndarray, sigma_x, B: int = 200, quantile: float = 0.95,
                     rng: Optional[np.random.Generator] = None) -> float:
    # r = q-quantile over replicates of ‖F⁻¹(ĉ*_k − ĉ)‖, ĉ*_k from rows resampled with replacement
    rng = np.random.default_rng(0) if rng is None else rng
    n = len(s_l)
    if n < 2:
        raise UserError("the bootstrap radius needs at least 2 labelled S rows")
    lower = whitening_factor(sigma_x)
    x_l, s_l = np.asarray(x_l, dtype=float), np.asarray(s_l, dtype=float)
    c_hat = cross_covariance(x_l, s_l)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=B) / n
    diffs = whiten(lower, (cross_covariance(x_l, s_l, weights) - c_hat).T)  # (d, B)
    return float(np.quantile(np.linalg.norm(diffs, axis=0), quantile))


def labels_needed(t: float, d: int, var_s: float, delta: float, margin: float = 0.0) -> int:
    # smallest n with radius_concentration(n) ≤ t − margin: n ≥ (d + 1) σ_S² / (δ (t − margin)²)
    gap = t - margin
    return math.ceil((d + 1) * var_s / (delta * gap * gap)) if gap > 0 else -1


def value_of_labels(sigma_x, c_y, c_s, var_s: float, eps: float, ns: Sequence[int], delta: float = 0.05,
                    var_y: Optional[float] = None) -> dict:
    """Robust utility against the number n of S-labelled rows (concentration radius, b̂ = b).

    Returns lists over ``ns`` (radius, objective, r2 when var_y is given, regime) and the nominal
    (n = ∞) values, ``n_feasible`` (first n with r ≤ t) and ``n_no_loss`` (first n from which the
    robust solution is the unconstrained one; -1 when the nominal constraint is already active).
    """
    d = len(c_y)
    t = threshold(eps, var_s)
    _, nominal = fair_direction(sigma_x, c_y, c_s, t, var_y, var_s)
    lower = whitening_factor(sigma_x)
    a, b = whiten(lower, c_y), whiten(lower, c_s)
    ab = abs(float(a @ b)) / float(np.linalg.norm(a))
    out = {"n": [int(n) for n in ns], "radius": [], "objective": [], "regime": [], "threshold": t,
           "nominal_objective": nominal["objective"], "unconstrained_objective": nominal["unconstrained_objective"],
           "n_feasible": labels_needed(t, d, var_s, delta), "n_no_loss": labels_needed(t, d, var_s, delta, ab)}
    if var_y is not None:
        out["r2"], out["nominal_r2"] = [], nominal["r2"]
    for n in out["n"]:
        r = radius_concentration(n, d, var_s, delta)
        try:
            _, info = robust_fair_direction(sigma_x, c_y, c_s, t, r, var_y, var_s)
            obj, regime = info["objective"], info["regime"]
        except UserError:
            obj, regime = float("nan"), INFEASIBLE
        out["radius"].append(r)
        out["objective"].append(obj)
        out["regime"].append(regime)
        if var_y is not None:
            out["r2"].append(obj / var_y)
    return out
