"""The Learner on its own: per-sequence loss weights and per-token advantages act as the formulas say."""

import copy

import pytest
import torch

from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.rl.config import PolicyConfig
from mmthink.rl.rollout import generate_rollouts
from mmthink.rl.trainer import Learner
from mmthink.runner.config import OptimConfig


@pytest.fixture(scope="module")
def setup():
    from accelerate import Accelerator

    loaded = load_model(ModelConfig(name="tiny-llama"))
    tok = loaded.tokenizer
    gen = torch.Generator().manual_seed(0)
    ro = generate_rollouts(loaded.model, tok, ["hello", "world"], 2, 6, generator=gen)
    return loaded.model, ro, Accelerator(cpu=True)


def _step(setup, advantages, weights=None):
    model, ro, acc = setup
    cfg = PolicyConfig(micro_batch_size=2, optim=OptimConfig(lr=1e-2, scheduler="constant", weight_decay=0.0,
                                                             max_grad_norm=0.0))
    learner = Learner(copy.deepcopy(model), cfg, acc, 1)
    stats = learner.learn(ro, advantages, 0, 0, weights=weights)
    return stats, torch.cat([p.detach().flatten() for p in learner.policy.parameters()])


def test_a_zero_weight_drops_a_sequence_as_a_zero_advantage_would(setup):
    ro = setup[1]
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * ro.mask
    weighted, p_w = _step(setup, adv, torch.tensor([1.0, 0.0, 1.0, 0.0]))
    zeroed, p_z = _step(setup, adv * torch.tensor([1.0, 0.0, 1.0, 0.0])[:, None])
    assert torch.allclose(p_w, p_z, atol=1e-7)
    assert weighted["loss/policy"] == pytest.approx(zeroed["loss/policy"], abs=1e-7)
    doubled, _ = _step(setup, adv, torch.full((4,), 2.0))
    plain, p_plain = _step(setup, adv)
    # first inner step: ratio 1, so the loss is -sum(w A) / tokens
    assert doubled["loss/policy"] == pytest.approx(2 * plain["loss/policy"], rel=1e-5)
    assert plain["loss/policy"] == pytest.approx(-(adv * ro.mask).sum().item() / ro.mask.sum().item(), rel=1e-5)
    assert not torch.allclose(p_plain, p_w)


def test_per_token_advantages_reach_the_loss(setup):
    ro = setup[1]
    ramp = torch.arange(ro.mask.shape[1], dtype=torch.float32)[None, :].expand_as(ro.mask) * ro.mask
    stats, _ = _step(setup, ramp)
    assert stats["loss/policy"] == pytest.approx(-(ramp * ro.mask).sum().item() / ro.mask.sum().item(), rel=1e-5)
