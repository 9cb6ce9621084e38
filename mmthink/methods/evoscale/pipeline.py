"""``mmthink eval evoscale``: EvoScale against best-of-N and greedy decoding at the same budget.

setup (rows, sampler: local model or endpoint) -> EvoScale's T iterations of M samples -> the baselines
-> every candidate to ``candidates.jsonl``, the curves and summary to ``eval.json``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

from mmthink.data.rows import load_rows
from mmthink.io import write_jsonl
from mmthink.methods.evoscale import search
from mmthink.methods.evoscale.config import EvoScaleRecipe
from mmthink.methods.evoscale.tasks import problem_id, prompt_of, scorer, validate_row
from mmthink.runner.checkpoint import write_eval


def _sampler(cfg: EvoScaleRecipe, checkpoint: str):
    from mmthink.ops.sampler import EndpointSampler, LocalSampler

    s = cfg.sampler
    if s.endpoint:
        return EndpointSampler(s.endpoint, checkpoint, os.environ.get(s.api_key_env), chat=s.chat)
    from mmthink.models.loading import load_model

    loaded = load_model(cfg.model, train=False)
    loaded.model.eval()
    return LocalSampler(loaded.model, loaded.tokenizer, s.batch_rows, s.chat)


def _ranker(cfg: EvoScaleRecipe, sampler):
    """What selection ranks by: search.BY_SCORE (tests), a reward model, the model's own judgment, or None."""
    e = cfg.evo
    if e.scorer == "tests":
        return search.BY_SCORE
    if e.scorer == "none":
        return None
    if e.scorer == "reward_model":
        import torch

        from mmthink.models.reward import OutcomeRewardModel

        device = "cuda" if torch.cuda.is_available() else "cpu"
        rm = OutcomeRewardModel(e.reward_model, device, cfg.sampler.batch_rows, key="evo.reward_model")
        return lambda pairs: rm.score_pairs([prompt_of(r) for r, _ in pairs], [t for _, t in pairs])
    from mmthink.ops.judge import QUESTION, judge, judge_prompt

    question = e.judge_question or QUESTION
    return lambda pairs: judge(sampler.model, sampler.tokenizer, [judge_prompt(prompt_of(r), t, question)
                                                                   for r, t in pairs], sampler.chat,
                               cfg.sampler.batch_rows)


def _say(text: str) -> None:
    print(f"[evoscale] {text}", file=sys.stderr, flush=True)


def summary(candidates: list, budget: int, m: int, ranked: bool) -> dict:
    """Mean best true score at n = 1, M, 2M, ..., N (and, where selection is by a reward model or a judge,
    the true score of its pick); the final answers' mean score and pass rate (score 1)."""
    curve = search.mean_curve(candidates)
    finals = search.final_answers(candidates, ranked).values()
    out = {"final_score": sum(c.score for c in finals) / len(finals),
           "final_pass": sum(c.score >= 1.0 for c in finals) / len(finals)}
    marks = sorted({1, *range(m, budget + 1, m), budget})
    out["best_at"] = {str(n): curve[n - 1] for n in marks if n <= len(curve)}
    if any(c.rank is not None for c in candidates):
        picked = search.selected_curve(candidates)
        out["selected_at"] = {str(n): picked[n - 1] for n in marks if n <= len(picked)}
    steps, reached = search.samples_to_reach(candidates, 1.0)
    out["samples_to_full_score"] = steps
    out["reach_full_score"] = reached
    return out


def evaluate(cfg: EvoScaleRecipe, checkpoint: str, data: str, out: Optional[str] = None) -> dict:
    """Run EvoScale and the baselines on the rows of ``data``; writes eval.json and candidates.jsonl."""
    cfg.model.name = checkpoint
    cfg.check()
    rows = [dict(r, id=problem_id(r)) for r in load_rows(data, validate_row, cfg.eval.limit)]
    sampler = _sampler(cfg, checkpoint)
    s, e = cfg.sampler, cfg.evo
    budget = e.m * e.t

    def sample(prompts, n, temperature, seed):
        t0 = time.monotonic()
        texts = sampler.sample(prompts, n, s.max_new_tokens, temperature, s.top_p, seed)
        _say(f"{len(prompts)} prompts x {n} samples in {time.monotonic() - t0:.0f} s")
        return texts

    score = scorer(cfg.eval.timeout_s)
    rank = _ranker(cfg, sampler)
    t0 = time.monotonic()
    _say(f"{len(rows)} problems, budget N = M x T = {e.m} x {e.t} = {budget}, K = {e.k}, scorer {e.scorer}")
    candidates = search.evolve(rows, prompt_of, sample, score, e.k, e.m, e.t, s.temperature, cfg.seed, rank,
                               e.show_scores, e.max_chars)
    report = {"data": str(data), "checkpoint": checkpoint, "n_problems": len(rows), "budget": budget,
              "k": e.k, "m": e.m, "t": e.t, "scorer": e.scorer, "seed": cfg.seed,
              "evoscale": {**summary(candidates, budget, e.m, rank is not None),
                           "iteration_mean_score": search.per_iteration_mean(candidates)}}
    if "best_of_n" in cfg.eval.baselines:
        bon = search.best_of_n(rows, prompt_of, sample, score, budget, s.temperature, cfg.seed, rank)
        report["best_of_n"] = summary(bon, budget, e.m, True)
        candidates += bon
    if "greedy" in cfg.eval.baselines:
        g = search.greedy(rows, prompt_of, sample, score)
        report["greedy"] = {"final_score": sum(c.score for c in g) / len(g),
                            "final_pass": sum(c.score >= 1.0 for c in g) / len(g)}
        candidates += g
    report["seconds"] = round(time.monotonic() - t0, 1)
    path = write_eval(report, out, checkpoint, cfg.output_dir)
    write_jsonl((c.record() for c in candidates), Path(path).parent / "candidates.jsonl")
    return flat(report)


def flat(report: dict) -> dict:
    """The report as one row of numbers for the table."""
    out = {"problems": report["n_problems"], "budget N": report["budget"]}
    for method in ("evoscale", "best_of_n", "greedy"):
        if method in report:
            r = report[method]
            out[f"{method}/final_score"] = r["final_score"]
            out[f"{method}/final_pass"] = r["final_pass"]
            if "best_at" in r:
                out[f"{method}/best@{report['budget']}"] = r["best_at"][str(report["budget"])]
    return out
