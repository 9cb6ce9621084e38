import math

import pytest
import torch
from torch.testing import assert_close

from mmthink.rl.advantages import group_normalized
from mmthink.rl.losses import (
    aggregate,
    clipped_surrogate,
    entropy_from_logits,
    kl_penalty,
    token_logprobs,
    value_loss,
)


def _ratios(*r):
    """(logp, old_logp) of shape (1, n) whose ratio is exactly r."""
    return torch.log(torch.tensor([r])), torch.zeros(1, len(r))


def test_clipped_surrogate_golden():
    # eps = 0.2, columns: ratio 1.5 / 0.5 / 1.0
    logp, old = _ratios(1.5, 0.5, 1.0)
    loss, clipped = clipped_surrogate(logp, old, torch.ones(1, 3))
    # A = +1: -min(1.5, 1.2) = -1.2 (clipped); -min(0.5, 0.8) = -0.5; -1
    assert_close(loss, torch.tensor([[-1.2, -0.5, -1.0]]))
    assert clipped.tolist() == [[True, False, False]]
    loss, clipped = clipped_surrogate(logp, old, -torch.ones(1, 3))
    # A = -1: -min(-1.5, -1.2) = 1.5; -min(-0.5, -0.8) = 0.8 (clipped); 1
    assert_close(loss, torch.tensor([[1.5, 0.8, 1.0]]))
    assert clipped.tolist() == [[False, True, False]]


def test_clip_higher_uses_eps_high_above_one():
    logp, old = _ratios(1.5, 0.5)
    loss, _ = clipped_surrogate(logp, old, torch.tensor([[1.0, -1.0]]), eps_low=0.2, eps_high=0.28)
    assert_close(loss, torch.tensor([[-1.28, 0.8]]))


def test_dual_clip_golden():
    logp, old = _ratios(5.0, 2.0, 5.0)
    adv = torch.tensor([[-1.0, -2.0, 1.0]])
    # col 0: A=-1, ratio 5: PPO gives max(5, 1.2) = 5, dual bound -c A = 3 -> 3 (clipped)
    # col 1: A=-2, ratio 2: PPO gives 4 < bound 6 -> 4 (not clipped)
    # col 2: A=+1: dual clip does not apply -> -1.2 (clipped by the usual range)
    loss, clipped = clipped_surrogate(logp, old, adv, dual_clip=3.0)
    assert_close(loss, torch.tensor([[3.0, 4.0, -1.2]]))
    assert clipped.tolist() == [[True, False, True]]
    loss, clipped = clipped_surrogate(logp, old, adv)
    assert_close(loss, torch.tensor([[5.0, 4.0, -1.2]]))
    assert clipped.tolist() == [[False, False, True]]
    with pytest.raises(ValueError, match="dual_clip"):
        clipped_surrogate(logp, old, adv, dual_clip=1.0)


def test_sequence_advantages_broadcast_over_tokens():
    torch.manual_seed(0)
    logp, old = torch.randn(2, 4), torch.randn(2, 4)
    adv = torch.tensor([0.7, -1.3])
    a, ca = clipped_surrogate(logp, old, adv, dual_clip=3.0)
    b, cb = clipped_surrogate(logp, old, adv[:, None].expand(2, 4), dual_clip=3.0)
    assert_close(a, b)
    assert torch.equal(ca, cb)


def test_clipped_token_has_no_gradient_and_huge_ratio_stays_finite():
    logp = torch.tensor([[math.log(1.5), 100.0]], requires_grad=True)
    loss, _ = clipped_surrogate(logp, torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    assert logp.grad.tolist() == [[0.0, 0.0]]


def test_first_step_loss_is_zero_but_gradient_is_not():
    # Two completions of one prompt, equal lengths, rewards [1, 0] -> advantages [+1, -1] (eps=0).
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    adv = group_normalized(torch.tensor([1.0, 0.0]), 2, eps=0.0)
    loss, clipped = clipped_surrogate(logp, logp.detach(), adv)
    total, count = aggregate(loss, torch.ones(2, 2))
    (total / count).backward()
    assert (total / count).item() == 0.0
    assert not clipped.any()
    # d/dlogp of -A * exp(logp - old) / 4 at ratio 1 is -A / 4
    assert_close(logp.grad, torch.tensor([[-0.25, -0.25], [0.25, 0.25]]))


def test_kl_penalty_golden():
    logp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    # log pi - log pi_ref = ln 2 = 0.6931472
    assert_close(kl_penalty(logp, ref, "k1"), torch.tensor([[0.6931472]]))
    assert_close(kl_penalty(logp, ref, "k2"), torch.tensor([[0.5 * 0.6931472**2]]))
    # k3: exp(-ln 2) + ln 2 - 1 = 0.5 + 0.6931472 - 1 = 0.1931472
    assert_close(kl_penalty(logp, ref, "k3"), torch.tensor([[0.1931472]]))
    assert kl_penalty(ref, ref, "k3").item() == 0.0


def test_k3_clamps_the_log_ratio():
    logp = torch.tensor([[0.0, -100.0]])
    ref = torch.tensor([[-100.0, 0.0]])
    # log-ratios -100 and +100 clamp to -20 and +20: exp(-20) + 20 - 1 and exp(20) - 20 - 1
    assert_close(kl_penalty(logp, ref, "k3"), torch.tensor([[math.exp(-20) + 19, math.exp(20) - 21]]))
    with pytest.raises(ValueError, match="k3"):
        kl_penalty(logp, ref, "k4")


def test_entropy_golden():
    rows = [[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9, -1e9], [1000.0, 1000.0, 0.0, 0.0]]
    logits = torch.tensor([rows])
    # uniform over 4: ln 4; p = [1/4, 3/4]: 1/4 ln 4 + 3/4 ln(4/3) = 0.5623351; two huge equal logits: ln 2
    expected = torch.tensor([[math.log(4.0), 0.5623351, math.log(2.0)]])
    assert_close(entropy_from_logits(logits), expected)
    out = entropy_from_logits(logits.bfloat16())
    assert out.dtype == torch.float32


def test_token_logprobs_golden():
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])
    out = token_logprobs(logits, torch.tensor([[1, 0]]))
    assert_close(out, torch.tensor([[math.log(0.75), math.log(0.25)]]))


def test_token_logprobs_bf16_matches_float32_log_softmax():
    torch.manual_seed(0)
    logits = (4 * torch.randn(3, 5, 50)).bfloat16()
    tokens = torch.randint(0, 50, (3, 5))
    out = token_logprobs(logits, tokens)
    assert out.dtype == torch.float32
    expected = torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None]).squeeze(-1)
    assert_close(out, expected)


def test_token_logprobs_gradient_matches_log_softmax():
    torch.manual_seed(0)
    a = torch.randn(2, 3, 7, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    tokens = torch.randint(0, 7, (2, 3))
    token_logprobs(a, tokens).sum().backward()
    torch.log_softmax(b, -1).gather(-1, tokens[..., None]).sum().backward()
    assert_close(a.grad, b.grad)


def test_value_loss_golden():
    values = torch.tensor([[1.0, 1.0]])
    old = torch.tensor([[0.0, 0.0]])
    returns = torch.tensor([[0.0, 1.0]])
    # no clip: 1/2 (V - R)^2
    assert_close(value_loss(values, None, returns), torch.tensor([[0.5, 0.0]]))
    # clip 0.2 -> clipped V = 0.2. col 0: max(1, 0.04) = 1 -> 0.5; col 1: max(0, 0.64) = 0.64 -> 0.32
    assert_close(value_loss(values, old, returns, clip=0.2), torch.tensor([[0.5, 0.32]]))


LOSS = torch.tensor([[1.0, 2.0, float("nan")], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])  # the last row has no token


@pytest.mark.parametrize(
    "mode, total, count",
    [
        ("token-mean", 1 + 2 + 4 + 5 + 6, 5),  # 18 / 5
        ("seq-mean-token-mean", 1.5 + 5.0, 2),  # row means 1.5 and 5; the empty row is not counted
        ("token-sum-norm", 18, 3 * 4),  # 3 rows x norm_length 4
    ],
)
def test_aggregate_golden(mode, total, count):
    t, c = aggregate(LOSS, MASK, mode, norm_length=4)
    assert t.dim() == 0 and c.dim() == 0
    assert_close(t, torch.tensor(float(total)))
    assert_close(c, torch.tensor(float(count)))


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "token-sum-norm"])
def test_aggregate_is_exact_across_micro_batches(mode):
    torch.manual_seed(0)
    x = torch.randn(6, 5, requires_grad=True)
    mask = (torch.rand(6, 5) > 0.4).int()
    mask[2] = 0
    t, c = aggregate(x.pow(2), mask, mode, norm_length=5)
    (t / c).backward()
    full_grad = x.grad.clone()
    x.grad = None
    parts = [aggregate(x[s].pow(2), mask[s], mode, norm_length=5) for s in (slice(0, 2), slice(2, 6))]
    global_count = sum(p[1] for p in parts)
    assert_close(sum(p[0] for p in parts) / global_count, t / c)
    for part_total, _ in parts:  # what a gradient-accumulation loop does
        (part_total / global_count).backward()
    assert_close(x.grad, full_grad)


def test_aggregate_rejects_bad_settings():
    with pytest.raises(ValueError, match="token-mean.*seq-mean-token-mean.*token-sum-norm"):
        aggregate(LOSS, MASK, "mean")
    with pytest.raises(ValueError, match="norm_length"):
        aggregate(LOSS, MASK, "token-sum-norm")
