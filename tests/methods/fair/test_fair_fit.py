import math

import numpy as np
import pandas as pd
import pytest
import torch

from mmthink.errors import UserError
from mmthink.methods.fair.bootstrap import group_gap, violations, weighted_corr
from mmthink.methods.fair.config import BootstrapConfig
from mmthink.methods.fair.data import export_diabetes, gaussian_table, read_table, select_columns
from mmthink.methods.fair.fit import (
    fit_fair, label_curve, load_result, plot_value_of_labels, predict, save_result, score_result,
)
from mmthink.methods.fair.gaussian import rho_from_mutual_information


def _t(*a):
    return [torch.tensor(v, dtype=torch.float64) for v in a]


def test_weighted_measures_golden():
    p, s = _t([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0])
    onehot = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    W = torch.tensor([[0.25] * 4, [0.5, 0.0, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    # group means (1.5, 3.5) → 2; (1, 3.5) → 2.5; only group 0 present → 0
    np.testing.assert_allclose(group_gap(W, p, onehot), [2.0, 2.5, 0.0])
    # ρ(p, s) uniform: cov = 0.5, var_p = 1.25, var_s = 0.25 → 0.5/√(0.3125)
    assert weighted_corr(W[:1], p, s)[0].item() == pytest.approx(0.5 / math.sqrt(0.3125))
    # separation (classification): within y = 0 rows {1, 3} and y = 1 rows {2, 4}: gaps 2 and 2
    y = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert violations(p, s, y, W[:1], "separation", "dp", "classification", onehot)[0].item() == pytest.approx(2.0)


def _table(**kw):
    return gaussian_table(3000, 5, 400, seed=1, **kw)


@pytest.mark.parametrize("mutate, kwargs, message", [
    (None, dict(target="nope", sensitive="zz"), r"column\(s\) not in the table: 'nope', 'zz'"),
    (lambda f: f.assign(city="x"), dict(features=["x0", "city"]), r"non-numeric feature column\(s\): 'city'"),
    (lambda f: f.assign(s=np.nan), {}, "sensitive column 's' has no values"),
    (None, dict(eps=0.0), r"eps must be > 0 \(got 0.0\)"),
    (None, dict(eps=-0.5), r"eps must be > 0"),
    (lambda f: f.assign(y=f.y.where(f.index > 2)), {}, "target column 'y' has 3 missing values"),
    (lambda f: f.assign(x1=1.0), {}, r"constant feature column\(s\): 'x1'"),
    (lambda f: f.assign(x2=f.x2.where(f.index > 0)), {}, r"feature column\(s\) with missing values: 'x2'"),
    (None, dict(method="magic"), "method must be one of"),
    (None, dict(task="classification"), "needs a two-valued target"),
])
def test_bad_inputs_are_one_line_user_errors(mutate, kwargs, message):
    frame = _table().frame
    frame = mutate(frame) if mutate else frame
    args = dict(target="y", sensitive="s", eps=0.1) | kwargs
    with pytest.raises(UserError, match=message) as exc:
        fit_fair(frame, **args)
    assert "\n" not in str(exc.value)


def test_unreadable_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="data file not found"):
        read_table(tmp_path / "none.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(UserError, match="unsupported table format '.xlsx'"):
        read_table(tmp_path / "t.xlsx")


def test_multigroup_sensitive_needs_the_bootstrap_method_which_constrains_the_parity_gap():
    frame = _table().frame
    frame["s"] = pd.cut(frame.s, [-np.inf, -0.5, 0.5, np.inf], labels=["lo", "mid", "hi"]).astype(object)
    with pytest.raises(UserError, match="has 3 groups: use --method bootstrap"):
        fit_fair(frame, "y", "s", eps=0.1, method="gaussian")
    with pytest.raises(UserError, match="measure 'corr' needs a binary or continuous sensitive column"):
        fit_fair(frame, "y", "s", eps=0.1, method="bootstrap", bootstrap=BootstrapConfig(measure="corr"))
    res = fit_fair(frame, "y", "s", eps=0.1, method="bootstrap", bootstrap=BootstrapConfig(replicates=10))
    assert res.measure == "dp" and res.details["violation_q"] <= 0.1
    assert set(res.metrics["train"]["fairness"]) == {"independence_dp", "separation_dp"}


def _fresh_corr(result, seed=1, n=20000, **kw):
    fresh = gaussian_table(n, 5, n, seed=seed, sample_seed=123, **kw)
    f = predict(result, fresh.frame[result.features].to_numpy())
    return abs(np.corrcoef(f, fresh.s_full)[0, 1])


def test_bootstrap_meets_the_budget_on_fresh_rows_where_least_squares_does_not():
    table = _table()
    eps = 0.01
    budget = rho_from_mutual_information(eps)
    x, y = table.frame[[f"x{i}" for i in range(5)]].to_numpy(), table.frame.y.to_numpy()
    ols = np.linalg.lstsq(np.c_[x, np.ones(len(y))], y, rcond=None)[0]
    fresh = gaussian_table(20000, 5, 20000, seed=1, sample_seed=123)
    ols_corr = abs(np.corrcoef(fresh.frame[[f"x{i}" for i in range(5)]].to_numpy() @ ols[:5], fresh.s_full)[0, 1])
    assert ols_corr > 2 * budget
    res = fit_fair(table.frame, "y", "s", eps=eps, method="bootstrap", holdout=0.2,
                   bootstrap=BootstrapConfig(replicates=30))
    assert res.regime == "constrained" and res.guarantee_level == 1.0
    assert res.details["violation_q"] <= budget < res.details["unconstrained_violation_q"]
    assert _fresh_corr(res) <= budget
    assert res.metrics["holdout"]["within_budget"] and res.metrics["holdout"]["utility"]["r2"] > 0.5


def test_bootstrap_classification_with_binary_s_under_a_parity_gap_budget():
    table = _table(binary_target=True, binary_sensitive=True)
    res = fit_fair(table.frame, "y", "s", eps=0.05, method="bootstrap",
                   bootstrap=BootstrapConfig(replicates=20, measure="dp"))
    assert res.task == "classification" and res.measure == "dp" and res.model == "logistic"
    assert res.details["violation_q"] <= 0.05 < res.details["unconstrained_violation_q"]
    fresh = gaussian_table(20000, 5, 20000, seed=1, sample_seed=123, binary_target=True, binary_sensitive=True)
    p = predict(res, fresh.frame[res.features].to_numpy())
    assert abs(p[fresh.s_full == 1].mean() - p[fresh.s_full == 0].mean()) <= 0.05
    assert res.metrics["train"]["utility"]["accuracy"] > 0.6


def test_bootstrap_separation_regression_meets_the_partial_correlation_budget():
    res = fit_fair(_table().frame, "y", "s", eps=0.005, method="bootstrap",
                   bootstrap=BootstrapConfig(notion="separation", replicates=20))
    assert res.details["violation_q"] <= rho_from_mutual_information(0.005)
    assert res.metrics["train"]["fairness"]["separation_corr"] <= res.budget


def test_robust_fit_is_fair_for_the_population_and_the_nominal_one_may_not_be():
    table = gaussian_table(6000, 5, 3000, seed=1)
    eps = 0.05
    budget = rho_from_mutual_information(eps)
    res = fit_fair(table.frame, "y", "s", eps=eps, method="robust")
    w = res.params["coef"]
    true_corr = abs(w @ table.c_s) / math.sqrt(w @ table.sigma_x @ w * table.var_s)
    assert true_corr <= budget and res.guarantee_level == 0.95
    nominal = fit_fair(table.frame, "y", "s", eps=eps, method="gaussian")
    assert nominal.metrics["train"]["utility"]["r2"] > res.metrics["train"]["utility"]["r2"]
    with pytest.raises(UserError, match="label more S rows or raise eps"):
        fit_fair(_table().frame, "y", "s", eps=0.01, method="robust")


def test_save_load_roundtrip(tmp_path):
    table = _table(binary_target=True)
    for method, cfg in (("robust", None), ("bootstrap", BootstrapConfig(model="mlp", replicates=10, steps=50))):
        res = fit_fair(table.frame, "y", "s", eps=0.2, method=method, radius="bootstrap", bootstrap=cfg)
        save_result(tmp_path / method, res)
        back = load_result(tmp_path / method)
        x = table.frame[res.features].to_numpy()
        np.testing.assert_allclose(predict(back, x), predict(res, x))
        assert back.metrics == res.metrics and back.guarantee == res.guarantee
        assert not list((tmp_path / method).glob(".*tmp*"))
    with pytest.raises(UserError, match="holds no fair result"):
        load_result(tmp_path)


def test_diabetes_export_and_fit(tmp_path):
    path = export_diabetes(tmp_path, n_labelled=200)
    frame = pd.read_csv(path)
    assert len(frame) == 442 and frame.sex.notna().sum() == 200
    res = fit_fair(path, "target", "sex", eps=0.05, method="bootstrap", bootstrap=BootstrapConfig(replicates=10))
    assert "sex" not in res.features and res.measure == "corr" and res.task == "regression"
    assert score_result(res, select_columns(frame, "target", "sex"))["n_labelled"] == 200


def test_label_curve_and_plot(tmp_path):
    table = gaussian_table(2000, 3, 1500, seed=2)
    curves = label_curve(table.frame, "y", "s", eps=0.1, ns=[20, 1500], methods=("gaussian", "robust"))
    assert curves["methods"]["robust"]["regime"][0] == "infeasible"
    assert math.isnan(curves["methods"]["robust"]["utility"][0])
    assert curves["methods"]["robust"]["regime"][1] in ("no loss", "constrained")
    png = plot_value_of_labels(curves, tmp_path / "curve.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_the_holdout_split_holds_labelled_rows_when_seeds_agree(tmp_path):
    # `fair data` hides S with rng(seed); the hold-out split must not draw the same permutation.
    from mmthink.methods.fair.data import export_diabetes
    from mmthink.methods.fair.fit import fit_fair

    path = export_diabetes(tmp_path, n_labelled=200, sensitive="sex", seed=0)
    result = fit_fair(path, "target", "sex", None, 0.5, "gaussian", holdout=0.2, seed=0)
    assert result.metrics["holdout"]["n_labelled"] > 0


def test_strict_json_writes_null_for_nan():
    import json

    from mmthink.io import strict_json

    text = json.dumps(strict_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}}),
                      allow_nan=False)
    assert text == '{"a": null, "b": [1.0, null], "c": {"d": null}}'
