"""Samples EvoScale needs to reach a target score, against best-of-N: the ratio n_EvoScale / n_best-of-N.

Reads the candidates that ``benchmarks/evoscale_study.py`` recorded (every sample with its score, in
generation order) for each task and seed, averages the mean-best@n curves over the seeds, and for each
target reports the smallest n at which each method's curve reaches it. Targets: fixed scores, and the
score best-of-N reaches with its whole budget (``bon``: how many samples EvoScale needs to match it).
The issue's goal is a ratio <= 0.5; the table says what came out. No model runs here: run the study first.

Usage: python benchmarks/evoscale_samples.py [--study runs/evoscale-study] [--targets 0.6 0.7 0.8 bon]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import write_section

from mmthink.methods.evoscale.search import Candidate, mean_curve, samples_to_mean

TASKS = {"eval-sft": "digits (after classical SFT)", "eval-humaneval": "HumanEval (SmolLM2 as shipped)"}
METHODS = ("evoscale", "best_of_n")


def seed_curves(path: Path) -> dict[str, list]:
    """{method: mean best@n curve} of one eval run's candidates.jsonl."""
    by_method: dict[str, list] = {m: [] for m in METHODS}
    for line in path.read_text().splitlines():
        c = Candidate(**json.loads(line))
        if c.method in by_method:
            by_method[c.method].append(c)
    return {m: mean_curve(cs) for m, cs in by_method.items() if cs}


def average(curves: list[list]) -> list:
    n = min(map(len, curves))
    return [sum(c[i] for c in curves) / len(curves) for i in range(n)]


def rows_for(curves: dict[str, list], targets: list[str]) -> list[tuple]:
    """(target, n EvoScale, n best-of-N, ratio) for each target."""
    budget = min(len(curves["evoscale"]), len(curves["best_of_n"]))
    out = []
    for t in targets:
        value = curves["best_of_n"][budget - 1] if t == "bon" else float(t)
        ne, nb = (samples_to_mean(curves[m][:budget], value) for m in METHODS)
        label = f"{value:.3f} (best-of-N's best@{budget})" if t == "bon" else f"{value:.3f}"
        ratio = f"{ne / nb:.2f}" if ne and nb else "–"
        out.append((label, ne or f"> {budget}", nb or f"> {budget}", ratio))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="runs/evoscale-study")
    ap.add_argument("--targets", nargs="+", default=["0.6", "0.7", "0.8", "bon"])
    ap.add_argument("--results", default="docs/results.md")
    args = ap.parse_args()
    study = Path(args.study)
    lines = ["## EvoScale: samples to reach a target score, against best-of-N", "",
             f"Command: `python benchmarks/evoscale_samples.py --study {args.study} --targets "
             f"{' '.join(args.targets)}` on the candidates of the study above (no sampling here). n = the "
             f"smallest number of samples at which the mean over problems of the best score so far reaches the "
             f"target (curves averaged over the seeds; EvoScale in generation order); ratio = n EvoScale / n "
             f"best-of-N (goal <= 0.5). `> N`: not reached within the budget.", ""]
    found = False
    for folder, title in TASKS.items():
        runs = sorted(study.glob(f"seed*/{folder}/candidates.jsonl"))
        if not runs:
            continue
        found = True
        per_seed = [seed_curves(p) for p in runs]
        curves = {m: average([c[m] for c in per_seed]) for m in METHODS}
        seeds = ", ".join(p.parent.parent.name.removeprefix("seed") for p in runs)
        lines += [f"**{title}**, seeds {seeds}", "", "| target | n EvoScale | n best-of-N | ratio |", "|---|---|---|---|"]
        lines += [f"| {t} | {ne} | {nb} | {r} |" for t, ne, nb, r in rows_for(curves, args.targets)]
        lines += [""]
    if not found:
        raise SystemExit(f"no study runs under {study}: run benchmarks/evoscale_study.py first")
    write_section(Path(args.results), "evoscale-samples", lines[:-1])


if __name__ == "__main__":
    main()
