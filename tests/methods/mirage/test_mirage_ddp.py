"""Both Mirage stages under two gloo processes follow the one-process loss trajectory."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_processes_match_one_in_both_stages(tmp_path):
    from mmthink.tasks import vsp

    train, _ = vsp.generate_split(tmp_path / "vsp", "planning", 0, {3: 8, 4: 8}, {3: 1})
    args = ["train", "mirage", "--recipe", "recipes/tiny/mirage.yaml", f"data.train_file={train}", "data.eval_file=null",
            "stage1.runner.max_steps=2", "stage2.runner.max_steps=2", "stage1.runner.batch_size=4",
            "stage2.runner.batch_size=4", "logging.progress=none"]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "mmthink.cli", *args, "stage1.runner.micro_batch_size=4",
                    "stage2.runner.micro_batch_size=4", f"output_dir={one}"], check=True, capture_output=True)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mmthink.cli"]
    res = subprocess.run([*launch, *args, "stage1.runner.micro_batch_size=2", "stage2.runner.micro_batch_size=2",
                          f"output_dir={two}"], capture_output=True, text=True,
                         env={**os.environ, "ACCELERATE_USE_CPU": "true"})
    assert res.returncode == 0, res.stderr[-3000:]
    for stage in ("stage1", "stage2"):
        a, b = ([json.loads(line)["loss"] for line in (d / stage / "metrics.jsonl").read_text().splitlines()]
                for d in (one, two))
        assert len(a) == len(b) == 2
        assert a == pytest.approx(b, rel=1e-5), (stage, a, b)
