"""Every user mistake prints one line on stderr, exits 2, shows no traceback and writes no run files."""

import subprocess
import sys

import pytest

TINY = "recipes/tiny/sft.yaml"
MIRAGE = "recipes/tiny/mirage.yaml"
SATORI = "recipes/tiny/satori.yaml"


def _write(path, text):
    path.write_text(text)
    return path


def _files(tmp_path):
    """Fixture files for the table, created lazily by name."""
    return {
        "bad_yaml": lambda: _write(tmp_path / "bad.yaml", "method: sft\noptim: [1, 2\n"),
        "list_yaml": lambda: _write(tmp_path / "list.yaml", "- 1\n- 2\n"),
        "unknown_top": lambda: _write(tmp_path / "u.yaml", f"base: {_abs(TINY)}\noptimm: {{}}\n"),
        "unknown_nested": lambda: _write(tmp_path / "n.yaml", f"base: {_abs(TINY)}\noptim:\n  lrr: 0.1\n"),
        "wrong_type": lambda: _write(tmp_path / "t.yaml", f"base: {_abs(TINY)}\noptim:\n  lr: fast\n"),
        "missing_base": lambda: _write(tmp_path / "mb.yaml", "base: nowhere.yaml\n"),
        "loop_a": lambda: (
            _write(tmp_path / "loop_b.yaml", "base: loop_a.yaml\n"),
            _write(tmp_path / "loop_a.yaml", "base: loop_b.yaml\n"),
        )[1],
        "bad_interp": lambda: _write(tmp_path / "i.yaml", f"base: {_abs(TINY)}\nlogging:\n  progress: ${{nope}}\n"),
        "other_method": lambda: _write(tmp_path / "o.yaml", f"base: {_abs(TINY)}\nmethod: mirage\n"),
        "bad_json": lambda: _write(tmp_path / "bad.jsonl", '{"prompt": "a", "completion": "b"}\n\n{"prompt": \n'),
        "no_completion": lambda: _write(tmp_path / "nc.jsonl", '{"prompt": "a"}\n'),
        "bad_role": lambda: _write(tmp_path / "r.jsonl", '{"messages": [{"role": "robot", "content": "hi"}]}\n'),
        "no_assistant": lambda: _write(tmp_path / "na.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n'),
        "content_type": lambda: _write(
            tmp_path / "ct.jsonl",
            '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": 3}\n',
        ),
        "csv": lambda: _write(tmp_path / "d.csv", "a,b\n"),
        "empty": lambda: _write(tmp_path / "empty.jsonl", "\n"),
        "no_config_dir": lambda: (tmp_path / "notamodel").mkdir() or tmp_path / "notamodel",
        "existing": lambda: _write(tmp_path / "sft.yaml", "x: 1\n"),
        "not_ckpt": lambda: (tmp_path / "notckpt").mkdir() or tmp_path / "notckpt",
        "vsp_train": lambda: _vsp(tmp_path),
        "math_rows": lambda: _write(tmp_path / "math.jsonl", '{"question": "1 + 1?", "answer": "2"}\n'),
        "tmp": lambda: tmp_path,
        "fair_table": lambda: _write(tmp_path / "t.csv", "x,name,y,s\n1,a,2,0\n2,b,3,\n3,c,5,1\n4,d,4,\n"),
        "fair_nos": lambda: _write(tmp_path / "nos.csv", "x,y,s\n1,2,\n2,3,\n3,5,\n"),
        "not_utf8": lambda: _write_bytes(tmp_path / "bin.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff"}\n'),
        "a_file": lambda: _write(tmp_path / "a_file", "x"),
        "sft_model": lambda: _sft_model(tmp_path),
        "garbage_model": lambda: _garbage_model(tmp_path),
        "run_folder": lambda: _run_folder(tmp_path),
        "vsp_no_image": lambda: _vsp_without_an_image(tmp_path),
        "vsp_bad": lambda: _write(tmp_path / "bad_vsp.jsonl", '{"text_input": "<image> go", "image_input": "a.png", '
                                  '"map_id": 1, "map_desc": [[1, 0], [0, 0]]}\n'),
    }


def _vsp(tmp_path):
    from mmthink.tasks import vsp

    train, _ = vsp.generate_split(tmp_path / "vsp", "planning", 0, {3: 2}, {3: 1})
    return train


def _vsp_without_an_image(tmp_path):
    import json

    train = _vsp(tmp_path)
    first = json.loads(train.read_text().splitlines()[0])
    (train.parent / first["image_input"]).unlink()
    return train


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _sft_model(tmp_path):
    """A transformers model folder as `train sft` writes it (config.json, model.safetensors)."""
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model

    loaded = load_model(ModelConfig(name="tiny-llama"), train=False)
    folder = tmp_path / "sft_model"
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def _garbage_model(tmp_path):
    folder = _sft_model(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    return folder


def _run_folder(tmp_path):
    run = tmp_path / "a_run"
    run.mkdir()
    _sft_model(tmp_path).rename(run / "model")
    return run


def _abs(rel):
    from pathlib import Path

    return str(Path(rel).resolve())


# (id, argv template, expected text in the error line). "{name}" refers to a fixture file above,
# "{out}" to the run folder that must stay absent.
CASES = [
    ("unknown-method", ["train", "foo", "--recipe", TINY], "unknown method 'foo'"),
    ("train-not-built", ["train", "tts", "--recipe", TINY], "'train tts' is not implemented yet"),
    ("eval-not-built", ["eval", "mole", "--checkpoint", "x", "--data", "y"], "not implemented yet"),
    ("serve-no-model", ["serve"], "--model"),
    ("serve-missing-model", ["serve", "--model", "runs/nowhere/model"], "model path not found"),
    ("serve-run-folder", ["serve", "--model", "{tmp}"], "has no config.json"),
    ("serve-missing-calibrator", ["serve", "--model", "tiny-llama", "--calibrator", "{tmp}/nope"],
     "calibrator folder not found"),
    ("serve-bad-dtype", ["serve", "--model", "tiny-llama", "--dtype", "float8"], "model.dtype"),
    ("train-evoscale-stage-order", ["train", "evoscale", "--recipe", "tiny/evoscale", "stages=[rl,sft]"], "stages"),
    ("eval-evoscale-bad-scorer", ["eval", "evoscale", "--checkpoint", "tiny-llama", "--data", "x.jsonl", "--recipe",
                                  "tiny/evoscale", "evo.scorer=judge"], "evo.scorer"),
    ("calibrate-missing-recipe", ["calibrate", "fit", "--recipe", "x"], "recipe file not found: x"),
    ("calibrate-no-features", ["calibrate", "fit", "--recipe", "tiny/thermometer", "features.dir={tmp}/nope"],
     "features folder not found"),
    ("calibrate-bad-key", ["calibrate", "fit", "--recipe", "tiny/thermometer", "thermometer.hiden=3"],
     "unknown override key 'thermometer.hiden'"),
    ("calibrate-missing-task", ["calibrate", "features", "--recipe", "tiny/thermometer", "data.tasks=[nope]"],
     "data.tasks: no file for ['nope']"),
    ("calibrate-apply-missing", ["calibrate", "apply", "--calibrator", "{tmp}", "--features", "{tmp}/x.safetensors"],
     "features file not found"),
    ("fair-missing-table", ["fair", "fit", "--data", "nope.csv", "--target", "y", "--sensitive", "s",
                            "--out", "{tmp}/f"], "nope.csv"),
    ("fair-no-target", ["fair", "fit", "--data", "{fair_table}", "--sensitive", "s", "--out", "{tmp}/f"],
     "'data.target' is required"),
    ("fair-missing-column", ["fair", "fit", "--data", "{fair_table}", "--target", "y", "--sensitive", "zz",
                             "--out", "{tmp}/f"], "'zz'"),
    ("fair-non-numeric", ["fair", "fit", "--data", "{fair_table}", "--target", "y", "--sensitive", "s",
                          "--features", "x,name", "--out", "{tmp}/f"], "name"),
    ("fair-eps", ["fair", "fit", "--data", "{fair_table}", "--target", "y", "--sensitive", "s", "--epsilon", "0",
                  "--out", "{tmp}/f"], "recipe key 'epsilon' must be > 0"),
    ("fair-no-labelled-s", ["fair", "fit", "--data", "{fair_nos}", "--target", "y", "--sensitive", "s",
                            "--out", "{tmp}/f"], "has no values"),
    ("fair-bad-method", ["fair", "fit", "--data", "{fair_table}", "--target", "y", "--sensitive", "s",
                         "--method", "magic", "--out", "{tmp}/f"], "'algorithm' must be one of"),
    ("fair-bad-data", ["fair", "data", "census"], "expected diabetes or synthetic"),
    ("say-not-built", ["say"], "not implemented yet"),
    ("missing-recipe", ["train", "sft", "--recipe", "nope.yaml"], "recipe file not found: nope.yaml"),
    ("bad-yaml", ["train", "sft", "--recipe", "{bad_yaml}"], "invalid YAML"),
    ("recipe-not-mapping", ["train", "sft", "--recipe", "{list_yaml}"], "must be a mapping"),
    ("unknown-key", ["train", "sft", "--recipe", "{unknown_top}"], "unknown recipe key 'optimm' (did you mean 'optim'?)"),
    ("unknown-nested-key", ["train", "sft", "--recipe", "{unknown_nested}"], "did you mean 'optim.lr'?"),
    ("wrong-type", ["train", "sft", "--recipe", "{wrong_type}"], "'optim.lr' has the wrong type"),
    ("override-no-equals", ["train", "sft", "--recipe", TINY, "optim.lr"], "must look like key=value"),
    ("override-unknown", ["train", "sft", "--recipe", TINY, "optim.lrr=1"], "unknown override key 'optim.lrr'"),
    ("override-wrong-type", ["train", "sft", "--recipe", TINY, "runner.max_steps=ten"], "'runner.max_steps'"),
    ("missing-base", ["train", "sft", "--recipe", "{missing_base}"], "recipe file not found"),
    ("base-loop", ["train", "sft", "--recipe", "{loop_a}"], "loops back"),
    ("bad-interpolation", ["train", "sft", "--recipe", "{bad_interp}"], "'logging.progress'"),
    ("other-method", ["train", "sft", "--recipe", "{other_method}"], "is for method 'mirage'"),
    ("bad-choice", ["train", "sft", "--recipe", TINY, "optim.scheduler=step"], "'optim.scheduler' must be one of"),
    ("bad-precision", ["train", "sft", "--recipe", TINY, "runner.mixed_precision=fp8"], "runner.mixed_precision"),
    ("batch-not-divisible", ["train", "sft", "--recipe", TINY, "runner.batch_size=10", "runner.micro_batch_size=4"],
     "not a multiple"),
    ("max-length", ["train", "sft", "--recipe", TINY, "data.max_length=1"], "data.max_length"),
    ("resume-not-checkpoint", ["train", "sft", "--recipe", TINY, "runner.resume={not_ckpt}"], "not a checkpoint folder"),
    ("missing-data", ["train", "sft", "--recipe", TINY, "data.train_file=nope.jsonl"], "data file not found: nope.jsonl"),
    ("bad-json-line", ["train", "sft", "--recipe", TINY, "data.train_file={bad_json}"], "bad.jsonl:3: not valid JSON"),
    ("row-missing-field", ["train", "sft", "--recipe", TINY, "data.train_file={no_completion}"],
     "nc.jsonl:1: field 'completion': missing"),
    ("row-bad-role", ["train", "sft", "--recipe", TINY, "data.train_file={bad_role}"], "r.jsonl:1: field 'messages[0].role'"),
    ("row-no-assistant", ["train", "sft", "--recipe", TINY, "data.train_file={no_assistant}"], "no assistant turn"),
    ("row-wrong-type", ["train", "sft", "--recipe", TINY, "data.train_file={content_type}"],
     "ct.jsonl:2: field 'completion': expected str, got int"),
    ("data-extension", ["train", "sft", "--recipe", TINY, "data.train_file={csv}"], "expected .jsonl or .parquet"),
    ("empty-data", ["train", "sft", "--recipe", TINY, "data.train_file={empty}"], "holds no rows"),
    ("eval-data-missing", ["train", "sft", "--recipe", TINY, "data.eval_file=nope_eval.jsonl"], "nope_eval.jsonl"),
    ("hub-id-offline", ["train", "sft", "--recipe", TINY, "model.name=someorg/not-a-model"],
     "model 'someorg/not-a-model' is not available"),
    ("model-dir-no-config", ["train", "sft", "--recipe", TINY, "model.name={no_config_dir}"], "has no config.json"),
    ("model-path-missing", ["train", "sft", "--recipe", TINY, "model.name=./no/such/model"], "model path not found"),
    ("quant-bits", ["train", "sft", "--recipe", TINY, "model.quantization.bits=3"], "must be one of 4, 8"),
    ("quant-needs-lora", ["train", "sft", "--recipe", TINY, "model.quantization.bits=4"], "needs model.lora.enabled"),
    ("too-little-data", ["train", "sft", "--recipe", TINY, "data.limit=3"], "fewer than one optimiser step"),
    ("targets-truncated", ["train", "sft", "--recipe", TINY, "data.max_length=4"], "no training example keeps a target"),
    ("eval-missing-checkpoint", ["eval", "sft", "--checkpoint", "./runs/none/model", "--data", "data/toy/arith_eval.jsonl"],
     "model path not found"),
    ("mirage-grad-ckpt-stage2", ["train", "mirage", "--recipe", MIRAGE, "model.gradient_checkpointing=true"],
     "gradient_checkpointing must be false in stages 2 and 3"),
    ("mirage-stages-order", ["train", "mirage", "--recipe", MIRAGE, "stages=[3,1]"], "recipe key 'stages' must be"),
    ("mirage-stage3-unknown-reward", ["train", "mirage", "--recipe", MIRAGE, "stages=[3]",
                                      "stage3.rewards=[{name: nope}]"], "unknown reward 'nope'"),
    ("mirage-stage3-group", ["train", "mirage", "--recipe", MIRAGE, "stages=[3]", "stage3.rollout.group_size=1"],
     "GRPO needs rl.rollout.group_size >= 2"),
    ("satori-bad-stage", ["train", "satori", "--recipe", SATORI, "stages=[rl,format]"], "recipe key 'stages' must be"),
    ("satori-bad-demos", ["train", "satori", "--recipe", SATORI, "format.demos=fancy"], "'format.demos' must be one of"),
    ("satori-rae-ratio", ["train", "satori", "--recipe", SATORI, "rae.ratio=2"], "'rae.ratio' must be in [0, 1]"),
    ("satori-estimator", ["train", "satori", "--recipe", SATORI, "rl.advantage.estimator=a2c"],
     "'rl.advantage.estimator' must be one of"),
    ("satori-missing-data", ["train", "satori", "--recipe", SATORI, "data.train_file=nope.jsonl"],
     "data file not found: nope.jsonl"),
    ("data-coat-missing", ["data", "coat", "--in", "nope.jsonl", "--out", "x.jsonl"], "data file not found: nope.jsonl"),
    ("data-coat-bad-mix", ["data", "coat", "--in", "{math_rows}", "--out", "x.jsonl", "--mix", "reflect"],
     "--mix entries look like"),
    ("data-math-bad-level", ["data", "math", "--out", "{tmp}/m", "--levels", "9"], "level"),
    ("mirage-latent-mode", ["train", "mirage", "--recipe", MIRAGE, "latent.mode=random"], "'latent.mode' must be one of"),
    ("mirage-text-model", ["train", "mirage", "--recipe", MIRAGE, "model.name=tiny-llama", "data.train_file={vsp_train}",
                           "data.eval_file=null"],
     "not a Qwen-VL-class image-text model"),
    ("mirage-bad-row", ["train", "mirage", "--recipe", MIRAGE, "data.train_file={vsp_bad}"], "field 'map_desc'"),
    ("vsp-bad-counts", ["data", "vsp", "--out", "{not_ckpt}", "--train-counts", "1,2"], "--train-counts must be four"),
    ("vsp-bad-task", ["data", "vsp", "--out", "{not_ckpt}", "--task", "maze"], "--task must be one of"),
    ("recipes-show-unknown", ["recipes", "show", "nope"], "recipe file not found: nope"),
    ("recipes-cp-exists", ["recipes", "cp", "sft", "{existing}"], "exists; not overwriting"),
    # Numbers: finite and in range, for every schema, before any work.
    ("lr-nan", ["train", "sft", "--recipe", TINY, "optim.lr=nan"], "'optim.lr' must be a finite number; got nan"),
    ("lr-inf", ["train", "sft", "--recipe", TINY, "optim.lr=inf"], "'optim.lr' must be a finite number; got inf"),
    ("lr-zero", ["train", "sft", "--recipe", TINY, "optim.lr=0"], "'optim.lr' must be > 0"),
    ("warmup-ratio", ["train", "sft", "--recipe", TINY, "optim.warmup_ratio=5"], "'optim.warmup_ratio' must be in [0, 1]"),
    ("grad-norm", ["train", "sft", "--recipe", TINY, "optim.max_grad_norm=-1"], "'optim.max_grad_norm' must be >= 0"),
    ("betas", ["train", "sft", "--recipe", TINY, "optim.betas=[0.9,1.5]"], "'optim.betas' must be in [0, 1)"),
    ("eval-limit", ["train", "sft", "--recipe", TINY, "eval.limit=-1"], "'eval.limit' must be >= 1"),
    ("eval-batch", ["train", "sft", "--recipe", TINY, "eval.batch_size=0"], "'eval.batch_size' must be >= 1"),
    ("eval-new-tokens", ["train", "sft", "--recipe", TINY, "eval.max_new_tokens=0"], "'eval.max_new_tokens' must be >= 1"),
    ("save-every", ["train", "sft", "--recipe", TINY, "runner.save_every=-2"], "'runner.save_every' must be >= 0"),
    ("section-as-value", ["train", "sft", "--recipe", TINY, "runner=5"], "recipe key 'runner' is a section"),
    ("lora-dropout", ["train", "sft", "--recipe", TINY, "model.lora.dropout=1"], "'model.lora.dropout' must be in [0, 1)"),
    ("satori-rl-lr", ["train", "satori", "--recipe", SATORI, "rl.optim.lr=nan"], "'rl.optim.lr' must be a finite"),
    ("satori-top-p", ["train", "satori", "--recipe", SATORI, "rl.rollout.top_p=0"], "'rl.rollout.top_p' must be in (0, 1]"),
    ("satori-temperature", ["train", "satori", "--recipe", SATORI, "rl.rollout.temperature=-1"],
     "'rl.rollout.temperature' must be > 0"),
    ("mirage-gamma", ["train", "mirage", "--recipe", MIRAGE, "latent.gamma=-0.5"], "'latent.gamma' must be >= 0"),
    ("mirage-stage2-lr", ["train", "mirage", "--recipe", MIRAGE, "stage2.optim.lr=inf"], "'stage2.optim.lr' must be a finite"),
    ("edl-lr", ["train", "edl", "--recipe", "recipes/tiny/edl.yaml", "edl.lr=inf"], "'edl.lr' must be a finite"),
    ("edl-batch", ["train", "edl", "--recipe", "recipes/tiny/edl.yaml", "edl.batch_size=0"], "'edl.batch_size' must be >= 1"),
    ("bbpt-popsize", ["train", "bbpt", "--recipe", "recipes/tiny/bbpt.yaml", "cma.popsize=0"], "'cma.popsize' must be >= 1"),
    ("bbpt-sigma", ["train", "bbpt", "--recipe", "recipes/tiny/bbpt.yaml", "cma.sigma0=nan"], "'cma.sigma0' must be a finite"),
    ("calibrate-val-fraction", ["calibrate", "fit", "--recipe", "tiny/thermometer", "thermometer.val_fraction=1"],
     "'thermometer.val_fraction' must be in [0, 1)"),
    ("calibrate-lr", ["calibrate", "fit", "--recipe", "tiny/thermometer", "thermometer.lr=-1"], "'thermometer.lr' must be > 0"),
    ("fair-quantile", ["fair", "fit", "--data", "{fair_table}", "--target", "y", "--sensitive", "s", "--out", "{tmp}/f",
                       "bootstrap.quantile=2"], "'bootstrap.quantile' must be in (0, 1]"),
    ("fair-delta", ["fair", "fit", "--data", "{fair_table}", "--target", "y", "--sensitive", "s", "--out", "{tmp}/f",
                    "delta=1"], "'delta' must be in (0, 1)"),
    ("satori-kl", ["train", "satori", "--recipe", SATORI, "rl.loss.kl_coef=-0.1"], "'rl.loss.kl_coef' must be >= 0"),
    ("rl-steps", ["train", "satori", "--recipe", SATORI, "rl.steps=0"], "'rl.steps' must be >= 1"),
    ("plain-every", ["train", "sft", "--recipe", TINY, "logging.plain_every_s=-1"], "'logging.plain_every_s' must be >= 0"),
    # Files: non-UTF-8 rows, outputs where nothing can be written, broken or foreign checkpoints.
    ("not-utf8", ["train", "sft", "--recipe", TINY, "data.train_file={not_utf8}"], "bin.jsonl:2: not UTF-8 text"),
    ("output-dir-is-file", ["train", "edl", "--recipe", "recipes/tiny/edl.yaml", "output_dir={a_file}"],
     "output_dir"),
    ("output-dir-under-file", ["train", "edl", "--recipe", "recipes/tiny/edl.yaml", "output_dir={a_file}/run"],
     "is a file, not a folder"),
    ("eval-out-is-file", ["eval", "sft", "--checkpoint", "tiny-llama", "--data", "data/toy/arith_eval.jsonl",
                          "--out", "{a_file}"], "--out"),
    ("data-out-is-file", ["data", "toy", "--out", "{a_file}"], "--out"),
    ("coat-out-is-folder", ["data", "coat", "--in", "{math_rows}", "--out", "{tmp}"], "is a folder, not a file"),
    ("recipes-cp-under-file", ["recipes", "cp", "sft", "{a_file}/x.yaml"], "is a file, not a folder"),
    ("calibrate-apply-out", ["calibrate", "apply", "--calibrator", "{tmp}", "--features", "{tmp}/x.safetensors",
                             "--out", "{tmp}"], "is a folder, not a file"),
    ("truncated-weights", ["eval", "sft", "--checkpoint", "{garbage_model}", "--data", "data/toy/arith_eval.jsonl"],
     "not readable safetensors"),
    ("edl-given-sft-model", ["eval", "edl", "--checkpoint", "{sft_model}", "--data", "digits"],
     "is not an EDL model folder"),
    ("eval-run-folder", ["eval", "sft", "--checkpoint", "{run_folder}", "--data", "data/toy/arith_eval.jsonl"],
     "is a run or checkpoint folder: its model is"),
    ("fair-data-n0", ["fair", "data", "synthetic", "--n", "0", "--out", "{tmp}/fd"], "--n must be >= 2"),
    ("fair-curve-negative-n", ["fair", "curve", "--data", "{fair_table}", "--target", "y", "--sensitive", "s",
                               "--out", "{tmp}/f", "curve_ns=[-5,10]"], "'curve_ns' must be >= 1; got -5"),
    ("mirage-missing-image", ["train", "mirage", "--recipe", MIRAGE, "data.train_file={vsp_no_image}",
                              "data.eval_file=null"], "row 1: image_input"),
    ("lora-no-targets", ["train", "sft", "--recipe", TINY, "model.lora.enabled=true", "model.lora.target_modules=[]"],
     "'model.lora.target_modules' is empty"),
    ("recipe-not-yaml", ["recipes", "show", "{csv}"], "is not a recipe: recipes are .yaml files"),
    # Usage errors are one line too.
    ("usage-missing-option", ["train", "sft"], "Missing option '--recipe'"),
    ("usage-unknown-flag", ["fair", "fit", "--bogus"], "No such option: --bogus"),
    ("usage-unknown-command", ["nosuch"], "No such command 'nosuch'"),
    ("usage-apply-no-calibrator", ["calibrate", "apply", "--features", "x.safetensors"], "Missing option '--calibrator'"),
    # --dry-run targets.
    ("dry-run-strategy", ["train", "edl", "--recipe", "recipes/tiny/edl.yaml", "--dry-run", "--strategy", "zero9"],
     "--strategy must be one of"),
    ("dry-run-gpus", ["train", "edl", "--recipe", "recipes/tiny/edl.yaml", "--dry-run", "--gpus", "0"], "--gpus must be >= 1"),
]


@pytest.mark.parametrize("case_id,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_user_error(cli, tmp_path, case_id, argv, expected):
    files = _files(tmp_path)
    out = tmp_path / "run"
    args = []
    for a in argv:
        for name, make in files.items():
            if "{" + name + "}" in a:
                a = a.replace("{" + name + "}", str(make()))
        args.append(a)
    if args[0] == "train" and args[1] in ("sft", "mirage", "satori"):
        args.append(f"output_dir={out}")
    res = cli(*args)
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    assert not out.exists(), f"{case_id} left {sorted(p.name for p in out.rglob('*'))}"


def test_table_is_large_enough():
    assert len(CASES) >= 100


def test_a_run_whose_loss_becomes_non_finite_stops_without_a_model(cli, tmp_path):
    out = tmp_path / "run"
    res = cli("train", "sft", "--recipe", TINY, "optim.lr=1e30", "runner.max_steps=20", "data.eval_file=null",
              "logging.progress=none", f"output_dir={out}")
    assert res.exit_code == 2
    assert res.stderr.strip().startswith("mmthink: error: the loss became non-finite at step")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (out / "model").exists()


def test_bitsandbytes_missing(cli, tmp_path, monkeypatch):
    from mmthink.models import loading

    monkeypatch.setattr(loading, "bnb_problem", lambda: "bitsandbytes is not installed (pip install bitsandbytes)")
    res = cli("train", "sft", "--recipe", TINY, "model.quantization.bits=4", "model.lora.enabled=true",
              f"output_dir={tmp_path / 'run'}")
    assert res.exit_code == 2
    assert "needs bitsandbytes: bitsandbytes is not installed" in res.stderr
    assert not (tmp_path / "run").exists()


def test_quantization_refused_under_fsdp(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    res = cli("train", "sft", "--recipe", TINY, "model.quantization.bits=4", "model.lora.enabled=true")
    assert res.exit_code == 2 and "cannot be combined with FSDP" in res.stderr


def test_real_process_exit_code_and_single_line(tmp_path):
    """The console entry point (not only the in-process runner) exits 2 with one line and no traceback."""
    res = subprocess.run(
        [sys.executable, "-m", "mmthink.cli", "train", "sft", "--recipe", TINY, "optim.lrr=1"],
        capture_output=True, text=True,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == "mmthink: error: unknown override key 'optim.lrr' (did you mean 'optim.lr'?)"


@pytest.mark.parametrize("method,recipe", [("sft", TINY), ("satori", SATORI), ("mirage", MIRAGE)])
def test_a_run_never_overwrites_the_checkpoint_it_starts_from(cli, tmp_path, method, recipe):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep").write_text("x")
    res = cli("train", method, "--recipe", recipe, f"model.name={tmp_path / 'model'}", f"output_dir={tmp_path}",
              "data.train_file=x.jsonl")
    assert res.exit_code == 2 and "would be overwritten" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
