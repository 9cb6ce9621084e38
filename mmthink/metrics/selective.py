"""Selective classification and OOD detection metrics over an uncertainty score (higher = less sure)."""
from __future__ import annotations

import torch
from torch import Tensor


def aurc(uncertainty: Tensor, correct: Tensor) -> float:
    """Area under the risk-coverage curve (lower is better); equals the area under the risk-rejection curve.

    Examples are accepted most-confident first (ascending ``uncertainty``; ties keep input order, a
    stable sort). At coverage i/n the risk is the error rate of the first i accepted examples; AURC is
    the mean of the n risks: (1/n) Σ_i (errors among the first i) / i. Rejecting the n − i least sure
    examples is the same point read as rejection rate 1 − i/n, hence the same area.
    """
    u, c = torch.as_tensor(uncertainty).flatten(), torch.as_tensor(correct).flatten()
    if len(u) != len(c) or len(u) == 0:
        raise ValueError(f"aurc needs equal, non-empty uncertainty and correct; got {len(u)} and {len(c)}")
    order = torch.sort(u.double(), stable=True).indices
    errors = (1.0 - c.double()[order]).cumsum(0)
    risk = errors / torch.arange(1, len(u) + 1, dtype=torch.float64)
    return float(risk.mean())


def ood_aurc(uncertainty_in: Tensor, correct_in: Tensor, uncertainty_ood: Tensor) -> float:
    """AURC over in-distribution and OOD examples pooled, every OOD example counted as an error.

    The risk at each rejection rate is the share of kept examples that are wrong or OOD: a score that
    rejects OOD inputs first (and in-distribution mistakes next) gets the lowest area.
    """
    u = torch.cat([torch.as_tensor(uncertainty_in).flatten(), torch.as_tensor(uncertainty_ood).flatten()])
    c = torch.cat([torch.as_tensor(correct_in).flatten().double(), torch.zeros(len(torch.as_tensor(uncertainty_ood).flatten()), dtype=torch.float64)])
    return aurc(u, c)


def auroc(score_in: Tensor, score_ood: Tensor) -> float:
    """AUROC of telling OOD (positive) from in-distribution by a score that is higher on OOD."""
    from sklearn.metrics import roc_auc_score

    s = torch.cat([torch.as_tensor(score_in), torch.as_tensor(score_ood)]).double().numpy()
    lab = [0] * len(score_in) + [1] * len(score_ood)
    return float(roc_auc_score(lab, s))
