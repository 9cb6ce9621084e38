"""Golden tests for the mixture-of-Dirichlets target (variational Bayes) and the PostNet pieces."""
import math

import torch
from torch.distributions import Normal

from mmthink.methods.edl import losses as L

D = torch.float64


def test_dirichlet_expected_log_golden():
    # psi(1) - psi(2) = -1; Dir(2,1,1): psi(2) - psi(4) = -5/6, psi(1) - psi(4) = -11/6
    assert torch.allclose(L.dirichlet_expected_log(torch.ones(2, dtype=D)), torch.tensor([-1.0, -1.0], dtype=D))
    got = L.dirichlet_expected_log(torch.tensor([2.0, 1.0, 1.0], dtype=D))
    assert torch.allclose(got, torch.tensor([-5 / 6, -11 / 6, -11 / 6], dtype=D))


def test_mixture_elbo_at_the_conjugate_posterior_is_the_log_evidence():
    # One component: q = the exact posterior Dir(1 + counts), so ELBO = log p(y) = log B(3,2) - log B(1,1)
    #   = log(Γ(3)Γ(2)/Γ(5)) = log(2/24) = -log 12 (labels 0, 0, 1).
    y = torch.tensor([0, 0, 1])
    log_gate = torch.zeros(3, 1, dtype=D)
    beta = L.mixture_vb_update(torch.ones(3, 1, dtype=D), y, 2, prior=1.0)
    assert torch.equal(beta, torch.tensor([[3.0, 2.0]], dtype=D))
    elbo = L.mixture_elbo(log_gate, beta, y)
    assert abs(elbo.item() + math.log(12)) < 1e-10
    # any other q is a looser bound
    for other in ([[2.0, 2.0]], [[30.0, 20.0]], [[3.5, 1.5]]):
        assert L.mixture_elbo(log_gate, torch.tensor(other, dtype=D), y) < elbo
    # Two components, hard gate (rows 0, 1 -> component 0; row 2 -> component 1):
    #   log B(3,1) + log B(1,2) = log(1/3) + log(1/2) = -log 6
    log_gate = torch.log(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=D))
    beta = L.mixture_vb_update(torch.exp(log_gate), y, 2)
    assert torch.equal(beta, torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=D))
    assert abs(L.mixture_elbo(log_gate, beta, y).item() + math.log(6)) < 1e-10


def test_mixture_kl_is_counted_once_per_dataset():
    # Doubling the data doubles the likelihood term but not the KL: the posterior concentration grows with n.
    y = torch.tensor([0, 1, 0])
    log_gate = torch.zeros(3, 1, dtype=D)
    beta = torch.tensor([[2.0, 5.0]], dtype=D)
    kl = L.dirichlet_kl(beta, torch.ones_like(beta)).sum()
    one = L.mixture_elbo(log_gate, beta, y)
    two = L.mixture_elbo(log_gate.repeat(2, 1), beta, y.repeat(2))
    assert torch.allclose(two - 2 * one, kl)


def test_mixture_responsibilities_and_vb_update_golden():
    # uniform gate, beta_0 = (2,1), beta_1 = (1,2), y = 0: E log π = psi(2)-psi(3) = -1/2 vs psi(1)-psi(3) = -3/2
    log_gate = torch.log(torch.full((1, 2), 0.5, dtype=D))
    beta = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=D)
    r = L.mixture_responsibilities(log_gate, beta, torch.tensor([0]))
    assert torch.allclose(r, torch.tensor([[1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))]], dtype=D))
    # log-lik = log(0.5 e^{-1/2} + 0.5 e^{-3/2})
    ll = L.mixture_log_lik(log_gate, beta, torch.tensor([0]))
    assert abs(ll.item() - math.log(0.5 * math.exp(-0.5) + 0.5 * math.exp(-1.5))) < 1e-12
    # beta_zc = prior + sum_i r_iz [y_i = c]
    resp = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=D)
    got = L.mixture_vb_update(resp, torch.tensor([0, 1]), 2, prior=1.0)
    assert torch.equal(got, torch.tensor([[2.0, 1.5], [1.0, 1.5]], dtype=D))


def test_vb_em_never_lowers_the_elbo():
    torch.manual_seed(0)
    y = torch.randint(0, 3, (40,))
    log_gate = torch.log_softmax(torch.randn(40, 4, dtype=D), -1)
    beta = torch.rand(4, 3, dtype=D) * 3 + 0.5
    last = L.mixture_elbo(log_gate, beta, y)
    for _ in range(5):
        beta = L.mixture_vb_update(L.mixture_responsibilities(log_gate, beta, y), y, 3)
        now = L.mixture_elbo(log_gate, beta, y)
        assert now >= last - 1e-9
        last = now


def test_sample_mixture_target_moments():
    torch.manual_seed(0)
    beta = torch.tensor([[6.0, 2.0, 2.0], [1.0, 1.0, 8.0]], dtype=D)
    gate = torch.tensor([[1.0, 0.0], [0.25, 0.75]], dtype=D)
    s = L.sample_mixture_target(gate, beta, 40_000)
    assert s.shape == (2, 40_000, 3) and torch.allclose(s.sum(-1), torch.ones(2, 40_000, dtype=D))
    mean = gate @ (beta / beta.sum(-1, keepdim=True))
    assert torch.allclose(s.mean(1), mean, atol=4e-3)
    # one-hot gate: the draws are Dir(6,2,2); Var π_1 = m(1-m)/(S+1) = .6*.4/11
    assert abs(s[0, :, 0].var().item() - 0.6 * 0.4 / 11) < 1e-3
    # mixed gate: independent components add variances, Var = .25^2 Var_0 + .75^2 Var_1 (class 2)
    var = 0.25 ** 2 * (0.2 * 0.8 / 11) + 0.75 ** 2 * (0.8 * 0.2 / 11)
    assert abs(s[1, :, 2].var().item() - var) < 1e-3


def test_diag_gaussian_log_prob_matches_torch():
    torch.manual_seed(0)
    z, m, ls = torch.randn(5, 3, dtype=D), torch.randn(3, dtype=D), torch.randn(3, dtype=D) * 0.3
    want = Normal(m, torch.exp(ls)).log_prob(z).sum(-1)
    assert torch.allclose(L.diag_gaussian_log_prob(z, m, ls), want)
    # N(0; 0, 1) in 1-D: -log(2π)/2
    assert abs(L.diag_gaussian_log_prob(torch.zeros(1, 1), torch.zeros(1), torch.zeros(1)).item()
               + 0.5 * math.log(2 * math.pi)) < 1e-6


def test_radial_flow_golden_and_jacobian():
    # D=2, z0=0, a=1, b=1, z=(1,0): r=1, h=1/2 -> f=(1.5,0); log|det| = log 1.5 + log(1 + 1/2 - 1/4)
    f, logdet = L.radial_flow(torch.tensor([[1.0, 0.0]], dtype=D), torch.zeros(2, dtype=D),
                              torch.tensor(1.0, dtype=D), torch.tensor(1.0, dtype=D))
    assert torch.allclose(f, torch.tensor([[1.5, 0.0]], dtype=D))
    assert abs(logdet.item() - math.log(1.5 * 1.25)) < 1e-12
    # log|det| against autograd's Jacobian, D = 3, a contracting layer (b < 0)
    z0 = torch.tensor([0.3, -0.2, 0.5], dtype=D)
    a, b = L.radial_params(torch.tensor(0.2, dtype=D), torch.tensor(-1.0, dtype=D))
    assert b < 0 and b > -a
    for z in torch.randn(4, 3, dtype=D):
        jac = torch.autograd.functional.jacobian(lambda v: L.radial_flow(v, z0, a, b)[0], z)
        assert abs(torch.linalg.slogdet(jac)[1].item() - L.radial_flow(z, z0, a, b)[1].item()) < 1e-10


def test_radial_flow_density_integrates_to_one():
    # p(z) = N(f(z); m, s) |det df/dz| for two stacked layers, summed over a fine 2-D grid
    torch.manual_seed(0)
    t = torch.linspace(-10, 10, 801, dtype=D)
    step = (t[1] - t[0]).item()
    z = torch.cartesian_prod(t, t)
    total = torch.zeros(len(z), dtype=D)
    for _ in range(2):
        a, b = L.radial_params(torch.randn((), dtype=D), torch.randn((), dtype=D) + 1)
        z, logdet = L.radial_flow(z, torch.randn(2, dtype=D), a, b)
        total = total + logdet
    log_p = total + L.diag_gaussian_log_prob(z, torch.tensor([0.5, -0.5], dtype=D), torch.tensor([0.0, -0.3], dtype=D))
    mass = torch.exp(log_p).sum().item() * step * step
    assert abs(mass - 1.0) < 2e-3, mass


def test_postnet_alpha_and_loss_golden():
    # alpha_c = 1 + N_c p(z|c): N = (10, 20), p = (.5, .1) -> (6, 3)
    a = L.postnet_alpha(torch.log(torch.tensor([[0.5, 0.1]])), torch.log(torch.tensor([10.0, 20.0])))
    assert torch.allclose(a, torch.tensor([[6.0, 3.0]]))
    # the cap keeps a far-out latent finite
    assert torch.isfinite(L.postnet_alpha(torch.tensor([[500.0, -500.0]]), torch.zeros(2))).all()
    # UCE of Dir(2,1,1), y=0: psi(4) - psi(2) = 5/6; h(Dir(2,1,1)) = -E[log 6 p1] = -log 6 + 5/6
    a211 = torch.tensor([[2.0, 1.0, 1.0]], dtype=D)
    assert abs(L.postnet_loss(a211, torch.tensor([0]), entropy_reg=0.0).item() - 5 / 6) < 1e-12
    want = 5 / 6 - 0.1 * (5 / 6 - math.log(6))
    assert abs(L.postnet_loss(a211, torch.tensor([0]), entropy_reg=0.1).item() - want) < 1e-12


def test_new_gradients_finite():
    logits = torch.randn(6, 4, requires_grad=True)
    beta = torch.rand(4, 3) + 0.5
    y = torch.arange(6) % 3
    elbo = L.mixture_elbo(torch.log_softmax(logits, -1), beta, y)
    dens = L.diag_gaussian_log_prob(logits[:, :2].unsqueeze(1), torch.zeros(3, 2), torch.zeros(3, 2))
    alpha = L.postnet_alpha(dens, torch.log(torch.tensor([5.0, 5.0, 5.0])))
    total = -elbo + L.postnet_loss(alpha, y).sum()
    total.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
