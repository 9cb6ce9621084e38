"""Satori: reward, restart buffers, evaluation pieces, and the recipe end to end on tiny-llama."""

import json
import random
import subprocess
import sys

import pytest

from mmthink.methods.satori.coat import REFLECT, coat_demo
from mmthink.methods.satori.evaluate import wrong_prefix_restarts
from mmthink.methods.satori.rae import RestartBuffers, mix_restarts, restart_prefix
from mmthink.methods.satori.rewards import reflection_bonus, satori_reward
from mmthink.tasks.grading import grade
from mmthink.tasks.math import generate


def test_reward_golden_values():
    # r = sigmoid(s) + (correct - 1) + bonus, clipped
    assert satori_reward(True) == 0.0
    assert satori_reward(False) == -1.0
    assert satori_reward(True, rm_score=0.0) == pytest.approx(0.5)
    assert satori_reward(False, rm_score=2.0) == pytest.approx(1 / (1 + 2.718281828459045 ** -2) - 1)
    assert satori_reward(True, reflect_status=-1) == 0.5  # a wrong prefix repaired
    assert satori_reward(False, reflect_status=-1) == -1.0
    assert satori_reward(False, reflect_status=1) == -1.5  # a right prefix broken
    assert satori_reward(True, reflect_status=1) == 0.0
    assert satori_reward(False, reflect_status=1, bonus=20.0, clip=10.0) == -10.0
    assert reflection_bonus(0, True, 0.5) == 0.0


def test_restart_prefix_cuts_at_steps_and_appends_reflect():
    text = "8 / 2 = 4.\n<|continue|>4 * 9 = 36.\n<|continue|>36 - 1 = 35.\nThe answer is \\boxed{35}."
    assert restart_prefix(text, 0) == "8 / 2 = 4.\n<|continue|>4 * 9 = 36.\n<|continue|>36 - 1 = 35.\n" + REFLECT
    assert restart_prefix(text, 1) == "8 / 2 = 4.\n<|continue|>4 * 9 = 36.\n" + REFLECT
    assert restart_prefix(text, 9) == "8 / 2 = 4.\n" + REFLECT  # at least one step is kept
    assert restart_prefix("The answer is \\boxed{3}.", 0) is None
    assert text.startswith(restart_prefix(text, 1)[: -len(REFLECT)])


def test_buffers_tag_restarts_and_roundtrip():
    buf = RestartBuffers(size=2, max_back=0)
    row = {"question": "q", "answer": "35", "id": "a"}
    good = "1 + 1 = 2.\n2 * 2 = 4.\nThe answer is \\boxed{35}."
    buf.add(row, good, True)
    buf.add(row, "5 + 5 = 11.\nThe answer is \\boxed{11}.", False)
    buf.add({**row, "reflect_status": -1, "prefix": "x"}, good, True)  # restarts are not re-cut
    assert len(buf.positive) == 1 and len(buf.negative) == 1
    out = buf.sample(4, random.Random(0))
    assert {r["reflect_status"] for r in out} == {1, -1}
    for r in out:
        assert r["prefix"].endswith(REFLECT) and r["answer"] == "35" and "completion" not in r
    neg = next(r for r in out if r["reflect_status"] == -1)
    assert neg["prefix"] == "5 + 5 = 11.\n" + REFLECT
    for _ in range(3):
        buf.add(row, good, True)
    assert len(buf.positive) == 2  # bounded
    other = RestartBuffers(size=2, max_back=0)
    other.load_state_dict(json.loads(json.dumps(buf.state_dict())))
    assert other.state_dict() == buf.state_dict()


def test_mix_restarts_keeps_the_batch_size():
    rows = [{"question": str(i), "answer": "1"} for i in range(8)]
    empty = RestartBuffers(4, 1)
    assert mix_restarts(rows, empty, 0.5, random.Random(0)) == rows  # nothing buffered yet
    buf = RestartBuffers(4, 1)
    buf.add(rows[0], "1 + 0 = 1.\nThe answer is \\boxed{1}.", True)
    mixed = mix_restarts(rows, buf, 0.5, random.Random(0))
    assert len(mixed) == 8 and sum("prefix" in r for r in mixed) == 4 and mixed[:4] == rows[:4]


def test_wrong_prefix_restarts_end_in_a_wrong_step():
    rows = generate(20, seed=3)
    starts = wrong_prefix_restarts(rows, 10, seed=0)
    assert len(starts) == 10
    for s in starts:
        assert s["reflect_status"] == -1 and s["prefix"].endswith("\n" + REFLECT)
        last = s["prefix"][: -len(REFLECT)].strip().split("\n")[-1]
        assert last.replace("<|continue|>", "") not in s["steps"]  # the slip is not a true step
        # the COAT continuation that corrects it grades right
        assert grade(s["prefix"] + "\n".join(s["steps"]) + f"\nThe answer is \\boxed{{{s['answer']}}}.", s["answer"])


def test_coat_demos_grade_right():
    for row in generate(10, seed=1):
        for kind in ("continue", "reflect", "explore"):
            assert grade(coat_demo(row, random.Random(0), kind), row["answer"])


@pytest.mark.slow
def test_train_satori_end_to_end_on_tiny(tmp_path):
    """Format tuning + PPO with RAE through the CLI; checkpoint with buffers; eval writes eval.json."""
    out = tmp_path / "run"
    env_cmd = [sys.executable, "-m", "mmthink.cli"]
    args = ["train", "satori", "--recipe", "recipes/tiny/satori.yaml", "model.name=tiny-llama", f"output_dir={out}",
            "data.n_train=24", "data.n_eval=4", "format.runner.max_steps=2", "rl.steps=2", "rl.save_every=2",
            "rl.prompts_per_step=4", "rl.rollout.max_new_tokens=16", "eval.max_new_tokens=16", "eval.restarts=2",
            "rae.ratio=0.5", "logging.progress=none"]
    r = subprocess.run(env_cmd + args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = out / "rl" / "checkpoints" / "step-000002"
    state = json.loads((ckpt / "task_state.json").read_text())
    assert len(state["negative"]) + len(state["positive"]) >= 4  # step 1's trajectories were buffered
    assert (ckpt / "critic.safetensors").is_file() and (out / "model" / "model.safetensors").is_file()
    metrics = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert "accuracy/fresh" in metrics[0] and "rae/buffer_negative" in metrics[0]
    assert any(k.startswith("accuracy/restart") for k in metrics[1])  # step 2 mixed restart states in
    r = subprocess.run(env_cmd + ["eval", "satori", "--checkpoint", str(out / "model"), "--data",
                                  str(out / "data" / "eval.jsonl"), "--recipe", "recipes/tiny/satori.yaml",
                                  "eval.max_new_tokens=8", "eval.restarts=2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "model" / "eval.json").read_text())
    assert report["n"] == 4 and 0 <= report["accuracy"] <= 1 and "reflection_fix_rate" in report
