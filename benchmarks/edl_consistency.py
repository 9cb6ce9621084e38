"""EDL consistency sweep: mean mutual information on test points against the training-set size n.

The paper's claim: classic evidential objectives keep a floor of epistemic uncertainty (MI plateaus as
n grows), while a consistent method's MI decays towards 0. Same Gaussian blobs (3 classes, 2-D), the
same MLP for every objective and n. Every network gets the same number of optimiser steps at every n
(``--steps``; epochs = steps / batches per epoch), so n is not confounded with training length, and the
EDL KL annealing spans the first fifth of training at every n. Mean ± sd over seeds (data and init).
Writes the table into docs/results.md.

Usage: python benchmarks/edl_consistency.py [--ns 50,200,800,3200] [--steps 2500] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from common import write_section

from mmthink.methods.edl.config import OBJECTIVES

BATCH = 64


def epochs_for(n: int, steps: int) -> int:
    # epochs * ceil(n / BATCH) ≈ steps
    return max(1, round(steps / math.ceil(n / BATCH)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="50,200,800,3200")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--results", default="docs/results.md")
    args = ap.parse_args()

    import torch

    from mmthink.methods.edl.data import synthetic
    from mmthink.methods.edl.scores import mutual_information
    from mmthink.methods.edl.config import EDLConfig
    from mmthink.methods.edl.train import train_edl

    torch.set_num_threads(1)
    ns = [int(n) for n in args.ns.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    x_test, _ = synthetic(1000, seed=123)
    t0 = time.time()
    table = ["| objective | " + " | ".join(f"n = {n}" for n in ns) + f" | MI(n={ns[0]}) / MI(n={ns[-1]}) |",
             "|---|" + "---|" * (len(ns) + 1)]
    for objective in OBJECTIVES:
        means = []
        cells = []
        for n in ns:
            epochs = epochs_for(n, args.steps)
            mis = []
            for seed in seeds:
                x, y = synthetic(n, seed=1000 * seed)
                cfg = EDLConfig(objective=objective, epochs=epochs, batch_size=BATCH, members=5, seed=seed,
                                kl_anneal_epochs=max(1, epochs // 5))
                model = train_edl(x, y, cfg, progress="none")
                with torch.no_grad():
                    mis.append(mutual_information(model.alpha(x_test)).mean().item())
            means.append(statistics.mean(mis))
            sd = f" ± {statistics.stdev(mis):.4f}" if len(mis) > 1 else ""
            cells.append(f"{means[-1]:.4f}{sd}")
        table.append(f"| {objective} | " + " | ".join(cells) + f" | {means[0] / means[-1]:.1f}× |")
        print(table[-1], f"({time.time() - t0:.0f} s)", flush=True)
    write_section(Path(args.results), "edl-consistency", [
        "## Evidential objectives: does epistemic uncertainty vanish with data? (toy scale)",
        "",
        f"Command: `python benchmarks/edl_consistency.py --ns {args.ns} --steps {args.steps} --seeds {args.seeds}` "
        f"({time.time() - t0:.0f} s). Mean mutual information of the predicted Dirichlet over 1000 test points, "
        f"Gaussian blobs (3 classes, 2-D), training-set size n; every network trained for ≈{args.steps} Adam steps "
        f"(batch {BATCH}) at every n, EDL KL annealed over the first fifth; mean ± sd over seeds {args.seeds} "
        "(training data and init). The last column is how many times smaller the MI is at the largest n.",
        "",
        *table,
        "",
        "Paper claim: classic objectives plateau as n grows; the proposals (mixture-of-Dirichlets target, "
        "Bootstrap-Distill) decay towards 0. Reading the last column: near 1× or below, the MI does not shrink "
        "with n at this step budget; the MI at the smallest n matters too (a method can be near 0 everywhere). "
        "An earlier version of this sweep trained a fixed number of epochs, so larger n also meant more steps; "
        "the paragraph under this section, if still there, describes that earlier run, not this table.",
    ])


if __name__ == "__main__":
    main()
