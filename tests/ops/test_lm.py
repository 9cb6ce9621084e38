import math

import pytest
import torch

from mmthink.ops.lm import IGNORE, exact_match, token_nll_sum


def test_token_nll_sum_golden():
    # Vocabulary of 2; logits[:, t] predicts labels[:, t + 1].
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[IGNORE, 1, 0]])
    nll, n = token_nll_sum(logits, labels)
    # position 0 predicts label 1 with p = 1/2; position 1 predicts label 0 with p = 3/4.
    assert n.item() == 2
    assert nll.item() == pytest.approx(-math.log(0.5) - math.log(0.75), rel=1e-6)


def test_token_nll_sum_matches_transformers_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.randint(0, 11, (2, 6))
    labels[0, :3] = IGNORE
    nll, n = token_nll_sum(logits, labels)
    shifted = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1),
                                                ignore_index=IGNORE)
    assert torch.allclose(nll / n, shifted)


def test_exact_match_strips_whitespace_only():
    assert exact_match(" 42\n", "42")
    assert not exact_match("42.", "42")
