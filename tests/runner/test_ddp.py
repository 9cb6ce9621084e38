"""Two CPU processes (gloo DDP through accelerate launch) follow the loss trajectory of one process
with the same global batch."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

ARGS = [
    "train", "sft", "--recipe", "recipes/tiny/sft.yaml", "data.eval_file=null", "logging.progress=none",
    "runner.max_steps=8", "runner.save_every=0", "runner.batch_size=8",
]


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, "-m", "mmthink.cli", *ARGS, "runner.micro_batch_size=8", f"output_dir={one}"],
        check=True, capture_output=True,
    )
    # --multi_gpu starts two processes; ACCELERATE_USE_CPU makes them join over gloo on a machine
    # without GPUs (--cpu instead would silently start one process).
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mmthink.cli"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true"}
    res = subprocess.run([*launch, *ARGS, "runner.micro_batch_size=4", f"output_dir={two}"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads((two / "run_info.json").read_text())
    assert info["world_size"] == 2
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 8
    assert a[-1] < a[0]
    assert torch.allclose(torch.tensor(a), torch.tensor(b), rtol=1e-5, atol=1e-6), (a, b)
    wa, wb = load_file(str(one / "model" / "model.safetensors")), load_file(str(two / "model" / "model.safetensors"))
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k


@pytest.mark.slow
def test_processes_that_do_not_join_are_refused(tmp_path):
    """Two launched processes that accelerate cannot join must stop, not train twice into one folder."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mmthink.cli"]
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    res = subprocess.run([*launch, *ARGS, "runner.micro_batch_size=4", f"output_dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, env=env)
    assert res.returncode != 0
    assert "accelerate joined 1" in res.stderr
    assert not (tmp_path / "run").exists()
