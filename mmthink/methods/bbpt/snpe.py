"""Sequential neural posterior estimation over the prompt latent z, labels only (the `sbi` package).

A simulation is one prompt z and the black box's predicted labels on the training set, one-hot and
flattened (N·C). Each round draws ``n_sims`` prompts from the current proposal (the prior N(0, s I)
first), trains a masked autoregressive flow q(z | x) with sbi's NPE-C (automatic posterior
transformation, which corrects for proposals other than the prior), and conditions it on the
predictions of the round's most accurate simulation, as the official code does; the posterior at that
point is the next proposal. The round whose posterior samples score best on the dev set is kept;
vote-histogram predictive.
"""
from __future__ import annotations

import torch
from torch import Tensor

from mmthink.errors import UserError


def _sbi():
    try:
        from sbi.inference import NPE
        from sbi.neural_nets import posterior_nn
    except ImportError:
        raise UserError("algorithm 'snpe' needs the sbi package: pip install 'mmthink[sbi]' (or pip install sbi)") from None
    return NPE, posterior_nn


class _NoTracking:
    """sbi's tracker protocol, doing nothing: its default writes TensorBoard files into the working directory."""

    log_dir = None

    def log_metric(self, name, value, step=None) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_params(self, params) -> None:
        pass

    def add_figure(self, name, figure, step=None) -> None:
        pass

    def flush(self) -> None:
        pass


def simulate(obj, z: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    """(x (P, N·C) one-hot predictions, training accuracy (P,)) of latent points z, ``batch`` prompts per call."""
    c = obj.box.info.n_classes
    labels = torch.cat([obj.box.labels(obj.prompts(z[i : i + batch]), obj.train_texts) for i in range(0, len(z), batch)])
    x = torch.nn.functional.one_hot(labels.long(), c).float().reshape(len(z), -1)
    return x, labels.eq(obj.train_labels.long()).double().mean(-1)


def snpe(obj, d: int, rounds: int = 5, n_sims: int = 1000, n_samples: int = 100, prior_var: float = 50.0,
         batch: int = 20, hidden_features: int = 60, num_transforms: int = 10, max_epochs: int = 200,
         seed: int = 0, progress=None) -> tuple[Tensor, Tensor, list]:
    """Returns (z (n_samples, d), uniform weights, per-round log)."""
    NPE, posterior_nn = _sbi()
    torch.manual_seed(seed)  # sbi draws from the global generator: proposals, training batches, samples
    prior = torch.distributions.MultivariateNormal(torch.zeros(d), prior_var * torch.eye(d))
    # One-hot predictions have constant columns (a text every prompt gets right): z-scoring x would divide by 0.
    estimator = posterior_nn(model="maf", hidden_features=hidden_features, num_transforms=num_transforms, z_score_x="none")
    inference = NPE(prior=prior, density_estimator=estimator, show_progress_bars=False, tracker=_NoTracking())
    proposal, best, best_z, log = prior, None, None, []
    for rnd in range(rounds):
        theta = proposal.sample((n_sims,)).reshape(n_sims, d).float()
        x, acc = simulate(obj, theta, batch)
        net = inference.append_simulations(theta, x, proposal=proposal).train(max_num_epochs=max_epochs)
        x_o = x[int(acc.argmax())]
        posterior = inference.build_posterior(net).set_default_x(x_o)
        z = posterior.sample((n_samples,), show_progress_bars=False).reshape(n_samples, d).float()
        score = obj.dev_score(z)
        if best is None or score[0] > best[0]:
            best, best_z = score, z
        log.append({"round": rnd, "best_train_accuracy": float(acc.max()), "mean_train_accuracy": float(acc.mean()),
                    "dev_accuracy": score[0], "queries": obj.box.queries})
        proposal = posterior
        if progress:
            progress(1)
    return best_z, torch.full((n_samples,), 1.0 / n_samples), log
