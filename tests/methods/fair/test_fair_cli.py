"""`mmthink fair data | fit | curve` end to end on a synthetic Gaussian table."""

import json


def test_fair_cli_round_trip(cli, tmp_path):
    res = cli("fair", "data", "synthetic", "--out", str(tmp_path / "d"), "--n", "3000", "--d", "4",
              "--n-labelled", "400")
    assert res.exit_code == 0, res.stderr
    table = tmp_path / "d" / "synthetic.csv"
    header = table.read_text().splitlines()[0].split(",")
    args = ["--data", str(table), "--target", "y", "--sensitive", "s", "--epsilon", "0.02"]
    for method in ("gaussian", "robust"):
        out = tmp_path / method
        res = cli("fair", "fit", *args, "--method", method, "--out", str(out), "radius=bootstrap")
        assert res.exit_code == 0, res.stderr
        summary = json.loads((out / "fair.json").read_text())
        if method == "robust":  # guaranteed; the nominal plug-in only aims at the budget
            assert summary["train/within_budget"] is True and summary["train/violation"] <= summary["budget"]
        else:
            assert summary["train/violation"] < 1.25 * summary["budget"]
        assert summary["holdout/utility/r2"] > 0.1
        assert (out / "predictor" / "result.json").is_file() and (out / "predictor" / "weights.npz").is_file()
    res = cli("fair", "curve", *args, "--out", str(tmp_path / "curve"), "curve_ns=[100,400]",
              "curve_algorithms=[gaussian,robust]")
    assert res.exit_code == 0, res.stderr
    curves = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert curves["n"] == [100, 400] and set(curves["methods"]) == {"gaussian", "robust"}
    assert (tmp_path / "curve" / "value_of_labels.png").stat().st_size > 1000
    assert "y" in header and "s" in header
