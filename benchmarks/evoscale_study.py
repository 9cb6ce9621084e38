"""Toy-scale EvoScale study: best score against samples for EvoScale, best-of-N and greedy at the same
budget, on the procedural digits task and on HumanEval; then self-evolution after mutation SFT + RL.

Per seed: (1) classical SFT of the model on the digits training rows (``train evoscale stages=[sft]``),
then ``eval evoscale`` (scorer: the constraints) on the test problems; (2) the three stages (SFT, mutation
SFT, RL) and ``eval evoscale evo.scorer=none``: the mean score of each iteration's samples without a
scorer; (3) the base model on a fixed HumanEval subset (the first --humaneval problems, HumanEval/0 ...),
scorer: the tests in the sandbox. Each phase runs over all seeds and the tables are written after it. A
run is reused only when its arguments and the commit are unchanged. Writes its tables into
docs/results.md between markers, beside the paper's claim.

Usage: python benchmarks/evoscale_study.py [--seeds 0 1] [--problems 40] [--humaneval 40] [--m 10] [--t 5]
       [--he-m 10 --he-t 5 --he-k 5 --he-tokens 256] (HumanEval's own budget: its samples cost far more)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from common import done_with, mark_done, mmthink, run_key, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RECIPE = "recipes/tiny/evoscale.yaml"


def _train(run: Path, *overrides) -> Path:
    key = run_key("train", *overrides)
    if not done_with(run, key, "model/model.safetensors"):
        mmthink("train", "evoscale", "--recipe", RECIPE, *overrides, f"output_dir={run}", "logging.progress=none")
        mark_done(run, key)
    return run / "model"


def _eval(out: Path, checkpoint, data: Path, *overrides) -> dict:
    key = run_key("eval", checkpoint, data, *overrides, (Path(checkpoint).parent / "study.json").read_text()
                  if (Path(checkpoint).parent / "study.json").is_file() else "")
    if not done_with(out, key, "eval.json"):
        mmthink("eval", "evoscale", "--checkpoint", checkpoint, "--data", data, "--recipe", RECIPE, "--out", out,
                *overrides)
        mark_done(out, key)
    return json.loads((out / "eval.json").read_text())


def _rows(report: dict, budget: int, m: int) -> list:
    marks = [str(n) for n in sorted({1, m, 2 * m, budget}) if n <= budget]
    out = []
    for method in ("evoscale", "best_of_n"):
        r = report[method]
        reach = r["samples_to_full_score"]
        out.append((method, [r["best_at"].get(k) for k in marks], r["final_pass"], reach, r["reach_full_score"]))
    g = report["greedy"]
    out.append(("greedy", [g["final_score"]] + [None] * (len(marks) - 1), g["final_pass"], None, None))
    return marks, out


def _table(title: str, per_seed: dict, budget: int, m: int) -> list:
    seeds = list(per_seed)
    marks, _ = _rows(per_seed[seeds[0]], budget, m)
    head = "| method | " + " | ".join(f"best@{k}" for k in marks) + " | full score (pass) | samples to full score |"
    lines = [f"**{title}** (mean of seeds {', '.join(map(str, seeds))}; each cell: mean [seed values])", "",
             head, "|" + "---|" * (len(marks) + 3)]
    names = [row[0] for row in _rows(per_seed[seeds[0]], budget, m)[1]]
    for i, name in enumerate(names):
        rows = [_rows(per_seed[s], budget, m)[1][i] for s in seeds]

        def cell(values):
            values = [v for v in values if v is not None]
            if not values:
                return "–"
            return f"{sum(values) / len(values):.3f} [" + " / ".join(f"{v:.2f}" for v in values) + "]"

        best = [cell([r[1][j] for r in rows]) for j in range(len(marks))]
        reach = cell([r[3] for r in rows])
        share = cell([r[4] for r in rows])
        reached = f"{reach} (reached by {share})" if share != "–" else "–"
        lines.append(f"| {name} | " + " | ".join(best) + f" | {cell([r[2] for r in rows])} | {reached} |")
    return lines


def _report(args, sft: dict, code: dict, self_evolve: dict, seconds: float) -> None:
    """Write what has been run so far: the study writes after each phase, so a cut-off run leaves its tables."""
    budget, he_budget = args.m * args.t, args.he_m * args.he_t
    lines = ["## EvoScale on the digits task and HumanEval (toy scale)", "",
             f"Command: `python benchmarks/evoscale_study.py --seeds {' '.join(map(str, args.seeds))} --model "
             f"{args.model} --problems {args.problems} --humaneval {args.humaneval} --m {args.m} --t {args.t} --k "
             f"{args.k} --he-m {args.he_m} --he-t {args.he_t} --he-k {args.he_k} --he-tokens {args.he_tokens}` "
             f"({seconds:.0f} s for the runs not reused, 2 CPU cores). Budget N = M x T samples per problem for "
             f"every method (digits: {budget}; HumanEval: {he_budget}); best@n = mean over problems of the best "
             f"score among the first n samples (EvoScale: in generation order); full score = the final answer "
             f"scores 1 (all constraints / all asserts pass: pass@1 of the selected answer).", ""]
    if sft:
        lines += [*_table(f"digits, {args.problems} test problems, after classical SFT ({RECIPE} sft)", sft,
                          budget, args.m), ""]
    if code:
        lines += [*_table(f"HumanEval/0-{args.humaneval - 1}, {args.model} as shipped, score = fraction of asserts "
                          f"passed", code, he_budget, args.he_m), ""]
    if self_evolve:
        means = {s: r["evoscale"]["iteration_mean_score"] for s, r in self_evolve.items()}
        lines += ["**Self-evolution without a scorer** after classical SFT + mutation SFT + RL, digits: mean score "
                  "of each iteration's samples (the conditioning set is a random K of the last iteration's "
                  "outputs)", "",
                  "| seed | " + " | ".join(f"iteration {i}" for i in range(args.t)) + " |",
                  "|" + "---|" * (args.t + 1)]
        lines += [f"| {s} | " + " | ".join(f"{v:.3f}" for v in m) + " |" for s, m in means.items()]
    lines += ["", "Paper (Satori-SWE-32B, SWE-bench Verified): EvoScale reaches at Best@10/25/50 what SWE-RL-70B "
              "reaches at Best@500; after RL the model improves its own outputs across iterations without a scorer."]
    write_section(Path(args.results), "evoscale-study", lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--problems", type=int, default=40, help="digits test problems")
    ap.add_argument("--humaneval", type=int, default=40, help="HumanEval problems (the first N); 0: skip")
    ap.add_argument("--m", type=int, default=10)
    ap.add_argument("--t", type=int, default=5)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--he-m", type=int, default=10, help="HumanEval's M (its samples are 5-10x dearer)")
    ap.add_argument("--he-t", type=int, default=5)
    ap.add_argument("--he-k", type=int, default=5)
    ap.add_argument("--he-tokens", type=int, default=256, help="HumanEval's max new tokens")
    ap.add_argument("--train-overrides", nargs="*", default=[], help="extra train evoscale overrides")
    ap.add_argument("--out", default="runs/evoscale-study")
    ap.add_argument("--results", default="docs/results.md")
    args = ap.parse_args()
    out, t0 = Path(args.out), time.time()
    digits = out / "data" / "digits"
    if not (digits / "test.jsonl").is_file():
        mmthink("data", "digits", "--out", digits, "--test", args.problems)
    he = out / "data" / "humaneval"
    if args.humaneval and not (he / "test.jsonl").is_file():
        mmthink("data", "humaneval", "--out", he, "--limit", args.humaneval)
    evo = [f"evo.m={args.m}", f"evo.t={args.t}", f"evo.k={args.k}", "eval.limit=null"]
    he_evo = [f"evo.m={args.he_m}", f"evo.t={args.he_t}", f"evo.k={args.he_k}", "eval.limit=null",
              f"sampler.max_new_tokens={args.he_tokens}"]
    common = [f"model.name={args.model}", f"data.train_file={digits / 'train.jsonl'}", *args.train_overrides]
    sft, code, self_evolve = {}, {}, {}
    # One phase at a time over the seeds, writing after each; HumanEval, the dearest, last.
    for seed in args.seeds:
        model = _train(out / f"seed{seed}" / "sft", *common, "stages=[sft]", f"seed={seed}")
        sft[seed] = _eval(out / f"seed{seed}" / "eval-sft", model, digits / "test.jsonl", *evo, f"seed={seed}")
        _report(args, sft, code, self_evolve, time.time() - t0)
    for seed in args.seeds:
        full = _train(out / f"seed{seed}" / "full", *common, f"seed={seed}")
        self_evolve[seed] = _eval(out / f"seed{seed}" / "eval-self", full, digits / "test.jsonl", *evo,
                                  f"seed={seed}", "evo.scorer=none", "eval.baselines=[]")
        _report(args, sft, code, self_evolve, time.time() - t0)
    for seed in args.seeds if args.humaneval else []:
        code[seed] = _eval(out / f"seed{seed}" / "eval-humaneval", args.model, he / "test.jsonl", *he_evo,
                           f"seed={seed}")
        _report(args, sft, code, self_evolve, time.time() - t0)


if __name__ == "__main__":
    main()
