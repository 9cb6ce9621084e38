"""The RL loop under two gloo processes: each samples its share of the prompts, gradients are synchronised."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["grpo", "gae"])
def test_two_processes_stay_in_sync(tmp_path, estimator):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true"}
    res = subprocess.run([*launch, "tests/rl/ddp_rl_script.py", str(tmp_path), estimator], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    check = json.loads((tmp_path / "ddp_check.json").read_text())
    assert check["world"] == 2
    a, b = check["checks"]
    assert a == pytest.approx(b, rel=1e-6)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert json.loads((tmp_path / "run_info.json").read_text())["world_size"] == 2
