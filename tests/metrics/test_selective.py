"""Selective-classification and OOD metrics (mmthink.metrics.selective)."""
import pytest
import torch

from mmthink.metrics.selective import auroc, aurc, ood_aurc


def test_aurc_golden():
    # order by uncertainty: correct, correct, wrong, correct -> risks 0, 0, 1/3, 1/4
    u = torch.tensor([0.3, 0.1, 0.4, 0.2])
    c = torch.tensor([0, 1, 1, 1])
    assert aurc(u, c) == pytest.approx((0 + 0 + 1 / 3 + 1 / 4) / 4)
    assert aurc(torch.zeros(3), torch.ones(3)) == 0.0
    # perfect ranking beats the reversed one
    c2 = torch.tensor([1, 1, 0, 0])
    assert aurc(torch.tensor([0.0, 1.0, 2.0, 3.0]), c2) < aurc(torch.tensor([3.0, 2.0, 1.0, 0.0]), c2)
    with pytest.raises(ValueError, match="equal"):
        aurc(torch.zeros(2), torch.ones(3))


def test_ood_aurc_counts_ood_as_errors():
    # in: u=[0.1, 0.5] correct=[1, 0]; ood: u=[0.3] -> order in(1), ood(err), in(err): risks 0, 1/2, 2/3
    assert ood_aurc(torch.tensor([0.1, 0.5]), torch.tensor([1, 0]), torch.tensor([0.3])) == pytest.approx(
        (0 + 1 / 2 + 2 / 3) / 3
    )


def test_auroc_golden():
    assert auroc(torch.tensor([0.1, 0.2]), torch.tensor([0.3, 0.4])) == 1.0
    # one of four (in, ood) pairs ordered wrongly
    assert auroc(torch.tensor([0.1, 0.35]), torch.tensor([0.3, 0.4])) == pytest.approx(0.75)
