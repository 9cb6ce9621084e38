"""train tango and eval tango end to end on tiny-llama: the schedule, the files, the baseline, exact
resume, the verifier judging a file of solutions, and bad input."""

import json

import pytest

from mmthink.methods.tango.config import Schedule
from mmthink.methods.tango.cotrain import generator_steps_after_warmup, mode_at, step_truths
from mmthink.methods.tango.formats import solution_text

TINY = ["--recipe", "recipes/tiny/tango.yaml", "model.name=tiny-llama", "verifier_model.name=tiny-llama",
        "stages=[format,rl]", "verifier_format.runner.max_steps=2", "verifier_format.runner.batch_size=4",
        "data.n_train=16", "data.n_eval=4", "format.runner.max_steps=2", "format.runner.batch_size=4",
        "format.runner.micro_batch_size=4", "schedule.verifier_warmup=1", "generator.prompts_per_step=2",
        "verifier.prompts_per_step=2", "generator.rollout.max_new_tokens=6", "verifier.rollout.max_new_tokens=6",
        "eval.limit=2", "eval.step_rows=2", "eval.max_new_tokens=6", "logging.progress=none"]


def _metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_the_schedule_is_the_official_one():
    s = Schedule()  # 440 steps: 40 verifier warm-up steps, then 3 generator : 1 verifier
    modes = [mode_at(i, s) for i in range(48)]
    assert all(m == ("verifier", True) for m in modes[:40])
    assert [m[0][0] for m in modes[40:48]] == list("gggvgggv") and not modes[40][1]
    assert generator_steps_after_warmup(s) == 300
    assert mode_at(5, Schedule(verifier=False)) == ("generator", False)
    assert mode_at(0, Schedule(generator_warmup=2)) == ("generator", True)
    assert mode_at(2, Schedule(generator_warmup=2, verifier_warmup=1)) == ("verifier", True)


def test_step_truths_recheck_each_step_s_equation():
    text = solution_text(["3 + 4 = 7.", "7 * 2 = 15.", "no equation here"], "15")
    assert step_truths(text) == [True, False, None]


def test_cotraining_writes_both_models_and_follows_the_schedule(tmp_path, cli):
    out = tmp_path / "run"
    res = cli("train", "tango", *TINY, f"output_dir={out}", "schedule.steps=5")
    assert res.exit_code == 0, res.stderr
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "verifier" / "model" / "model.safetensors").is_file()
    m = _metrics(out / "rl")
    assert [r["mode"] for r in m if "mode" in r] == [1.0, 0.0, 0.0, 0.0, 1.0]  # V (warm-up), G G G, V
    g = [r for r in m if r.get("mode") == 0.0]
    # α decays over the 3 generator steps after the warm-up (int(4 x 3 / 4))
    assert [r["generator/alpha"] for r in g] == pytest.approx([0.1 * (1e-3 / 0.1) ** (i / 3) for i in range(3)])
    assert all("verifier/final_acc" in r and "verifier/weight_correct" in r for r in m if r.get("mode") == 1.0)
    final = [r for r in m if "eval/verifier/f1" in r]
    assert final and "eval/generator/accuracy" in final[-1]
    steps = [json.loads(line) for line in (out / "data" / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 2 and all("label" in r and "solution" in r for r in steps)
    samples = [json.loads(line) for line in (out / "rl" / "samples.jsonl").read_text().splitlines()]
    assert {s["policy"] for s in samples} == {"generator", "verifier"}


def test_the_outcome_only_baseline_loads_no_verifier(tmp_path, cli):
    out = tmp_path / "base"
    res = cli("train", "tango", *TINY, f"output_dir={out}", "schedule.steps=2", "schedule.verifier=false",
              "stages=[rl]")
    assert res.exit_code == 0, res.stderr
    m = [r for r in _metrics(out / "rl") if "mode" in r]
    assert [r["mode"] for r in m] == [0.0, 0.0] and all("generator/alpha" not in r for r in m)
    assert not (out / "verifier").exists()


def test_a_resumed_run_continues_as_an_uninterrupted_one(tmp_path, cli):
    common = [*TINY, "stages=[rl]", "run.save_every=2", "schedule.verifier_warmup=1"]
    assert cli("train", "tango", *common, f"output_dir={tmp_path / 'a'}", "schedule.steps=4").exit_code == 0
    assert cli("train", "tango", *common, f"output_dir={tmp_path / 'b'}", "schedule.steps=2").exit_code == 0
    res = cli("train", "tango", *common, f"output_dir={tmp_path / 'b'}", "schedule.steps=4")
    assert res.exit_code == 0, res.stderr
    a = [r for r in _metrics(tmp_path / "a" / "rl") if "mode" in r]
    b = [r for r in _metrics(tmp_path / "b" / "rl") if "mode" in r]
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for x, y in zip(a[2:], b[2:]):
        for key in ("generator/loss/policy", "generator/kl", "verifier/loss/policy", "verifier/kl"):
            if key in x:
                assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-9), key
    res = cli("train", "tango", *common, f"output_dir={tmp_path / 'b'}", "schedule.steps=6", "alpha.start=0.5")
    assert res.exit_code == 2 and "alpha.start" in res.stderr


def test_eval_scores_both_and_the_verifier_judges_a_file_alone(tmp_path, cli):
    out = tmp_path / "run"
    assert cli("train", "tango", *TINY, f"output_dir={out}", "schedule.steps=2", "stages=[rl]").exit_code == 0
    assert cli("data", "math", "--out", tmp_path / "m", "--n-train", 1, "--n-test", 3).exit_code == 0
    res = cli("eval", "tango", "--checkpoint", out / "model", "--data", tmp_path / "m" / "test.jsonl", "--recipe",
              "recipes/tiny/tango.yaml", "--out", tmp_path / "ev", "eval.max_new_tokens=6", "eval.step_rows=3")
    assert res.exit_code == 0, res.stderr
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["verifier"] == str(out / "verifier" / "model")
    assert len(report["samples"]) == 3 and len(report["judgments"]) == 3 and "verifier/f1" in report
    sols = tmp_path / "sols.jsonl"
    sols.write_text(json.dumps({"question": "Compute 2 + 2.", "solution": solution_text(["2 + 2 = 4."], "4"),
                                "correct": True}) + "\n")
    res = cli("eval", "tango", "--checkpoint", out / "verifier" / "model", "--data", sols, "--recipe",
              "recipes/tiny/tango.yaml", "--out", tmp_path / "vo", "eval.verifier_only=true", "eval.max_new_tokens=6")
    assert res.exit_code == 0, res.stderr
    report = json.loads((tmp_path / "vo" / "eval.json").read_text())
    assert len(report["judgments"]) == 1 and "verifier/balanced_acc" in report and "verifier/f1" not in report
    sols.write_text('{"question": "Compute 2 + 2."}\n')
    res = cli("eval", "tango", "--checkpoint", out / "verifier" / "model", "--data", sols, "--recipe",
              "recipes/tiny/tango.yaml", "eval.verifier_only=true")
    assert res.exit_code == 2 and "solution" in res.stderr


def test_bad_tango_settings_name_the_key(tmp_path, cli):
    for override, key in (("alpha.schedule=step", "alpha.schedule"), ("generator.rollout.group_size=1",
                                                                      "generator.rollout.group_size"),
                          ("schedule.steps=1", "schedule.steps"), ("verifier_model.dtype=int3", "verifier_model.dtype"),
                          ("generator_reward.gt_weight=2", "generator_reward.gt_weight"), ("stages=[rl,format]", "stages")):
        res = cli("train", "tango", *TINY, f"output_dir={tmp_path / 'x'}", override)
        assert res.exit_code == 2 and key in res.stderr, (override, res.stderr)


def test_the_verifier_format_stage_runs_once_before_the_cotraining(tmp_path, cli):
    out = tmp_path / "vf"
    args = [*TINY, f"output_dir={out}", "stages=[format,verifier_format,rl]", "schedule.steps=2"]
    res = cli("train", "tango", *args)
    assert res.exit_code == 0, res.stderr
    assert (out / "verifier_format" / "model" / "model.safetensors").is_file()
    assert len(_metrics(out / "verifier_format")) == 2
    res = cli("train", "tango", *args, "schedule.steps=3")
    assert res.exit_code == 0 and "verifier_format already done" in res.stdout + res.stderr
    res = cli("train", "tango", *TINY, f"output_dir={tmp_path / 'x'}", "stages=[verifier_format,rl]",
              "schedule.verifier=false")
    assert res.exit_code == 2 and "verifier_format" in res.stderr
