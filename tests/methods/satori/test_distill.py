"""Satori's round 2: which solutions are distilled, the reset to the base, the stage rules, and
format → rl → distill → rl2 end to end on tiny-llama (resumed after the last finished stage)."""

import json

import pytest
import torch

from mmthink.config import load
from mmthink.errors import UserError
from mmthink.methods.satori import distill
from mmthink.methods.satori.config import SatoriRecipe
from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.runner.checkpoint import copy_weights
from mmthink.runner.session import Stage, run_stages

ROWS = [{"id": "a", "question": "1+1?", "answer": "2"}, {"id": "b", "question": "2+2?", "answer": "4"}]


def test_correct_solutions_keep_distinct_right_endings_only():
    texts = ["so \\boxed{2}", "so \\boxed{2}", "no \\boxed{3}", "cut \\boxed{2}",  # problem a
             "\\boxed{4}", "then \\boxed{4}", "\\boxed{5}", "x"]  # problem b
    ended = [True, True, True, False, True, True, True, True]
    rows = distill.correct_solutions(ROWS, texts, ended, samples=4)
    assert [(r["id"], r["messages"][1]["content"]) for r in rows] == [
        ("a", "so \\boxed{2}"), ("b", "\\boxed{4}"), ("b", "then \\boxed{4}")]
    assert rows[0]["answer"] == "2" and "1+1?" in rows[0]["messages"][0]["content"]


def test_load_or_sample_reuses_only_under_the_same_settings(tmp_path):
    calls = []

    def sample(rows):
        return lambda: calls.append(1) or rows

    got = distill.load_or_sample(tmp_path, {"samples": 2}, sample([{"x": 1}]))
    assert got == [{"x": 1}] and len(calls) == 1
    assert distill.load_or_sample(tmp_path, {"samples": 2}, sample([{"x": 9}])) == [{"x": 1}] and len(calls) == 1
    assert distill.load_or_sample(tmp_path, {"samples": 3}, sample([{"x": 3}])) == [{"x": 3}] and len(calls) == 2


def test_nothing_solved_is_one_line_and_writes_nothing(tmp_path):
    with pytest.raises(UserError, match="solved none"):
        distill.load_or_sample(tmp_path / "d", {"samples": 2}, lambda: [])
    assert not (tmp_path / "d" / "solutions.jsonl").exists()


def test_copy_weights_copies_every_weight_in_place():
    policy = load_model(ModelConfig(name="tiny-llama", init_seed=1)).model
    base = load_model(ModelConfig(name="tiny-llama", init_seed=2)).model
    before = id(policy)
    assert not torch.equal(policy.lm_head.weight, base.lm_head.weight)
    copy_weights(policy, base)
    assert id(policy) == before
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), base.state_dict().values()))
    other = load_model(ModelConfig(name="tiny-llama", special_tokens=["<x>"])).model
    with pytest.raises(UserError, match="another architecture"):
        copy_weights(policy, other)


@pytest.mark.parametrize("stages, extra, message", [
    (["rl", "format"], [], "in this order"),
    (["format", "rl2"], [], "rl2 is the RL after distill"),
    (["distill", "rl2"], [], "distill.base"),
    (["format", "rl", "distill"], ["model.lora.enabled=true"], "LoRA"),
    (["format", "rl", "distill"], ["distill.runner.mixed_precision=bf16"], "must be equal"),
    (["format", "rl", "distill"], ["distill.samples=0"], "distill.samples"),
])
def test_stage_rules_are_one_line_errors(stages, extra, message):
    cfg = load(SatoriRecipe, "recipes/tiny/satori.yaml", [f"stages=[{','.join(stages)}]", *extra])
    with pytest.raises(UserError, match=message):
        cfg.check()


def test_run_stages_starts_after_the_last_finished_stage(tmp_path):
    model = load_model(ModelConfig(name="tiny-llama"), train=False)
    from accelerate import Accelerator

    ran = []
    for name in ("a", "c"):  # a and c finished before; b is not
        (tmp_path / name / "model").mkdir(parents=True)
        model.model.save_pretrained(tmp_path / name / "model")

    def stage(name, resume="auto"):
        return Stage(name, tmp_path / name, lambda m: ran.append(name) or {"stage": name}, resume)

    _, metrics = run_stages(Accelerator(cpu=True), model.model, model.tokenizer, [stage("a"), stage("b"), stage("c"), stage("d")])
    assert ran == ["d"] and metrics == {"stage": "d"}
    ran.clear()
    run_stages(Accelerator(cpu=True), model.model, model.tokenizer, [stage("a"), stage("b", "never"), stage("c"), stage("d")])
    assert ran == ["b", "c", "d"]  # a stage told to run afresh reruns what follows it too


@pytest.mark.slow
def test_two_rounds_end_to_end_on_tiny(tmp_path, monkeypatch, capsys):
    """A random tiny model neither ends nor solves anything, so here every solution counts as ended and
    right: the test is of the flow (folders, the base reset, rl2, resume), not of learning."""
    from mmthink.methods.satori import pipeline

    def ended(*args, **kwargs):
        ro = real_generate(*args, **kwargs)
        ro.ended = [True] * len(ro.texts)
        return ro

    real_generate = distill.generate_rollouts
    monkeypatch.setattr(distill, "generate_rollouts", ended)
    monkeypatch.setattr(distill, "grade", lambda text, answer: True)
    overrides = ["model.name=tiny-llama", f"output_dir={tmp_path}", "stages=[format,rl,distill,rl2]",
                 "data.n_train=12", "data.n_eval=2", "format.runner.max_steps=2", "rl.steps=1", "rl.save_every=1",
                 "rl.prompts_per_step=4", "rl.rollout.max_new_tokens=8", "eval.max_new_tokens=4", "eval.restarts=1",
                 "distill.prompts=4", "distill.samples=2", "distill.max_new_tokens=8", "distill.runner.max_steps=2",
                 "distill.runner.batch_size=2", "distill.runner.micro_batch_size=2", "logging.progress=none"]
    cfg = load(SatoriRecipe, "recipes/tiny/satori.yaml", overrides)
    captured = {}

    def spy(model, base):
        captured["base"] = {k: v.clone() for k, v in base.state_dict().items()}
        copy_weights(model, base)

    monkeypatch.setattr(pipeline, "copy_weights", spy)
    pipeline.train(cfg)
    for stage in ("format", "rl", "distill"):
        assert (tmp_path / stage / "model" / "model.safetensors").is_file(), stage
    assert (tmp_path / "model" / "model.safetensors").is_file() and not (tmp_path / "rl2" / "model").exists()
    solutions = [json.loads(line) for line in (tmp_path / "distill" / "solutions.jsonl").read_text().splitlines()]
    assert 1 <= len(solutions) <= 8 and all(r["messages"][1]["role"] == "assistant" for r in solutions)
    # the distilled model started from the recipe's base, not from the RL policy
    fresh = load_model(cfg.model).model.state_dict()
    assert all(torch.equal(captured["base"][k], fresh[k]) for k in fresh)
    rl2 = [json.loads(line) for line in (tmp_path / "rl2" / "metrics.jsonl").read_text().splitlines()]
    assert rl2 and "reward/total/mean" in rl2[0]

    # Again with rl2 one step longer: the first three stages are loaded, not rerun; rl2 resumes.
    capsys.readouterr()
    pipeline.train(load(SatoriRecipe, "recipes/tiny/satori.yaml", overrides + ["rl.steps=2"]))
    out = capsys.readouterr()
    assert "format, rl, distill already done" in out.out + out.err
    steps = [json.loads(line)["step"] for line in (tmp_path / "rl2" / "metrics.jsonl").read_text().splitlines()
             if "reward/total/mean" in line]
    assert steps == [1, 2]
