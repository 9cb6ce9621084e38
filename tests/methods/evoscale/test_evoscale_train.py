"""train evoscale end to end on a tiny model, and the shaped reward's formula."""

import json

import pytest

from mmthink.methods.evoscale.rewards import baseline_score, shaped_reward


def test_the_shaped_reward_is_the_improvement_minus_the_format_penalty():
    assert shaped_reward(0.8, [0.2, 0.6], True, "max", 0.5) == pytest.approx(0.2)
    assert shaped_reward(0.8, [0.2, 0.6], True, "mean", 0.5) == pytest.approx(0.4)
    assert shaped_reward(0.0, [0.2, 0.6], False, "max", 0.5) == pytest.approx(-1.1)
    assert baseline_score([0.5], "max") == baseline_score([0.5], "mean") == 0.5


def test_three_stages_train_and_the_model_reloads(tmp_path, cli):
    assert cli("data", "digits", "--out", tmp_path / "d", "--train", 16, "--test", 2).exit_code == 0
    out = tmp_path / "run"
    res = cli("train", "evoscale", "--recipe", "recipes/tiny/evoscale.yaml", "model.name=tiny-llama",
              f"data.train_file={tmp_path / 'd' / 'train.jsonl'}", "data.limit=null", f"output_dir={out}",
              "evo.k=2", "sft.runner.max_steps=2", "sft.runner.batch_size=4", "sft.runner.micro_batch_size=4",
              "mutation.problems=4", "mutation.max_new_tokens=4", "mutation.runner.max_steps=2",
              "mutation.runner.batch_size=4", "mutation.runner.micro_batch_size=4", "rl.steps=2",
              "rl.prompts_per_step=2", "rl.rollout.max_new_tokens=4", "rl.rollout.group_size=2",
              "rl.micro_batch_size=4", "rl.save_every=0", "logging.progress=none")
    assert res.exit_code == 0, res.stderr
    assert (out / "model" / "model.safetensors").is_file()
    made = [json.loads(line) for line in (out / "mutation" / "conditioning.jsonl").read_text().splitlines()]
    assert len(made) == 4 and all(len(r["parents"]) == 2 and "Earlier attempts" in r["conditioning"] for r in made)
    rl = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert any("reward/shaped/mean" in r for r in rl)
    res = cli("eval", "evoscale", "--checkpoint", out / "model", "--data", tmp_path / "d" / "test.jsonl",
              "--recipe", "recipes/tiny/evoscale.yaml", "--out", tmp_path / "ev", "evo.scorer=none", "evo.k=1",
              "evo.m=2", "evo.t=2", "sampler.max_new_tokens=4", "eval.baselines=[]")
    assert res.exit_code == 0, res.stderr
    assert len(json.loads((tmp_path / "ev" / "eval.json").read_text())["evoscale"]["iteration_mean_score"]) == 2


def test_stages_out_of_order_are_refused(cli, tmp_path):
    res = cli("train", "evoscale", "--recipe", "recipes/tiny/evoscale.yaml", "stages=[rl,sft]",
              f"output_dir={tmp_path / 'x'}")
    assert res.exit_code == 2 and "stages" in res.stderr
