"""The RL loop end to end on tiny-llama: learning, exact accumulation, PPO's critic, KL, resume."""

import json

import pytest
import torch

from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.rl.config import RLConfig
from mmthink.rl.rewards import REWARDS, RewardSpec, register_reward
from mmthink.rl.trainer import RLTask, step_prompt_indices, train_rl
from mmthink.runner.config import LoggingConfig, OptimConfig


@pytest.fixture(autouse=True)
def count_a_reward():
    register_reward("count_a")(lambda p, c, row: c.count("a") / max(len(c), 1))
    yield
    REWARDS.pop("count_a")


def _setup(estimator="grpo", steps=3, **kw):
    loaded = load_model(ModelConfig(name="tiny-llama"))
    tok = loaded.tokenizer
    rows = [{"q": f"say {i}"} for i in range(16)]
    cfg = RLConfig(steps=steps, prompts_per_step=4, micro_batch_size=kw.pop("micro", 32),
                   rewards=[RewardSpec("count_a", 1.0)], optim=OptimConfig(lr=3e-3, scheduler="constant"),
                   critic_optim=OptimConfig(lr=1e-3, scheduler="constant"))
    cfg.rollout.group_size, cfg.rollout.max_new_tokens = 8, 10
    cfg.advantage.estimator = estimator
    for k, v in kw.items():
        obj, _, name = k.rpartition("__")
        setattr(getattr(cfg, obj) if obj else cfg, name, v)
    prompt = lambda r: tok.apply_chat_template([{"role": "user", "content": r["q"]}], tokenize=False,
                                               add_generation_prompt=True)
    return loaded.model, tok, RLTask(rows, prompt), cfg


def _metrics(path):
    return [json.loads(line) for line in open(path / "metrics.jsonl")]


def _run(tmp_path, name, **kw):
    model, tok, task, cfg = _setup(**kw)
    train_rl(model, tok, task, cfg, LoggingConfig(progress="none"), tmp_path / name, seed=0)
    return model, _metrics(tmp_path / name)


def test_grpo_raises_a_trivially_learnable_reward(tmp_path):
    _, m = _run(tmp_path, "grpo", steps=16)
    rewards = [x["reward/total/mean"] for x in m]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.1, rewards
    # first inner step: ratio 1 and zero-mean advantages, so the loss reads ~0 by construction
    assert abs(m[0]["loss/policy"]) < 0.05 and m[0]["clip_frac"] == 0.0
    for key in ("reward/count_a/mean", "reward/count_a/std", "reward/count_a/zero_std_groups", "entropy",
                "completion_len/mean", "kl", "lr", "step_s"):
        assert key in m[0]
    samples = [json.loads(line) for line in open(tmp_path / "grpo" / "samples.jsonl")]
    assert len(samples) == 16 * 4 and {"prompt", "completion", "reward", "step"} <= set(samples[0])


def test_micro_batching_does_not_change_the_update(tmp_path, monkeypatch):
    # SGD: the update is linear in the gradient (Adam's first step would amplify float noise).
    monkeypatch.setattr("mmthink.rl.trainer.make_optimizer",
                        lambda model, o: torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0))
    a, _ = _run(tmp_path, "one", steps=1, micro=32)
    b, _ = _run(tmp_path, "four", steps=1, micro=8)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=n)


def test_several_inner_steps_clip(tmp_path):
    _, m = _run(tmp_path, "inner", steps=2, inner_epochs=2, mini_batches=2, micro=8, loss__eps_low=0.01,
                loss__eps_high=0.01)
    assert max(x["clip_frac"] for x in m) > 0


def test_ppo_trains_the_critic_and_resumes_exactly(tmp_path):
    # Uninterrupted 4 steps vs 2 steps + checkpoint + resume to 4: same policy, critic and metrics.
    full, m_full = _run(tmp_path, "full", estimator="gae", steps=4)
    _run(tmp_path, "cut", estimator="gae", steps=2, save_every=2)
    ckpt = tmp_path / "cut" / "checkpoints" / "step-000002"
    assert (ckpt / "critic.safetensors").is_file()
    resumed, m_cut = _run(tmp_path, "cut", estimator="gae", steps=4, save_every=2)
    for p, q in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q)
    assert [x["step"] for x in m_cut] == [1, 2, 3, 4]
    assert m_cut[-1]["reward/total/mean"] == pytest.approx(m_full[-1]["reward/total/mean"])
    assert m_cut[-1]["loss/value"] == pytest.approx(m_full[-1]["loss/value"], rel=1e-4)
    assert m_full[0]["loss/value"] > 0


def test_kl_to_the_reference_grows_from_zero(tmp_path):
    _, m = _run(tmp_path, "kl", steps=3, loss__kl_coef=0.1, loss__kl_estimator="k3")
    assert m[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference before the first update
    assert m[-1]["kl"] > 1e-4


def test_prompt_order_is_a_seeded_permutation_per_epoch():
    steps = [step_prompt_indices(10, 4, s, seed=1) for s in range(4)]
    assert sorted(steps[0] + steps[1]) == sorted(set(steps[0] + steps[1]))  # no repeat inside an epoch
    assert steps == [step_prompt_indices(10, 4, s, seed=1) for s in range(4)]
    assert step_prompt_indices(3, 8, 0, seed=0).count(0) >= 2  # fewer rows than a step: repeated


def test_bad_settings_are_refused(tmp_path):
    model, tok, task, cfg = _setup(rollout__group_size=1)
    with pytest.raises(UserError, match="group_size >= 2"):
        train_rl(model, tok, task, cfg, LoggingConfig(progress="none"), tmp_path / "x", seed=0)
    model, tok, task, cfg = _setup(mini_batches=5)
    with pytest.raises(UserError, match="mini_batches"):
        train_rl(model, tok, task, cfg, LoggingConfig(progress="none"), tmp_path / "y", seed=0)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_lora_policy_is_its_own_reference(tmp_path):
    # With LoRA no reference copy is loaded: the adapter is switched off for the reference pass.
    from mmthink.models.config import LoraConfig

    loaded = load_model(ModelConfig(name="tiny-llama", lora=LoraConfig(enabled=True, r=4, alpha=8, dropout=0.0)))
    model, tok, task, cfg = _setup(steps=2, loss__kl_coef=0.1)
    cfg.optim.lr = 1e-2
    train_rl(loaded.model, loaded.tokenizer, task, cfg, LoggingConfig(progress="none"), tmp_path / "lora", seed=0)
    m = _metrics(tmp_path / "lora")
    assert m[0]["kl"] == pytest.approx(0.0, abs=1e-6) and m[-1]["kl"] > 0
    trained = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n for n in trained)
