"""Projection, ELBO pieces and predictive scores (mmthink.methods.bbpt.projection / predictive): golden values."""
import math

import pytest
import torch

from mmthink.methods.bbpt.predictive import entropy, report, softmax_average, vote_histogram
from mmthink.methods.bbpt.projection import (
    kl_diag_gaussian,
    negative_elbo,
    projection_stats,
    random_projection,
    to_prompts,
)


def test_projection_stats_golden():
    # t = d − σ̂² = 6 − 4 = 2: μ = 0.1 / 2, σ = 2 / √2
    mu, sigma = projection_stats(0.1, 2.0, 6)
    assert mu == pytest.approx(0.05) and sigma == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="exceed"):
        projection_stats(0.0, 3.0, 9)


def test_random_projection_is_seeded_and_scaled():
    A = random_projection(400, 5, 60, emb_mean=0.02, emb_std=0.5, seed=3)
    assert A.shape == (400, 300)
    assert torch.equal(A, random_projection(400, 5, 60, 0.02, 0.5, seed=3))
    assert not torch.equal(A, random_projection(400, 5, 60, 0.02, 0.5, seed=4))
    mu, sigma = projection_stats(0.02, 0.5, 400)
    assert float(A.std()) == pytest.approx(sigma, rel=0.02)
    # For z ~ N(0, I) the prompt entries have about the embeddings' spread: √d · σ ≈ σ̂.
    z = torch.randn(200, 400, generator=torch.Generator().manual_seed(0))
    p = to_prompts(z, A, 5)
    assert p.shape == (200, 5, 60)
    assert float(p.std()) == pytest.approx(0.5, rel=0.05)


def test_kl_diag_gaussian_golden_and_against_torch():
    # ½[(2/2 + 1/2 − 1 − log 1) + (1/2 + 0 − 1 − log ½)] = ½ log 2
    kl = kl_diag_gaussian(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 1.0]), prior_var=2.0)
    assert float(kl) == pytest.approx(0.5 * math.log(2))
    m, v = torch.randn(7), torch.rand(7) + 0.1
    q = torch.distributions.Normal(m, v.sqrt())
    p = torch.distributions.Normal(torch.zeros(7), torch.full((7,), math.sqrt(50.0)))
    assert float(kl_diag_gaussian(m, v, 50.0)) == pytest.approx(float(torch.distributions.kl_divergence(q, p).sum()), rel=1e-5)


def test_negative_elbo_golden():
    # N · mean CE + λ KL = 10 · 2 + 1e-3 · 2
    out = negative_elbo(torch.tensor([[1.0, 3.0]]), 10, torch.tensor([2.0]), 1e-3)
    assert float(out) == pytest.approx(20.002)


def test_softmax_average_and_votes_golden():
    logits = torch.tensor([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])  # softmaxes (½, ½) and (¾, ¼)
    assert softmax_average(logits)[0].tolist() == pytest.approx([0.625, 0.375])
    assert softmax_average(logits, torch.tensor([1.0, 3.0]))[0].tolist() == pytest.approx([0.6875, 0.3125])
    votes = vote_histogram(torch.tensor([[0, 2], [1, 2], [1, 0]]), 3)
    assert torch.allclose(votes, torch.tensor([[1 / 3, 2 / 3, 0], [1 / 3, 0, 2 / 3]], dtype=torch.float64))
    assert float(entropy(torch.tensor([0.25] * 4))) == pytest.approx(math.log(4))
    assert float(entropy(torch.tensor([1.0, 0.0]))) == 0.0


def test_report_scores():
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.55, 0.45]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 0])
    r = report(probs, labels, n_bins=10)
    assert r["accuracy"] == pytest.approx(0.75)
    # most confident first: right (0.9), wrong (0.7), right (0.6), right (0.55): risks 0, ½, ⅓, ¼
    assert r["aurrc/one_minus_max"] == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    ood = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    r = report(probs, labels, ood)
    assert r["ood_auroc/entropy"] == 1.0  # the OOD row is the least sure of all
