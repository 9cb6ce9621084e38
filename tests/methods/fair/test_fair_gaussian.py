import math

import numpy as np
import pytest

from mmthink.errors import UserError
from mmthink.methods.fair.gaussian import (
    CONSTRAINED, INFEASIBLE, NO_LOSS, cross_covariance, fair_direction, labels_needed, mutual_information_from_rho,
    radius_bootstrap, radius_concentration, rho_from_mutual_information, robust_fair_direction, threshold,
    value_of_labels, whiten, whitening_factor,
)

# Golden 2-D case: Σ = diag(4, 1) (L = diag(2, 1)), c_Y = (2, 1) → a = (1, 1); c_S = (2, 0) → b = (1, 0).
SIGMA, C_Y, C_S = np.diag([4.0, 1.0]), np.array([2.0, 1.0]), np.array([2.0, 0.0])


def _instance(rng, d):
    m = rng.normal(size=(d, d))
    sigma = m @ m.T / d + 0.3 * np.eye(d)
    c_y = rng.normal(size=d)
    return sigma, c_y, 0.7 * c_y + 0.5 * rng.normal(size=d)


def test_threshold_and_mutual_information_golden():
    assert threshold(0.5 * math.log(2), 2.0) == pytest.approx(1.0)  # t² = 2 (1 − 1/2)
    assert mutual_information_from_rho(0.6) == pytest.approx(-0.5 * math.log(0.64))
    assert rho_from_mutual_information(mutual_information_from_rho(0.6)) == pytest.approx(0.6)
    assert mutual_information_from_rho(1.0) == math.inf
    for eps in (0.0, -1.0, math.nan):
        with pytest.raises(UserError, match="eps must be > 0"):
            threshold(eps, 1.0)


def test_golden_2d_active():
    w, info = fair_direction(SIGMA, C_Y, C_S, 0.5, var_y=4.0, var_s=1.0)
    # â·b = 1/√2 > t = 0.5 → u* = 0.5 (1, 0) + √0.75 (0, 1); w = L⁻ᵀu* = (0.25, √3/2)
    np.testing.assert_allclose(w, [0.25, math.sqrt(3) / 2], atol=1e-12)
    assert info["objective"] == pytest.approx(1 + math.sqrt(3) / 2)  # (0.5 + √3/2)²
    assert info["constraint"] == pytest.approx(0.5) and info["active"] and info["regime"] == CONSTRAINED
    assert w @ SIGMA @ w == pytest.approx(1.0)
    assert info["r2"] == pytest.approx((1 + math.sqrt(3) / 2) / 4)
    assert info["mi_s"] == pytest.approx(-0.5 * math.log(1 - 0.25))


def test_golden_2d_inactive():
    w, info = fair_direction(SIGMA, C_Y, C_S, 0.8)
    # â·b = 1/√2 ≤ 0.8 → u* = â = (1, 1)/√2, w = (1/(2√2), 1/√2), objective ‖a‖² = 2
    np.testing.assert_allclose(w, [1 / (2 * math.sqrt(2)), 1 / math.sqrt(2)], atol=1e-12)
    assert info["objective"] == pytest.approx(2.0) and info["regime"] == NO_LOSS


def test_golden_2d_robust():
    w, info = robust_fair_direction(SIGMA, C_Y, C_S, 0.9, 0.4)  # t − r = 0.5: the active golden case
    np.testing.assert_allclose(w, [0.25, math.sqrt(3) / 2], atol=1e-12)
    assert info["worst_case_constraint"] == pytest.approx(0.9)
    u = np.array([0.5, math.sqrt(3) / 2])
    assert u @ (np.array([1.0, 0.0]) + 0.4 * u) == pytest.approx(0.9)  # b* = b̂ + r u attains t
    _, info = robust_fair_direction(SIGMA, C_Y, C_S, 0.9, 0.1)  # |â·b̂| = 0.707 ≤ 0.8 = t − r
    assert info["regime"] == NO_LOSS and info["objective"] == pytest.approx(2.0)


def test_robust_infeasible_budget_is_a_user_error():
    with pytest.raises(UserError, match=r"fairness budget eps=0\.01 \(t=0\.1\) is below the estimation uncertainty "
                                        r"r=0\.3 from 40 labelled rows; label more S rows or raise eps"):
        robust_fair_direction(SIGMA, C_Y, C_S, 0.1, 0.3, eps=0.01, n=40)
    _, info = robust_fair_direction(SIGMA, C_Y, C_S, 0.3, 0.3)  # r = t: only u ⊥ b̂ is left, still feasible
    assert info["constraint"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(UserError, match="below the estimation uncertainty"):
        robust_fair_direction(np.eye(1), [1.0], [0.5], 0.6, 0.2)  # d = 1: |b̂| + r > t


def test_closed_form_matches_cvxpy_in_both_regimes():
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(0)
    regimes = set()
    for d in (2, 5, 20):
        for _ in range(4):
            sigma, c_y, c_s = _instance(rng, d)
            lower = np.linalg.cholesky(sigma)
            for t in (0.05, 0.5, 3.0):
                w, info = fair_direction(sigma, c_y, c_s, t)
                x = cp.Variable(d)
                prob = cp.Problem(cp.Maximize(c_y @ x), [cp.norm(lower.T @ x) <= 1, cp.abs(c_s @ x) <= t])
                prob.solve(solver="CLARABEL")
                assert info["objective"] == pytest.approx(prob.value**2, rel=1e-6)
                assert w @ sigma @ w == pytest.approx(1.0) and abs(w @ c_s) <= t + 1e-10
                regimes.add(info["regime"])
                # robust on the sphere: maximise c_Yᵀw s.t. ‖Lᵀw‖ ≤ 1, |ĉ_Sᵀw| + r ≤ t
                r = 0.4 * t
                w_rob, info_rob = robust_fair_direction(sigma, c_y, c_s, t, r)
                prob = cp.Problem(cp.Maximize(c_y @ x), [cp.norm(lower.T @ x) <= 1, cp.abs(c_s @ x) + r <= t])
                prob.solve(solver="CLARABEL")
                assert info_rob["objective"] == pytest.approx(prob.value**2, rel=1e-6)
    assert regimes == {NO_LOSS, CONSTRAINED}


def test_robust_solution_is_fair_for_every_c_s_in_the_ball():
    rng = np.random.default_rng(1)
    for d in (2, 6):
        sigma, c_y, c_s = _instance(rng, d)
        lower = whitening_factor(sigma)
        b_hat = whiten(lower, c_s)
        t = 0.5 * np.linalg.norm(b_hat)
        r = 0.3 * t
        w, info = robust_fair_direction(sigma, c_y, c_s, t, r)
        u = lower.T @ w
        dirs = rng.normal(size=(4000, d))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        radii = np.concatenate([np.full(2000, r), r * rng.uniform(size=2000) ** (1 / d)])
        balls = b_hat + radii[:, None] * dirs  # boundary and interior of the whitened ball
        c_balls = balls @ lower.T  # c_S = L b
        assert np.max(np.abs(c_balls @ w)) <= t + 1e-12
        worst = b_hat + r * np.sign(u @ b_hat) * u  # the analytic worst case attains the threshold
        assert abs(u @ worst) == pytest.approx(t) and info["worst_case_constraint"] == pytest.approx(t)


def test_robust_optimum_matches_brute_force_over_circle_and_sampled_ball():
    # Independent of the t − r reduction: grid the unit circle, worst case by sampling the ball's boundary.
    a, b_hat, t, r = np.array([1.0, 0.4]), np.array([0.6, 0.5]), 0.5, 0.15
    theta = np.linspace(0, 2 * np.pi, 20001)
    us = np.stack([np.cos(theta), np.sin(theta)], 1)
    phi = np.linspace(0, 2 * np.pi, 721)
    ball = b_hat + r * np.stack([np.cos(phi), np.sin(phi)], 1)
    worst = np.abs(us @ ball.T).max(1)
    best = np.max(np.where(worst <= t, us @ a, -np.inf))
    _, info = robust_fair_direction(np.eye(2), a, b_hat, t, r)
    assert info["regime"] == CONSTRAINED
    assert math.sqrt(info["objective"]) == pytest.approx(best, abs=2e-4)


def test_concentration_radius_golden_and_covers_and_its_moment_identity_holds():
    assert radius_concentration(100, 3, 0.5, 0.2) == pytest.approx(math.sqrt(0.1))  # √((3+1)·0.5/(100·0.2))
    with pytest.raises(UserError, match="delta must be in"):
        radius_concentration(100, 3, 0.5, 1.0)
    rng = np.random.default_rng(2)
    d, n, trials, delta = 3, 100, 2000, 0.1
    b, var_s = np.array([0.5, -0.3, 0.2]), 1.0
    z = rng.normal(size=(trials, n, d))
    s = z @ b + math.sqrt(var_s - b @ b) * rng.normal(size=(trials, n))
    b_hat = np.einsum("tnd,tn->td", z, s) / n  # known zero means
    err2 = np.sum((b_hat - b) ** 2, 1)
    # E‖b̂ − b‖² = tr Cov(z s)/n = (d σ_S² + ‖b‖²)/n   (Isserlis)
    assert err2.mean() == pytest.approx((d * var_s + b @ b) / n, rel=0.05)
    assert np.mean(np.sqrt(err2) > radius_concentration(n, d, var_s, delta)) <= delta


def test_bootstrap_radius_covers_about_its_quantile():
    rng = np.random.default_rng(3)
    d, n, b = 3, 150, np.array([0.5, -0.3, 0.2])
    sigma = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    lower = np.linalg.cholesky(sigma)
    covered = []
    for _ in range(100):
        z = rng.normal(size=(n, d))
        x, s = z @ lower.T, z @ b + 0.8 * rng.normal(size=n)
        r = radius_bootstrap(x, s, sigma, B=100, quantile=0.9, rng=rng)
        covered.append(np.linalg.norm(whiten(lower, cross_covariance(x, s)) - b) <= r)
    assert np.mean(covered) >= 0.8


def test_value_of_labels_regimes_follow_the_closed_form_thresholds():
    sigma, c_y, c_s = np.eye(2), np.array([1.0, 0.0]), np.array([0.1, 0.5])  # |â·b| = 0.1
    var_s, eps, delta = 1.0, 0.1, 0.05
    t = threshold(eps, var_s)
    n_no_loss = labels_needed(t, 2, var_s, delta, margin=0.1)
    n_feasible = labels_needed(t, 2, var_s, delta)
    out = value_of_labels(sigma, c_y, c_s, var_s, eps, [n_feasible - 1, n_feasible, n_no_loss - 1, n_no_loss],
                          delta=delta, var_y=2.0)
    assert (out["n_feasible"], out["n_no_loss"]) == (n_feasible, n_no_loss)
    assert out["regime"] == [INFEASIBLE, CONSTRAINED, CONSTRAINED, NO_LOSS]
    assert out["objective"][3] == pytest.approx(1.0) and out["objective"][1] < out["objective"][2] < 1.0
    assert out["r2"][3] == pytest.approx(0.5)


def test_target_parallel_to_sensitive_and_one_feature():
    # a ∥ b: any unit u with uᵀb = ±t is optimal, objective (t‖a‖/‖b‖)² = t² for a = b
    w, info = fair_direction(np.eye(3), [1.0, 1.0, 0.0], [1.0, 1.0, 0.0], 0.5)
    assert info["objective"] == pytest.approx(0.25) and info["constraint"] == pytest.approx(0.5)
    assert w @ w == pytest.approx(1.0)
    with pytest.raises(UserError, match="no fair linear predictor exists"):
        fair_direction(np.eye(1), [1.0], [2.0], 0.5)
    with pytest.raises(UserError, match="singular"):
        fair_direction(np.ones((2, 2)), [1.0, 0.0], [0.0, 1.0], 0.5)
