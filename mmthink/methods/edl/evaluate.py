"""Evaluation of a Dirichlet network: accuracy, ECE, OOD AUROC and selective-classification AURC.

Uncertainty scores (higher = more uncertain): ``mutual_information`` (epistemic), ``expected_entropy``
(aleatoric), ``differential_entropy`` and ``neg_total_concentration`` (−α₀, an energy-style score).
Predictions and ECE use the mean of the Dirichlet, α / α₀.
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmthink.methods.edl import scores as S
from mmthink.metrics.calibration import ece
from mmthink.metrics.selective import aurc, auroc

SCORES = {
    "mutual_information": S.mutual_information,
    "expected_entropy": S.expected_entropy,
    "differential_entropy": S.differential_entropy,
    "neg_total_concentration": lambda a: -S.total_concentration(a),
}


@torch.no_grad()
def score(model, x_test: Tensor, y_test: Tensor, x_ood: Tensor | None = None, n_bins: int = 10) -> dict:
    """Metrics dict: accuracy, ece, mean_alpha0, and per score ``aurc/<score>`` (and ``auroc/<score>`` with OOD)."""
    model.eval()
    alpha = model.alpha(x_test.float()).double()
    probs = alpha / alpha.sum(-1, keepdim=True)
    correct = probs.argmax(-1).eq(y_test).double()
    out = {
        "accuracy": float(correct.mean()),
        "ece": ece(probs, y_test.long(), n_bins),
        "mean_alpha0": float(alpha.sum(-1).mean()),
    }
    alpha_ood = model.alpha(x_ood.float()).double() if x_ood is not None else None
    for name, fn in SCORES.items():
        s_in = fn(alpha)
        out[f"aurc/{name}"] = aurc(s_in, correct)
        if alpha_ood is not None:
            out[f"auroc/{name}"] = auroc(s_in, fn(alpha_ood))
    return out
