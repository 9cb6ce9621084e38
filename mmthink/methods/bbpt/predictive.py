"""Predictive distributions over a collection of prompts, and their scores.

With logits, the predictive is the weighted average of the prompts' softmaxes; with labels only, the
weighted histogram of the prompts' votes (the official code's choices). Uncertainty for selective
classification and OOD detection: the predictive's entropy, or 1 − its top probability.
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmthink.metrics.calibration import ece
from mmthink.metrics.selective import aurc, auroc, ood_aurc


def _weights(weights: Tensor | None, n: int) -> Tensor:
    w = torch.full((n,), 1.0 / n) if weights is None else weights.double() / weights.double().sum()
    return w.double()


def softmax_average(logits: Tensor, weights: Tensor | None = None) -> Tensor:
    """(P, N, C) logits → (N, C): Σ_p w_p softmax(logits_p)."""
    w = _weights(weights, len(logits))
    return torch.einsum("p,pnc->nc", w, logits.double().softmax(-1))


def vote_histogram(labels: Tensor, n_classes: int, weights: Tensor | None = None) -> Tensor:
    """(P, N) labels → (N, C): Σ_p w_p onehot(label_p)."""
    w = _weights(weights, len(labels))
    return torch.einsum("p,pnc->nc", w, torch.nn.functional.one_hot(labels.long(), n_classes).double())


def entropy(probs: Tensor) -> Tensor:
    """H(p) = −Σ p log p, with 0 log 0 = 0."""
    p = probs.double()
    return -(p * torch.log(p.clamp_min(1e-300))).sum(-1)


UNCERTAINTY = {
    "entropy": entropy,
    "one_minus_max": lambda p: 1.0 - p.double().max(-1).values,
}


def report(probs: Tensor, labels: Tensor, probs_ood: Tensor | None = None, n_bins: int = 10) -> dict:
    """accuracy, ECE, and per uncertainty score the AURRC (and, with OOD rows, OOD AURRC and AUROC)."""
    correct = probs.argmax(-1).eq(labels.long()).double()
    out = {"accuracy": float(correct.mean()), "ece": ece(probs.float(), labels.long(), n_bins)}
    for name, fn in UNCERTAINTY.items():
        u = fn(probs)
        out[f"aurrc/{name}"] = aurc(u, correct)
        if probs_ood is not None:
            u_ood = fn(probs_ood)
            out[f"ood_aurrc/{name}"] = ood_aurc(u, correct, u_ood)
            out[f"ood_auroc/{name}"] = auroc(u, u_ood)
    return out
