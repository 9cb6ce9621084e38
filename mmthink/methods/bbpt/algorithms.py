"""Gradient-free (CMA-ES) and likelihood-free (ABC-SMC) searches over the prompt latent z (arXiv 2305.00593).

Each algorithm returns a collection of latent points Z (P, d) with weights (P,), the prompt
distribution whose predictive is averaged at test time:
- ``cma_ensemble``: M independent CMA-ES runs on the training cross-entropy, each keeping its best
  prompt by dev accuracy; uniform weights, softmax-average predictive.
- ``cma_elbo``: CMA-ES over the mean and diagonal variance of a Gaussian q(z), fitness = negative ELBO;
  the q with the best dev loss is sampled.
- ``abc_smc``: labels only; particles accepted when their training accuracy reaches a tolerance that
  rises by 1/N per round, proposals from a Gaussian mixture around the accepted particles; the
  population with the best dev accuracy is kept; vote-histogram predictive.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mmthink.errors import UserError
from mmthink.methods.bbpt.blackbox import BlackBox
from mmthink.methods.bbpt.predictive import softmax_average, vote_histogram
from mmthink.methods.bbpt.projection import kl_diag_gaussian, negative_elbo, to_prompts


@dataclass
class Objective:
    """What the searches may ask: training loss / accuracy of latent points, dev score of a collection."""

    box: BlackBox
    A: Tensor  # (d, L·D)
    train_texts: list[str]
    train_labels: Tensor
    dev_texts: list[str]
    dev_labels: Tensor
    votes: bool = False  # dev predictive = vote histogram (always so for a labels-only box)

    def prompts(self, z: Tensor) -> Tensor:
        return to_prompts(z, self.A, self.box.info.n_prompt_tokens)

    def train_ce(self, z: Tensor) -> Tensor:
        """(P,) mean cross-entropy of each latent point on the training set."""
        logits = self.box.logits(self.prompts(z), self.train_texts)
        y = self.train_labels.long().expand(len(z), -1)
        return torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(-1)

    def train_accuracy(self, z: Tensor) -> Tensor:
        """(P,) training accuracy of each latent point (labels only)."""
        return self.box.labels(self.prompts(z), self.train_texts).eq(self.train_labels.long()).double().mean(-1)

    def dev_score(self, z: Tensor, weights: Tensor | None = None) -> tuple[float, float]:
        """(accuracy, mean NLL) of the collection's predictive on the dev set (NLL is inf with labels only)."""
        if self.box.info.level == "logits" and not self.votes:
            probs = softmax_average(self.box.logits(self.prompts(z), self.dev_texts), weights)
        else:
            probs = vote_histogram(self.box.labels(self.prompts(z), self.dev_texts), self.box.info.n_classes, weights)
        y = self.dev_labels.long()
        acc = float(probs.argmax(-1).eq(y).double().mean())
        nll = float(-torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-12)).mean())
        return acc, nll


    def dev_scores(self, z: Tensor) -> list[tuple[float, float]]:
        """``dev_score`` of each of G equally weighted collections z (G, S, d), asked of the box at once."""
        g, s, d = z.shape
        y = self.dev_labels.long()
        if self.box.info.level == "logits" and not self.votes:
            logits = self.box.logits(self.prompts(z.reshape(g * s, d)), self.dev_texts)  # (G·S, N, C)
            probs = torch.softmax(logits.double(), -1).reshape(g, s, *logits.shape[1:]).mean(1)
        else:
            labels = self.box.labels(self.prompts(z.reshape(g * s, d)), self.dev_texts).reshape(g, s, -1)
            probs = torch.stack([vote_histogram(labels[i], self.box.info.n_classes) for i in range(g)])
        acc = probs.argmax(-1).eq(y).double().mean(-1)
        nll = -torch.log(probs[:, torch.arange(len(y)), y].clamp_min(1e-12)).mean(-1)
        return list(zip(acc.tolist(), nll.tolist()))


def _cma(x0: list[float], sigma0: float, popsize: int, iters: int, seed: int, bounds=None):
    import cma

    # cma treats seed 0 as "seed from the clock": shift so that every seed is reproducible.
    opts = {"seed": seed + 1, "popsize": popsize, "maxiter": iters, "verbose": -9}
    if bounds is not None:
        opts["bounds"] = bounds
    return cma.CMAEvolutionStrategy(x0, sigma0, inopts=opts)


def _better(score: tuple[float, float], best: tuple[float, float] | None) -> bool:
    """Higher dev accuracy wins; ties go to the lower dev NLL."""
    return best is None or (score[0], -score[1]) > (best[0], -best[1])


def _resume(ckpt, fresh: dict, progress) -> dict:
    """The search state of ``ckpt`` (ticking the progress bar past what it did), else ``fresh``."""
    state = ckpt.load() if ckpt is not None else None
    if state is None:
        return fresh
    if progress:
        progress(state["ticks"])
    return state


def _tick(state: dict, progress, ckpt, where: str) -> None:
    state["ticks"] += 1
    if ckpt is not None:
        ckpt.save(state, where)
    if progress:
        progress(1)


def cma_ensemble(obj: Objective, d: int, members: int = 3, popsize: int = 20, iters: int = 300,
                 sigma0: float = 1.0, eval_every: int = 5, seed: int = 0, progress=None,
                 ckpt=None) -> tuple[Tensor, Tensor, list]:
    """M CMA-ES runs (seeds seed..seed+M−1) minimising training CE from z = 0; each keeps its best prompt by dev score.

    ``ckpt`` (a ``resume.SearchCheckpoint``) saves the state after every generation and resumes from it.
    """
    s = _resume(ckpt, {"member": 0, "es": None, "chosen": [], "log": [], "ticks": 0}, progress)
    for m in range(s["member"], members):
        if s["es"] is None:
            s.update(es=_cma([0.0] * d, sigma0, popsize, iters, seed + m), best=None, best_z=torch.zeros(1, d), gen=0)
        es = s["es"]
        while not es.stop():
            xs = es.ask()
            z = torch.tensor(np.array(xs), dtype=torch.float32)
            losses = obj.train_ce(z)
            es.tell(xs, losses.double().tolist())
            s["gen"] += 1
            if s["gen"] % eval_every == 0 or es.stop():
                cand = z[int(losses.argmin())][None]
                score = obj.dev_score(cand)
                if _better(score, s["best"]):
                    s["best"], s["best_z"] = score, cand
                s["log"].append({"member": m, "generation": s["gen"], "train_ce": float(losses.min()),
                                 "dev_accuracy": score[0], "dev_nll": score[1], "queries": obj.box.queries})
            if es.stop():  # the member is done: its prompt joins the ensemble before the state is saved
                s["chosen"].append(s["best_z"])
                s.update(member=m + 1, es=None)
            _tick(s, progress, ckpt, f"member {m + 1}, generation {s['gen']}")
    z = torch.cat(s["chosen"])
    return z, torch.full((members,), 1.0 / members), s["log"]


def cma_elbo(obj: Objective, d: int, popsize: int = 20, iters: int = 300, sigma0: float = 1.0,
             bound: float = 100.0, n_mc: int = 10, kl_weight: float = 1e-3, prior_var: float = 50.0,
             n_samples: int = 100, seed: int = 0, progress=None, ckpt=None) -> tuple[Tensor, Tensor, list]:
    """CMA-ES over (mean, variance) of q(z) = N(m, diag|v|) from (0, 1), fitness = negative ELBO.

    Every candidate of a generation is scored with the same standard-normal draws (common random
    numbers), so candidates are compared on equal noise. As the official code, every candidate q is
    also scored on the dev set (the NLL of its samples' averaged predictive) and the q with the lowest
    dev NLL over the whole search is sampled ``n_samples`` times at the end. ``ckpt``: as ``cma_ensemble``.
    """
    g = torch.Generator().manual_seed(seed)
    fresh = {"es": None, "best": None, "best_q": (torch.zeros(d), torch.ones(d)), "log": [], "gen": 0, "ticks": 0}
    s = _resume(ckpt, fresh, progress)
    if s["es"] is None:
        s["es"] = _cma([0.0] * d + [1.0] * d, sigma0, popsize, iters, seed, bounds=[-bound, bound])
    else:
        g.set_state(s["generator"])
    es, n = s["es"], len(obj.train_texts)
    while not es.stop():
        xs = es.ask()
        params = torch.tensor(np.array(xs), dtype=torch.float32)
        mean, var = params[:, :d], params[:, d:].abs().clamp_min(1e-8)
        eps = torch.randn(n_mc, d, generator=g)
        z = (mean[:, None] + var.sqrt()[:, None] * eps[None]).reshape(-1, d)  # (pop·S, d)
        ce = obj.train_ce(z).reshape(len(xs), n_mc)
        fitness = negative_elbo(ce, n, kl_diag_gaussian(mean, var, prior_var), kl_weight)
        es.tell(xs, fitness.double().tolist())
        s["gen"] += 1
        scores = obj.dev_scores(z.reshape(len(xs), n_mc, d))
        j = min(range(len(xs)), key=lambda c: scores[c][1])  # the official rule: the lowest dev NLL
        if s["best"] is None or scores[j][1] < s["best"][1]:
            s["best"], s["best_q"] = scores[j], (mean[j], var[j])
        i = int(fitness.argmin())
        s["log"].append({"generation": s["gen"], "neg_elbo": float(fitness[i]), "train_ce": float(ce[i].mean()),
                         "dev_accuracy": scores[j][0], "dev_nll": scores[j][1], "best_dev_nll": s["best"][1],
                         "queries": obj.box.queries})
        s["generator"] = g.get_state()
        _tick(s, progress, ckpt, f"generation {s['gen']}")
    m, v = s["best_q"]
    z = m + v.sqrt() * torch.randn(n_samples, d, generator=g)
    return z, torch.full((n_samples,), 1.0 / n_samples), s["log"]


def abc_smc(obj: Objective, d: int, n_particles: int = 100, popsize: int = 20, prior_var: float = 50.0,
            kernel_scale: float = 10.0, max_batches: int = 50, max_rounds: int = 100, seed: int = 0,
            progress=None, ckpt=None) -> tuple[Tensor, Tensor, list]:
    """ABC-SMC with training accuracy as the summary: tolerance ε₀ = best accuracy of ``popsize`` prior draws,
    then ε ← ε + 1/N after each round (while ε ≤ 1). Round 0 draws from the prior N(0, s I); later rounds from
    the mixture Σ_j w_j N(z_j, diag(c·v/mean(v))) around the previous particles (v: their weighted variance,
    c = ``kernel_scale``). Weights stay uniform (the official default). As the official code, a round keeps
    simulating (batches of ``popsize``) until its population is full; only a round that has accepted
    nothing after ``max_batches`` batches ends the search (round 0 always fills: its tolerance is the best
    of ``popsize`` prior draws). ``ckpt`` saves the state after every round and resumes from it.
    """
    g = torch.Generator().manual_seed(seed)
    n = len(obj.train_texts)
    prior_std = math.sqrt(prior_var)
    s = _resume(ckpt, {"round": 0, "particles": None, "weights": None, "best": None, "best_pop": None, "log": [],
                       "ticks": 0, "done": False}, progress)
    if "eps" in s:
        g.set_state(s["generator"])
    else:
        s["eps"] = float(obj.train_accuracy(prior_std * torch.randn(popsize, d, generator=g)).max())
    for rnd in range(s["round"], max_rounds):
        particles, weights, eps = s["particles"], s["weights"], s["eps"]
        if s["done"] or eps > 1.0 + 1e-9:
            break
        if particles is not None:
            w = weights.double()
            mean = (w[:, None] * particles.double()).sum(0)
            var = (w[:, None] * (particles.double() - mean) ** 2).sum(0)
            kernel_std = (kernel_scale * var / var.mean().clamp_min(1e-12)).sqrt().float()
        accepted, batches = [], 0
        while len(accepted) < n_particles:
            if particles is not None and not accepted and batches >= max_batches:
                break
            if particles is None:
                z = prior_std * torch.randn(popsize, d, generator=g)
            else:
                parent = torch.multinomial(weights.double(), popsize, replacement=True, generator=g)
                z = particles[parent] + kernel_std * torch.randn(popsize, d, generator=g)
            acc = obj.train_accuracy(z)
            accepted += [z[i] for i in range(popsize) if acc[i] >= eps - 1e-9][: n_particles - len(accepted)]
            batches += 1
        if len(accepted) < n_particles:
            s["log"].append({"round": rnd, "tolerance": eps, "accepted": len(accepted), "stopped": True,
                             "queries": obj.box.queries})
            s["done"] = True
        else:
            particles = torch.stack(accepted)
            weights = torch.full((n_particles,), 1.0 / n_particles)
            score = obj.dev_score(particles, weights)
            if _better(score, s["best"]):
                s["best"], s["best_pop"] = score, particles
            s["log"].append({"round": rnd, "tolerance": eps, "accepted": n_particles, "batches": batches,
                             "dev_accuracy": score[0], "queries": obj.box.queries})
            s.update(particles=particles, weights=weights, eps=eps + 1.0 / n)
        s.update(round=rnd + 1, generator=g.get_state())
        _tick(s, progress, ckpt, f"round {rnd}")
    if s["best_pop"] is None:
        raise UserError("ABC-SMC filled no population: raise abc.max_batches or lower abc.n_particles")
    best_pop = s["best_pop"]
    return best_pop, torch.full((len(best_pop),), 1.0 / len(best_pop)), s["log"]
