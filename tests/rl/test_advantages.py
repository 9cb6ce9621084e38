import pytest
import torch
from torch.testing import assert_close

from mmthink.rl.advantages import (
    gae,
    group_normalized,
    last_token_rewards,
    reinforce_baseline,
    whiten,
    zero_std_fraction,
)


def test_group_normalized_golden():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    # groups [1, 0] and [0, 1]: mean 0.5, population std 0.5 -> +-0.5 / 0.5
    assert_close(group_normalized(rewards, 2, eps=0.0), torch.tensor([1.0, -1.0, -1.0, 1.0]))
    # eps sits in the denominator: 0.5 / (0.5 + 1e-6)
    assert_close(group_normalized(rewards, 2), torch.tensor([1.0, -1.0, -1.0, 1.0]) * 0.5 / 0.500001)
    # Bessel: std = sqrt(0.5) -> 0.5 / 0.7071068 = 0.7071068
    s = 0.7071068
    assert_close(group_normalized(rewards, 2, eps=0.0, unbiased=True), torch.tensor([s, -s, -s, s]))


def test_group_normalized_dr_grpo_only_subtracts_the_mean():
    assert_close(group_normalized(torch.tensor([1.0, 0.0, 0.0, 1.0]), 2, std="none"),
                 torch.tensor([0.5, -0.5, -0.5, 0.5]))


def test_group_normalized_batch_std():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    # group means [0.5, 0]; batch population std of [1, 0, 0, 0] = sqrt(0.1875) = 0.4330127
    expected = torch.tensor([0.5, -0.5, 0.0, 0.0]) / 0.4330127
    assert_close(group_normalized(rewards, 2, std="batch", eps=0.0), expected)
    # per-group std instead: the constant group [0, 0] gets 0 / (0 + eps) = 0
    out = group_normalized(rewards, 2, std="group")
    assert_close(out, torch.tensor([1.0, -1.0, 0.0, 0.0]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("unbiased", [False, True])
def test_group_of_one_gets_zero_advantage(unbiased):
    out = group_normalized(torch.tensor([3.0, -2.0]), 1, unbiased=unbiased)
    assert_close(out, torch.zeros(2))


def test_group_normalized_accepts_integer_rewards():
    assert_close(group_normalized(torch.tensor([1, 0]), 2, eps=0.0), torch.tensor([1.0, -1.0]))


def test_group_normalized_rejects_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        group_normalized(torch.zeros(3), 2)
    with pytest.raises(ValueError, match="group"):
        group_normalized(torch.zeros(4), 2, std="global")


def test_zero_std_fraction():
    # groups [1, 1], [0, 1], [0, 0]: two of three are constant
    assert zero_std_fraction(torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0]), 2) == pytest.approx(2 / 3)
    assert zero_std_fraction(torch.tensor([1.0, 0.0]), 2) == 0.0


def test_reinforce_baselines_golden():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])  # groups [1, 0, 0] and [0, 1, 1]
    # rloo: r_i - mean of the other two
    assert_close(reinforce_baseline(rewards, 3), torch.tensor([1.0, -0.5, -0.5, -1.0, 0.5, 0.5]))
    assert_close(reinforce_baseline(rewards, 3, "mean"),
                 torch.tensor([2 / 3, -1 / 3, -1 / 3, -2 / 3, 1 / 3, 1 / 3]))
    assert_close(reinforce_baseline(rewards, 3, "batch"), torch.tensor([0.5, -0.5, -0.5, -0.5, 0.5, 0.5]))
    out = reinforce_baseline(rewards, 3, "none")
    assert_close(out, rewards)
    out[0] = 7.0  # a copy, not the caller's tensor
    assert rewards[0] == 1.0


def test_reinforce_baseline_rejects_bad_input():
    with pytest.raises(ValueError, match="group_size >= 2"):
        reinforce_baseline(torch.tensor([1.0, 0.0]), 1, "rloo")
    with pytest.raises(ValueError, match="baseline"):
        reinforce_baseline(torch.tensor([1.0, 0.0]), 2, "median")
    with pytest.raises(ValueError, match="divisible"):
        reinforce_baseline(torch.tensor([1.0, 0.0, 1.0]), 2, "none")


def test_last_token_rewards():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    out = last_token_rewards(torch.tensor([2.0, 3.0, 5.0]), mask)
    assert_close(out, torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]]))


def test_gae_golden():
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [0.5, 0.6, float("nan")]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # row 0 (gamma * lam = 0.72, V after the end = 0):
    #   t=2: delta = 1 - 0.7 = 0.3                           A = 0.3
    #   t=1: delta = 0.9 * 0.7 - 0.6 = 0.03                  A = 0.03 + 0.72 * 0.3 = 0.246
    #   t=0: delta = 0.9 * 0.6 - 0.5 = 0.04                  A = 0.04 + 0.72 * 0.246 = 0.21712
    # row 1 (last real token t=1; the 9 and NaN in the padding must not leak):
    #   t=1: delta = 1 - 0.6 = 0.4                           A = 0.4
    #   t=0: delta = 0.04                                    A = 0.04 + 0.72 * 0.4 = 0.328
    adv, ret = gae(rewards, values, mask, gamma=gamma, lam=lam)
    assert_close(adv, torch.tensor([[0.21712, 0.246, 0.3], [0.328, 0.4, 0.0]]))
    assert_close(ret, torch.tensor([[0.71712, 0.846, 1.0], [0.828, 1.0, 0.0]]))


def test_gae_skips_a_masked_hole():
    # gamma = lam = 1, mask [1, 0, 1]: t=2: A = 1 - 0.5 = 0.5; the hole carries V=0.5 and A=0.5 back to
    # t=0: delta = 0 + 0.5 - 0.2 = 0.3, A = 0.3 + 0.5 = 0.8
    adv, _ = gae(torch.tensor([[0.0, 5.0, 1.0]]), torch.tensor([[0.2, 9.0, 0.5]]), torch.tensor([[1, 0, 1]]),
                 gamma=1.0, lam=1.0)
    assert_close(adv, torch.tensor([[0.8, 0.0, 0.5]]))


def test_gae_carries_no_gradient():
    values = torch.tensor([[0.5, 0.6]], requires_grad=True)
    adv, ret = gae(torch.tensor([[0.0, 1.0]]), values, torch.ones(1, 2))
    assert not adv.requires_grad and not ret.requires_grad


def test_whiten_golden():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, float("nan")]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # real tokens [1, 2, 3, 4]: mean 2.5, unbiased var (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3, std 1.2909944
    a, b = 1.5 / 1.2909944, 0.5 / 1.2909944
    assert_close(whiten(x, mask), torch.tensor([[-a, -b, b], [a, 0.0, 0.0]]))
    kept = torch.tensor([[2.5 - a, 2.5 - b, 2.5 + b], [2.5 + a, 0.0, 0.0]])
    assert_close(whiten(x, mask, shift_mean=False), kept)


def test_whiten_moments():
    torch.manual_seed(0)
    x = 3.0 + 5.0 * torch.randn(4, 7)
    mask = torch.ones(4, 7)
    mask[1, 4:] = 0
    mask[3, 1:] = 0
    out = whiten(x, mask)
    real = out[mask.bool()]
    assert abs(real.mean().item()) < 1e-5
    assert real.var(unbiased=True).item() == pytest.approx(1.0, abs=1e-5)
    assert (out[~mask.bool()] == 0).all()


def test_whiten_needs_two_tokens():
    with pytest.raises(ValueError, match="at least 2"):
        whiten(torch.ones(1, 3), torch.tensor([[1, 0, 0]]))


def test_group_normalized_matches_torch_std_on_random_groups():
    torch.manual_seed(0)
    rewards = torch.rand(12)
    g = rewards.view(3, 4)
    expected = ((g - g.mean(1, keepdim=True)) / (g.std(1, unbiased=True, keepdim=True) + 1e-6)).reshape(-1)
    assert_close(group_normalized(rewards, 4, unbiased=True), expected)
