"""`mmthink train edl` and `mmthink eval edl` through the CLI on digits."""

import json


def test_train_and_eval_edl(cli, tmp_path):
    out = tmp_path / "run"
    res = cli("train", "edl", "--recipe", "tiny/edl", f"output_dir={out}", "logging.progress=none", "edl.epochs=5")
    assert res.exit_code == 0, res.stderr
    trained = json.loads((out / "model" / "eval.json").read_text())
    res = cli("eval", "edl", "--checkpoint", str(out / "model"), "--data", "digits", "--recipe", "tiny/edl",
              "--out", str(tmp_path / "ev"))
    assert res.exit_code == 0, res.stderr
    again = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert again == trained  # the saved model reloads and the split is rebuilt from its seed
    assert again["accuracy"] > 0.8 and 0 <= again["auroc/mutual_information"] <= 1
    res = cli("train", "edl", "--recipe", "tiny/edl", "edl.objective=magic", f"output_dir={tmp_path / 'bad'}")
    assert res.exit_code == 2 and "edl.objective" in res.stderr and not (tmp_path / "bad").exists()
