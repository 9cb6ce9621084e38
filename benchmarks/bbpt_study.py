"""Toy-scale black-box prompt tuning study: SmolLM2-135M-Instruct as the black box on shipped few-shot tasks.

Per task, every algorithm of ``mmthink train bbpt`` (CMA-ES ensemble, CMA-ES ELBO, ABC-SMC on labels
only), SNPE (labels only) and the two baselines (zero-shot, peft prompt tuning with full access), all from recipes/bbpt.yaml
with the same small budget given below; reported: test accuracy, ECE, AURRC by entropy, OOD AURRC /
AUROC where the task has an OOD set, black-box queries spent on tuning, and wall time. A finished run
is not repeated (delete its folder to rerun). Writes the table into docs/results.md between markers.

Usage: python benchmarks/bbpt_study.py [--tasks sst2 agnews] [--iters 8] [--popsize 8] ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import mmthink, write_section

ALGORITHMS = ["zero_shot", "prompt_tuning", "cma_ensemble", "cma_elbo", "abc_smc", "snpe"]


def run(args, task: str, algorithm: str) -> dict | None:
    out = Path(args.out) / task / algorithm
    done = out / "model" / "eval.json"
    if not done.is_file() and args.table_only:
        return None
    if not done.is_file():
        t0 = time.time()
        overrides = [
            f"task={task}", f"algorithm={algorithm}", f"output_dir={out}", f"seed={args.seed}",
            f"box.model={args.model}", f"box.n_prompt_tokens={args.n_prompt}", f"box.batch_size={args.batch_size}",
            f"box.level={'labels' if algorithm in ('abc_smc', 'snpe') else 'logits'}", f"projection.d={args.d}",
            f"cma.members={args.members}", f"cma.popsize={args.popsize}", f"cma.iters={args.iters}",
            f"cma.eval_every={max(args.iters // 2, 1)}",
            f"elbo.popsize={args.popsize}", f"elbo.iters={args.iters}", f"elbo.n_mc={args.n_mc}",
            f"elbo.n_samples={args.samples}",
            f"abc.n_particles={args.samples}", f"abc.popsize={args.popsize}", f"abc.max_batches={args.max_batches}",
            f"abc.max_rounds={args.rounds}",
            f"snpe.rounds={args.snpe_rounds}", f"snpe.n_sims={args.sims}", f"snpe.n_samples={args.samples}",
            f"snpe.batch={args.popsize}", "snpe.hidden_features=30", "snpe.num_transforms=3",
            f"prompt_tuning.steps={args.pt_steps}", "logging.progress=plain", "logging.plain_every_s=120",
        ]
        mmthink("train", "bbpt", "--recipe", "recipes/bbpt.yaml", *overrides)
        (out / "wall_s.txt").write_text(f"{time.time() - t0:.0f}\n")
    m = json.loads(done.read_text())
    m["wall_s"] = float((out / "wall_s.txt").read_text()) if (out / "wall_s.txt").is_file() else float("nan")
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2"])
    ap.add_argument("--algorithms", nargs="+", default=ALGORITHMS)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--out", default="runs/bbpt-study")
    ap.add_argument("--results", default="docs/results.md")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-prompt", type=int, default=10)
    ap.add_argument("--d", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--popsize", type=int, default=8)
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--n-mc", type=int, default=2)
    ap.add_argument("--samples", type=int, default=8, help="ELBO prompts sampled; ABC particles")
    ap.add_argument("--max-batches", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--snpe-rounds", type=int, default=2)
    ap.add_argument("--sims", type=int, default=48, help="SNPE simulations per round")
    ap.add_argument("--pt-steps", type=int, default=30)
    ap.add_argument("--table-only", action="store_true", help="write the table from finished runs, start none")
    args = ap.parse_args()
    t0 = time.time()
    lines = [
        "## Black-box prompt tuning (toy scale)",
        "",
        f"`python benchmarks/bbpt_study.py --tasks {' '.join(args.tasks)} --iters {args.iters} --popsize {args.popsize} "
        f"--members {args.members} --samples {args.samples}` — black box {args.model}, L = {args.n_prompt} prompt "
        f"tokens, d = {args.d}, 16 training + 16 dev examples per class; ELBO with {args.n_mc} samples per "
        f"fitness; ABC-SMC at most {args.rounds} rounds of {args.samples} particles ({args.max_batches} batches of "
        f"{args.popsize} per round); SNPE {args.snpe_rounds} rounds of {args.sims} simulations (flow: 3 MAF transforms of 30 units), {args.samples} posterior samples; prompt tuning {args.pt_steps} AdamW steps (full access). Queries = (prompt, "
        "example) pairs sent to the black box while tuning (prompt tuning: 0 black-box queries, it uses gradients). "
        "AURRC = area under the risk-rejection curve (lower is better); OOD AURRC counts every OOD example as an error.",
        "",
        "| task | algorithm | accuracy | ECE | AURRC (entropy) | OOD AURRC (entropy) | OOD AUROC (entropy) | queries | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task in args.tasks:
        for algorithm in args.algorithms:
            m = run(args, task, algorithm)
            if m is None:
                lines.append(f"| {task} | {algorithm} | not run | | | | | | |")
                continue
            ood = (f"{m['ood_aurrc/entropy']:.3f} | {m['ood_auroc/entropy']:.3f}"
                   if "ood_aurrc/entropy" in m else "– | –")
            lines.append(f"| {task} | {algorithm} | {m['accuracy']:.3f} | {m['ece']:.3f} | {m['aurrc/entropy']:.3f} | "
                         f"{ood} | {m['train_queries']} | {m['wall_s']:.0f} |")
            print(lines[-1], flush=True)
            # Rewritten after every run: a study cut short still leaves the rows it finished.
            write_section(Path(args.results), "bbpt-study", lines + ["", "(study in progress)"], echo=False)
    lines += ["", f"Study wall time {time.time() - t0:.0f} s (2 CPU cores, shared; finished runs are reused, "
              "their own wall time is in the last column)."]
    write_section(Path(args.results), "bbpt-study", lines)


if __name__ == "__main__":
    main()
