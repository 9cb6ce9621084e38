"""Step-level verification metrics (ProcessBench): did a verifier find the earliest wrong step?

A label is the index of a solution's earliest wrong step (0-based) or −1 when every step is right;
a prediction is the earliest step the verifier judged wrong, −1, or None when it judged no step (wrong
on either kind of row).
"""

from __future__ import annotations

from typing import Optional, Sequence


def processbench_f1(predictions: Sequence[Optional[int]], labels: Sequence[int]) -> dict:
    """Accuracy on erroneous rows (exactly the earliest wrong step named), on correct rows (no error found),
    and their harmonic mean F1 = 2 a_err a_cor / (a_err + a_cor)."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    err = [p == y for p, y in zip(predictions, labels) if y >= 0]
    cor = [p == -1 for p, y in zip(predictions, labels) if y < 0]
    a_err = sum(err) / len(err) if err else 0.0
    a_cor = sum(cor) / len(cor) if cor else 0.0
    f1 = 2 * a_err * a_cor / (a_err + a_cor) if a_err + a_cor > 0 else 0.0
    return {"error_acc": a_err, "correct_acc": a_cor, "f1": f1, "n_error": len(err), "n_correct": len(cor)}


def balanced_accuracy(verdicts: Sequence[Optional[bool]], truths: Sequence[bool]) -> float:
    """(TPR + TNR) / 2 of final verdicts against the truth (positive: a correct solution); a missing
    verdict counts as wrong for either class."""
    pos = [v is True for v, t in zip(verdicts, truths) if t]
    neg = [v is False for v, t in zip(verdicts, truths) if not t]
    rates = [sum(x) / len(x) for x in (pos, neg) if x]
    return sum(rates) / len(rates) if rates else 0.0
