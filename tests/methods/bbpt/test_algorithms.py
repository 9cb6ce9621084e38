"""CMA-ES ensemble, CMA-ES ELBO and ABC-SMC (mmthink.methods.bbpt.algorithms) on a black box with a known optimum."""
import pytest
import torch

from mmthink.errors import UserError
from mmthink.methods.bbpt import algorithms as alg
from mmthink.methods.bbpt.blackbox import LabelOnly

D_Z = 8  # the latent size of the conftest's ``problem``


def test_cma_ensemble_lowers_the_training_loss_and_is_reproducible(problem):
    A, box, texts, y = problem
    obj = alg.Objective(box, A, texts, y, texts, y)
    ce0 = float(obj.train_ce(torch.zeros(1, D_Z)))
    z, w, log = alg.cma_ensemble(obj, D_Z, members=2, popsize=8, iters=30, eval_every=5, seed=1)
    assert z.shape == (2, D_Z) and torch.allclose(w, torch.full((2,), 0.5))
    assert float(obj.train_ce(z).max()) < 0.5 * ce0
    assert {r["member"] for r in log} == {0, 1} and 0 < log[-1]["queries"] <= box.queries
    z2, _, _ = alg.cma_ensemble(obj, D_Z, members=2, popsize=8, iters=30, eval_every=5, seed=1)
    assert torch.equal(z, z2)


def test_cma_elbo_moves_q_towards_the_optimum(problem):
    A, box, texts, y = problem
    obj = alg.Objective(box, A, texts, y, texts, y)
    ce0 = float(obj.train_ce(torch.zeros(1, D_Z)))
    z, w, log = alg.cma_elbo(obj, D_Z, popsize=8, iters=30, n_mc=3, n_samples=16, seed=0, sigma0=0.5)
    assert z.shape == (16, D_Z) and len(log) == 30
    assert float(obj.train_ce(z).mean()) < ce0
    assert float((z.mean(0) - 1.0).norm()) < float(torch.ones(D_Z).norm())  # closer to z* = 1 than z = 0 is
    assert log[-1]["neg_elbo"] < log[0]["neg_elbo"]


def test_abc_smc_raises_its_tolerance_and_keeps_particles_above_it(problem):
    A, box, texts, y = problem
    obj = alg.Objective(LabelOnly(box), A, texts, y, texts, y)
    z, w, log = alg.abc_smc(obj, D_Z, n_particles=6, popsize=10, prior_var=1.0, kernel_scale=0.3, max_batches=20, max_rounds=4, seed=0)
    full = [r for r in log if not r.get("stopped")]
    assert len(full) >= 2
    steps = [b["tolerance"] - a["tolerance"] for a, b in zip(full, full[1:])]
    assert steps == pytest.approx([1 / len(texts)] * len(steps))
    best = max(full, key=lambda r: r["dev_accuracy"])
    assert len(z) == 6 and torch.allclose(w, torch.full((6,), 1 / 6))
    assert float(obj.train_accuracy(z).min()) >= best["tolerance"] - 1e-9
    # Later rounds only accept better prompts than the prior's best draw.
    assert full[-1]["tolerance"] > full[0]["tolerance"]


def test_abc_smc_rounds_fill_their_population_and_only_an_empty_round_stops(problem):
    # The official rule: simulate until the population is full; stop only after max_batches batches
    # that accepted nothing (a partly filled round keeps simulating).
    A, box, texts, y = problem
    obj = alg.Objective(LabelOnly(box), A, texts, y, texts, y)
    z, _, log = alg.abc_smc(obj, D_Z, n_particles=6, popsize=10, prior_var=1.0, kernel_scale=0.3, max_batches=2,
                            max_rounds=len(texts) + 2, seed=0)
    assert all(r["accepted"] == 6 for r in log if not r.get("stopped"))
    stopped = [r for r in log if r.get("stopped")]
    assert all(r["accepted"] == 0 for r in stopped) and len(stopped) <= 1
    assert len(z) == 6


def test_searches_that_need_logits_refuse_a_label_only_box(problem):
    A, box, texts, y = problem
    obj = alg.Objective(LabelOnly(box), A, texts, y, texts, y)
    with pytest.raises(UserError, match="labels only"):
        alg.cma_ensemble(obj, D_Z, members=1, popsize=4, iters=2)


def test_snpe_posterior_beats_the_prior(problem):
    pytest.importorskip("sbi")
    from mmthink.methods.bbpt.snpe import snpe

    A, box, texts, y = problem
    obj = alg.Objective(LabelOnly(box), A, texts, y, texts, y)
    prior_acc = float(obj.train_accuracy(torch.randn(200, D_Z, generator=torch.Generator().manual_seed(1))).mean())
    before = obj.box.queries
    z, w, log = snpe(obj, D_Z, rounds=1, n_sims=500, n_samples=50, prior_var=1.0, batch=50, hidden_features=30,
                     num_transforms=3, max_epochs=100, seed=0)
    assert z.shape == (50, D_Z) and len(log) == 1 and log[0]["queries"] - before == (500 + 50) * len(texts)
    assert float(obj.train_accuracy(z).mean()) > prior_acc + 0.15


def test_dev_scores_of_groups_equal_dev_score_of_each(problem):
    A, box, texts, y = problem
    obj = alg.Objective(box, A, texts, y, texts, y)
    z = torch.randn(3, 4, D_Z, generator=torch.Generator().manual_seed(0))
    for got, want in zip(obj.dev_scores(z), [obj.dev_score(z[i]) for i in range(3)]):
        assert got == pytest.approx(want, rel=1e-6)


def test_cma_elbo_keeps_the_q_with_the_lowest_dev_nll_of_every_candidate(problem, monkeypatch):
    # The official rule: every candidate q of every generation is scored on dev; the lowest NLL wins.
    A, box, texts, y = problem
    obj = alg.Objective(box, A, texts, y, texts, y)
    seen = []
    real = obj.dev_scores
    monkeypatch.setattr(obj, "dev_scores", lambda z: seen.append(real(z)) or seen[-1])
    _, _, log = alg.cma_elbo(obj, D_Z, popsize=6, iters=5, n_mc=2, n_samples=4, seed=0)
    assert all(len(s) == 6 for s in seen) and len(seen) == 5  # all six candidates, each generation
    lowest = min(nll for gen in seen for _, nll in gen)
    assert log[-1]["best_dev_nll"] == pytest.approx(lowest)
