"""Golden tests for the EDL objectives and Dirichlet uncertainty scores (hand-computed values)."""
import math

import pytest
import torch
from torch.distributions import Dirichlet, kl_divergence

from mmthink.methods.edl import losses as L
from mmthink.methods.edl import scores as S

A211 = torch.tensor([[2.0, 1.0, 1.0]], dtype=torch.float64)
Y0 = torch.tensor([0])


def close(x, v, tol=1e-6):
    assert x.shape == (1,)
    assert abs(x.item() - v) < tol, (x.item(), v)


def test_evidence_to_alpha():
    z = torch.tensor([0.0, -1.0])
    assert torch.allclose(L.evidence_to_alpha(z), torch.tensor([1 + math.log(2), 1 + math.log(1 + math.exp(-1))]))
    assert torch.allclose(L.evidence_to_alpha(z, "exp"), torch.tensor([2.0, 1 + math.exp(-1)]))
    assert torch.equal(L.evidence_to_alpha(z, "relu"), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError):
        L.evidence_to_alpha(z, "square")


def test_edl_mse_golden():
    # p = [.5,.25,.25], S = 4: err = .25 + .0625 + .0625 = .375; var = (.25 + .1875 + .1875)/5 = .125
    close(L.edl_mse_loss(A211, Y0), 0.5)
    # y = 1: err = .25 + .5625 + .0625 = .875; var unchanged .125 -> 1.0
    close(L.edl_mse_loss(A211, torch.tensor([1])), 1.0)


def test_edl_log_and_digamma_golden():
    # log S - log alpha_0 = log 4 - log 2
    close(L.edl_log_loss(A211, Y0), math.log(2))
    # psi(4) - psi(2) = 1/2 + 1/3
    close(L.edl_digamma_loss(A211, Y0), 5 / 6)
    # wrong class: psi(4) - psi(1) = 1 + 1/2 + 1/3
    close(L.edl_digamma_loss(A211, torch.tensor([2])), 11 / 6)


def test_edl_kl_regulariser_and_annealing():
    # only true-class evidence -> alpha~ = [1,1,1] -> 0
    close(L.edl_kl_regulariser(A211, Y0), 0.0)
    # alpha~ = [1,3]: Dir density 3 p2^2, KL = log 3 + 2 (psi(3) - psi(4)) = log 3 - 2/3
    a = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    close(L.edl_kl_regulariser(a, Y0), math.log(3) - 2 / 3)
    assert L.edl_annealing(0) == 0.0 and L.edl_annealing(5) == 0.5 and L.edl_annealing(20) == 1.0
    assert L.edl_annealing(3, total=4) == 0.75


def test_dirichlet_kl_self_torch_and_monte_carlo():
    a = torch.tensor([[2.0, 1.0, 1.0], [0.7, 3.0, 1.5]], dtype=torch.float64)
    b = torch.tensor([[3.0, 1.0, 1.0], [2.0, 0.5, 4.0]], dtype=torch.float64)
    assert torch.allclose(L.dirichlet_kl(a, a), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    kl = L.dirichlet_kl(a, b)
    assert torch.allclose(kl, kl_divergence(Dirichlet(a), Dirichlet(b)), atol=1e-10)
    # Dir(2,1,1) = 6 p1, Dir(3,1,1) = 12 p1^2: KL = E[-log 2 - log p1] = 5/6 - log 2
    assert abs(kl[0].item() - (5 / 6 - math.log(2))) < 1e-10
    torch.manual_seed(0)
    qa, qb = Dirichlet(a[1]), Dirichlet(b[1])
    x = qa.sample((200_000,)).clamp_min(1e-300)
    mc = (qa.log_prob(x) - qb.log_prob(x)).mean()
    assert abs(mc.item() - kl[1].item()) < 0.03 * max(1.0, kl[1].item()), (mc.item(), kl[1].item())


def test_belief_matching_golden():
    # -E[log p_0] = 5/6; KL(Dir(2,1,1)||Dir(1,1,1)) = E[log(6 p1 / 2)] = log 3 - 5/6; sum = log 3
    close(L.belief_matching_loss(A211, Y0), math.log(3))
    # coef = 0.5: 5/6 + 0.5 (log 3 - 5/6)
    close(L.belief_matching_loss(A211, Y0, coef=0.5), 5 / 6 + 0.5 * (math.log(3) - 5 / 6))
    # prior = 2: KL(Dir(2,1,1)||Dir(2,2,2)) = log B(2,2,2) - log B(2,1,1) + (-1)(psi(1)-psi(4))*2
    #   log B(2,2,2) = -log 120, log B(2,1,1) = -log 6, psi(4)-psi(1) = 11/6 -> -log 20 + 11/3
    close(L.belief_matching_loss(A211, Y0, prior=2.0), 5 / 6 - math.log(20) + 11 / 3)


def test_reverse_kl_prior_network():
    # target_concentration=2, smoothing=0, K=3, y=0: target = [3,1,1]; KL = 5/6 - log 2 (see above)
    close(L.reverse_kl_prior_network_loss(A211, Y0, target_concentration=2.0, smoothing=0.0), 5 / 6 - math.log(2))
    # default target: 1 + 100 (0.99 + 0.01/3) on the true class, 1 + 100 * 0.01/3 elsewhere
    t = L.prior_network_target(torch.tensor([1]), 3)
    assert torch.allclose(t, torch.tensor([[1 + 1 / 3, 1 + 99 + 1 / 3, 1 + 1 / 3]]))
    close(L.reverse_kl_prior_network_loss(t.double(), torch.tensor([1])), 0.0, tol=1e-10)


def test_dirichlet_nll_golden():
    # Dir(1,1,1) density is 2 everywhere -> nll = -log 2
    p = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]]], dtype=torch.float64)
    close(L.dirichlet_nll(torch.ones(1, 3, dtype=torch.float64), p), -math.log(2))
    # Dir(2,1,1) = 6 p1: log(6*.5) = log 3, log(6*.25) = log 1.5 -> -(log 3 + log 1.5)/2
    p2 = torch.tensor([[[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]]], dtype=torch.float64)
    close(L.dirichlet_nll(A211, p2), -math.log(4.5) / 2)


def test_scores_golden():
    a11 = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    close(S.total_concentration(A211), 4.0)
    close(S.entropy_of_mean(a11), math.log(2))
    # -(2 * 1/2)(psi(2) - psi(3)) = 1/2
    close(S.expected_entropy(a11), 0.5)
    close(S.mutual_information(a11), math.log(2) - 0.5)
    # alpha=[2,1,1]: -[.5 (psi(3)-psi(5)) + .5 (psi(2)-psi(5))] = .5*7/12 + .5*13/12 = 5/6
    close(S.expected_entropy(A211), 5 / 6)
    close(S.entropy_of_mean(A211), 1.5 * math.log(2))
    close(S.mutual_information(A211), 1.5 * math.log(2) - 5 / 6)
    # uniform Dir(1,1): density 1 -> 0; Dir(1,1,1): density 2 -> -log 2
    close(S.differential_entropy(a11), 0.0)
    close(S.differential_entropy(torch.ones(1, 3, dtype=torch.float64)), -math.log(2))


def test_scores_properties_and_torch_entropy():
    torch.manual_seed(1)
    a = torch.rand(64, 5, dtype=torch.float64) * 10 + 0.05
    assert torch.allclose(S.differential_entropy(a), Dirichlet(a).entropy(), atol=1e-10)
    mi = S.mutual_information(a)
    assert (mi >= 0).all()
    assert (S.expected_entropy(a) <= S.entropy_of_mean(a)).all()
    # fixed mean, growing concentration: epistemic uncertainty decays towards 0
    mi100 = S.mutual_information(100 * a)
    assert (mi100 < mi).all() and (S.mutual_information(1e6 * a) < 1e-4).all()


def test_gradients_finite():
    logits = torch.randn(8, 4, requires_grad=True)
    y = torch.arange(8) % 4
    alpha = L.evidence_to_alpha(logits)
    p = torch.softmax(torch.randn(8, 3, 4), -1)
    total = (L.edl_mse_loss(alpha, y) + L.edl_kl_regulariser(alpha, y) + L.edl_log_loss(alpha, y)
             + L.edl_digamma_loss(alpha, y) + L.belief_matching_loss(alpha, y, coef=0.1)
             + L.reverse_kl_prior_network_loss(alpha, y) + L.dirichlet_nll(alpha, p)
             + S.mutual_information(alpha) + S.differential_entropy(alpha) + S.expected_entropy(alpha))
    assert total.shape == (8,)
    total.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_belief_matching_is_kl_to_fixed_target_up_to_constant():
    # 2402.06160 unifying view: BM(alpha) = coef * KL(Dir(alpha) || Dir(prior + onehot(y)/coef)) + const(y)
    a = torch.tensor([[2.0, 1.0, 1.0], [5.0, 0.5, 3.0], [0.3, 0.3, 9.0]], dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.long)
    coef, prior = 0.25, 1.5
    target = prior + torch.nn.functional.one_hot(y, 3).double() / coef
    diff = L.belief_matching_loss(a, y, prior=prior, coef=coef) - coef * L.dirichlet_kl(a, target)
    assert torch.allclose(diff, diff[0].expand(3), atol=1e-10)
