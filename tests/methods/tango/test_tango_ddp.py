"""train tango under two gloo processes: both policies train in step, the class counts are global, and
the run writes both models."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_processes_cotrain(tmp_path):
    out = tmp_path / "two"
    args = ["train", "tango", "--recipe", "recipes/tiny/tango.yaml", "model.name=tiny-llama",
            "verifier_model.name=tiny-llama", "stages=[rl]", "data.n_train=16", "data.n_eval=4",
            "schedule.steps=3", "schedule.verifier_warmup=1", "generator.prompts_per_step=2",
            "verifier.prompts_per_step=2", "generator.rollout.max_new_tokens=6", "verifier.rollout.max_new_tokens=6",
            "eval.limit=2", "eval.step_rows=2", "eval.max_new_tokens=6", "run.save_every=3", "logging.progress=none",
            f"output_dir={out}"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mmthink.cli"]
    res = subprocess.run([*launch, *args], capture_output=True, text=True, env={**os.environ, "ACCELERATE_USE_CPU": "true"})
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["mode"] for r in rows if "mode" in r] == [1.0, 0.0, 0.0]
    assert json.loads((out / "rl" / "run_info.json").read_text())["world_size"] == 2
    assert (out / "rl" / "checkpoints" / "step-000003" / "verifier" / "model.safetensors").is_file()
    assert (out / "model" / "model.safetensors").is_file() and (out / "verifier" / "model" / "model.safetensors").is_file()
