"""Calibration metrics for classifiers and multiple-choice LMs, and temperature scaling.

Every metric takes ``probs`` (N, K), rows summing to 1, and ``labels`` (N,) long with values in
[0, K), and returns a Python float. Binned metrics (ECE, MCE, TL-ECE) use ``n_bins`` equal-width bins
over the top-1 confidence with the edges of torchmetrics' ``MulticlassCalibrationError``: bin b is
[b/n, (b+1)/n) (left-closed), and a confidence of exactly 1.0 falls in a bin of its own. The
Thermometer authors' code uses right-closed bins (b/n, (b+1)/n]; both agree except for confidences
that sit exactly on an edge, and matching torchmetrics lets tests cross-check us against it.

Temperature scaling divides logits by one scalar T > 0: the arg-max and so the accuracy never change.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

_EPS = 1e-12  # floor for p_y in the NLL so that one confident mistake gives a large, finite loss


def _check(probs: torch.Tensor, labels: torch.Tensor) -> None:
    if probs.dim() != 2 or labels.dim() != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"expected probs (N, K) and labels (N,); got {tuple(probs.shape)} and {tuple(labels.shape)}")
    if probs.shape[0] == 0:
        raise ValueError("calibration metrics need at least one example")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1]}); got [{int(labels.min())}, {int(labels.max())}]")


def _top1(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(top-1 confidence, predicted label, 1.0 where correct else 0.0)."""
    conf, pred = probs.max(dim=1)
    return conf, pred, pred.eq(labels).double()


def _bin_index(conf: torch.Tensor, n_bins: int) -> torch.Tensor:
    # Edges built in conf's own dtype, as torchmetrics does, so both put a confidence in the same bin.
    edges = torch.linspace(0, 1, n_bins + 1, dtype=conf.dtype, device=conf.device)
    # bucketize(right=True) - 1 = b with edges[b] <= conf < edges[b+1]; conf == 1.0 gives b = n_bins.
    return torch.bucketize(conf, edges, right=True) - 1


def _bin_stats(conf: torch.Tensor, correct: torch.Tensor, n_bins: int):
    """(count, mean accuracy, mean confidence) for each of the n_bins + 1 bins (the last holds conf == 1)."""
    idx = _bin_index(conf, n_bins)
    count = torch.zeros(n_bins + 1, dtype=torch.float64).index_add_(0, idx, torch.ones_like(correct))
    acc = torch.zeros(n_bins + 1, dtype=torch.float64).index_add_(0, idx, correct)
    cf = torch.zeros(n_bins + 1, dtype=torch.float64).index_add_(0, idx, conf.double())
    safe = count.clamp_min(1)
    return count, acc / safe, cf / safe


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10) -> float:
    """Expected calibration error of the top-1 confidence."""
    _check(probs, labels)
    conf, _, correct = _top1(probs, labels)
    count, acc, cf = _bin_stats(conf, correct, n_bins)
    # ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|
    return float((count / count.sum() * (acc - cf).abs()).sum())


def mce(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10) -> float:
    """Maximum calibration error: the worst bin (empty bins count as 0, as in torchmetrics)."""
    _check(probs, labels)
    conf, _, correct = _top1(probs, labels)
    count, acc, cf = _bin_stats(conf, correct, n_bins)
    # MCE = max_{b : |B_b| > 0} |acc(B_b) - conf(B_b)|
    return float(((acc - cf).abs() * (count > 0)).max())


def tl_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10) -> float:
    """Top-label ECE (Gupta & Ramdas 2021): ECE within each predicted label, weighted by its share."""
    _check(probs, labels)
    conf, pred, correct = _top1(probs, labels)
    total = 0.0
    for c in pred.unique().tolist():
        m = pred == c
        count, acc, cf = _bin_stats(conf[m], correct[m], n_bins)
        # TL-ECE = sum_c sum_b |B_cb| / N * |acc(B_cb) - conf(B_cb)|,  B_cb = {pred = c, conf in bin b}
        total += float((count * (acc - cf).abs()).sum())
    return total / probs.shape[0]


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    _check(probs, labels)
    p_y = probs.double().gather(1, labels[:, None]).squeeze(1)
    # NLL = -1/N sum_n log p(y_n | x_n)
    return float(-p_y.clamp_min(_EPS).log().mean())


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    _check(probs, labels)
    onehot = F.one_hot(labels, probs.shape[1]).double()
    # Brier = 1/(N K) sum_n sum_k (p_nk - 1[y_n = k])^2   (mean over N x K, as the Thermometer paper)
    return float(((probs.double() - onehot) ** 2).mean())


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    _check(probs, labels)
    return float(_top1(probs, labels)[2].mean())


def calibration_report(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10) -> dict:
    """All metrics at once: ece, mce, tl_ece, nll, brier, accuracy (floats) and n (examples)."""
    return {
        "ece": ece(probs, labels, n_bins),
        "mce": mce(probs, labels, n_bins),
        "tl_ece": tl_ece(probs, labels, n_bins),
        "nll": nll(probs, labels),
        "brier": brier(probs, labels),
        "accuracy": accuracy(probs, labels),
        "n": int(labels.shape[0]),
    }


# ---------------------------------------------------------------- temperature scaling


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / T) in float64: float32 could round two close top scores to one value at large T."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    # p = softmax(z / T)
    return torch.softmax(logits.double() / temperature, dim=-1)


def temperature_nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Mean NLL of softmax(logits / T); columns set to -inf (padding) get probability 0."""
    logp = torch.log_softmax(logits.double() / temperature, dim=-1)
    return float(-logp.gather(1, labels[:, None]).mean())


def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    max_iter: int = 200,
    bounds: tuple[float, float] = (1e-2, 1e2),
) -> float:
    """The T in ``bounds`` minimising NLL(softmax(logits / T)) on labelled logits.

    NLL is convex in 1/T (a log-sum-exp of linear functions minus a linear one), hence unimodal in
    log T, so bounded Brent search over log T finds the global minimum without gradients, and
    deterministically. Rows may be padded with -inf columns (tasks with fewer options pooled together).
    """
    from scipy.optimize import minimize_scalar

    if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0] or logits.shape[0] == 0:
        raise ValueError(
            f"expected logits (N, K) and labels (N,), N > 0; got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    z, y = logits.detach().double().cpu(), labels.detach().long().cpu()
    res = minimize_scalar(
        lambda log_t: temperature_nll(z, y, math.exp(log_t)),
        bounds=(math.log(bounds[0]), math.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-7, "maxiter": max_iter},
    )
    return float(math.exp(res.x))


# ---------------------------------------------------------------- reliability diagram


def reliability_diagram(probs: torch.Tensor, labels: torch.Tensor, path, n_bins: int = 10, title: str = "") -> Path:
    """A PNG with the accuracy of each confidence bin against the diagonal; ECE in the title.

    Uses matplotlib's object API on an Agg canvas, never pyplot, so that no global backend is switched
    and nothing needs a display. Written to a temporary file and renamed, so a reader never sees half.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check(probs, labels)
    conf, _, correct = _top1(probs, labels)
    # For the picture, confidence 1.0 joins the top bar (the metric keeps it in a bin of its own).
    idx = _bin_index(conf, n_bins).clamp_max(n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, torch.ones_like(correct))
    acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, correct) / count.clamp_min(1)
    width = 1.0 / n_bins
    centers = [(b + 0.5) * width for b in range(n_bins)]

    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(centers, acc.tolist(), width=width, edgecolor="black", color="tab:blue", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    for x, a, c in zip(centers, acc.tolist(), count.tolist()):
        if c:
            ax.text(x, a + 0.01, str(int(c)), ha="center", fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence (top-1)")
    ax.set_ylabel("accuracy")
    head = f"{title}  " if title else ""
    ax.set_title(f"{head}ECE = {ece(probs, labels, n_bins):.4f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path
