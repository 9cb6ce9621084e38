"""train evoscale under two gloo processes: the SFT and mutation stages follow the one-process losses on
the same conditioning sets, and the RL stage runs with both ranks in step."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_processes_match_one_through_the_three_stages(tmp_path):
    subprocess.run([sys.executable, "-m", "mmthink.cli", "data", "digits", "--out", str(tmp_path / "d"), "--train",
                    "8", "--test", "1"], check=True, capture_output=True)
    args = ["train", "evoscale", "--recipe", "recipes/tiny/evoscale.yaml", "model.name=tiny-llama",
            f"data.train_file={tmp_path / 'd' / 'train.jsonl'}", "data.limit=null", "evo.k=2",
            "sft.runner.max_steps=2", "sft.runner.batch_size=4", "mutation.problems=4", "mutation.max_new_tokens=4",
            "mutation.runner.max_steps=2", "mutation.runner.batch_size=4", "rl.steps=2", "rl.prompts_per_step=2",
            "rl.rollout.max_new_tokens=4", "rl.rollout.group_size=2", "rl.save_every=0", "logging.progress=none"]
    one, two = tmp_path / "one", tmp_path / "two"
    res = subprocess.run([sys.executable, "-m", "mmthink.cli", *args, "sft.runner.micro_batch_size=4",
                          "mutation.runner.micro_batch_size=4", "rl.micro_batch_size=4", f"output_dir={one}"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mmthink.cli"]
    res = subprocess.run([*launch, *args, "sft.runner.micro_batch_size=2", "mutation.runner.micro_batch_size=2",
                          "rl.micro_batch_size=2", f"output_dir={two}"], capture_output=True, text=True,
                         env={**os.environ, "ACCELERATE_USE_CPU": "true"})
    assert res.returncode == 0, res.stderr[-3000:]
    for stage in ("sft", "mutation"):
        a, b = ([json.loads(line)["loss"] for line in (d / stage / "metrics.jsonl").read_text().splitlines()]
                for d in (one, two))
        assert len(a) == len(b) == 2 and a == pytest.approx(b, rel=1e-5), (stage, a, b)
    sets = [(d / "mutation" / "conditioning.jsonl").read_text() for d in (one, two)]
    assert sets[0] == sets[1]  # sampled once from the same SFT weights
    rl = [json.loads(line) for line in (two / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in rl] == [1, 2]
    assert json.loads((two / "rl" / "run_info.json").read_text())["world_size"] == 2
    assert (two / "model" / "model.safetensors").is_file()
