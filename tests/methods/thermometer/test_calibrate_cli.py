"""`mmthink calibrate features | fit | apply` end to end on tiny-llama and three shipped tasks."""

import json


def test_calibrate_pipeline(cli, tmp_path):
    out = tmp_path / "run"
    common = ["--recipe", "tiny/thermometer", "model.name=tiny-llama", f"output_dir={out}", "data.limit=24",
              "data.tasks=[add_small,capitals,even_odd]", "data.freeform=false", "logging.progress=none"]
    res = cli("calibrate", "features", *common, "features.scoring=letters")
    assert res.exit_code == 0, res.stderr
    feats = sorted(p.name for p in (out / "features").glob("*.safetensors"))
    assert feats == ["add_small.safetensors", "capitals.safetensors", "even_odd.safetensors"]
    res = cli("calibrate", "fit", *common, "thermometer.steps=40", "thermometer.val_every=10",
              "thermometer.batch_size=16", "thermometer.hidden=8")
    assert res.exit_code == 0, res.stderr
    assert (out / "calibrator" / "config.json").is_file() and (out / "calibrator" / "model.safetensors").is_file()
    report = json.loads((out / "loto.json").read_text())
    assert set(report["tasks"]) == {"add_small", "capitals", "even_odd"}
    for task in report["tasks"].values():  # a temperature never changes the argmax
        assert len({round(task[m]["accuracy"], 9) for m in ("vanilla", "ts_cv", "thermometer", "oracle_ts")}) == 1
    assert list((out / "diagrams").glob("*.png"))
    res = cli("calibrate", "apply", "--calibrator", str(out / "calibrator"), "--features",
              str(out / "features" / "capitals.safetensors"), "--out", str(tmp_path / "applied.json"))
    assert res.exit_code == 0, res.stderr
    applied = json.loads((tmp_path / "applied.json").read_text())
    assert applied["temperature"] > 0 and len(applied["probs"]) == 24
    assert abs(sum(applied["probs"][0]) - 1) < 1e-6 and "calibrated" in applied
