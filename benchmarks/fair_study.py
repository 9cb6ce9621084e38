"""Toy-scale fairness study: utility and violation against the number of S-labelled rows.

Nominal closed form (plug-in Cov(X,S)), robust closed form (bootstrap radius, 95%) and the bootstrap
algorithm, on (1) a synthetic Gaussian table (known population moments) and (2) scikit-learn's
bundled diabetes table (sensitive: sex), each with the sensitive column hidden on all but n rows.
Violation = |corr(prediction, S)| on every row whose S is known originally, against the budget
sqrt(1 - e^(-2 eps)). Writes the table into docs/results.md between markers and PNGs under --out.

Usage: python benchmarks/fair_study.py [--out runs/fair-study] [--eps 0.02]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import mmthink, write_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/fair-study")
    ap.add_argument("--eps", type=float, default=0.02)
    ap.add_argument("--results", default="docs/results.md")
    args = ap.parse_args()
    out, t0 = Path(args.out), time.time()
    mmthink("fair", "data", "synthetic", "--out", out / "data", "--n", 5000, "--d", 5, "--n-labelled", 5000)
    mmthink("fair", "data", "diabetes", "--out", out / "data")
    tables = {
        "synthetic Gaussian (5000 rows, d=5)": (out / "data" / "synthetic.csv", "y", "s", [50, 100, 200, 500, 1000, 2000]),
        "diabetes (442 rows, S = sex)": (out / "data" / "diabetes.csv", "target", "sex", [25, 50, 100, 200, 400]),
    }
    lines = ["| table | algorithm | " + " | ".join(["n labelled: utility (R²) / violation"]) + " |", "|---|---|---|"]
    for name, (path, target, sensitive, ns) in tables.items():
        run = out / path.stem
        mmthink("fair", "curve", "--data", path, "--target", target, "--sensitive", sensitive, "--epsilon", args.eps,
                "--out", run, f"curve_ns=[{','.join(map(str, ns))}]", "radius=bootstrap", "progress=none")
        curves = json.loads((run / "curve.json").read_text())
        for algo, rows in curves["methods"].items():
            cells = []
            for n, u, v in zip(curves["n"], rows["utility"], rows["violation"]):
                cells.append(f"{n}: infeasible" if u != u else f"{n}: {u:.3f} / {v:.3f}")
            budget = f"budget {rows['budget']:.3f}" if rows["budget"] is not None else "every fit infeasible"
            lines.append(f"| {name} | {algo} ({budget}) | " + "; ".join(cells) + " |")
    write_section(Path(args.results), "fair-study", [
        "## Robust fair predictors with few S labels (toy scale)",
        "",
        f"Command: `python benchmarks/fair_study.py --eps {args.eps}` ({time.time() - t0:.0f} s). "
        "Linear regression predictors; eps = I(S; Ŷ) budget in nats; robust radius from a 95% bootstrap "
        "quantile; bootstrap algorithm with the worst of 50 replicates. Violation measured on all rows whose S "
        f"is known (before hiding); plots: `{out}/<table>/value_of_labels.png`.",
        "",
        *lines,
        "",
        "Paper claim (arXiv 2302.08077): the robust solution keeps the fairness guarantee with few labels and, "
        "in a regime it characterises, loses no utility; the bootstrap algorithm extends this beyond the "
        "Gaussian case.",
    ])


if __name__ == "__main__":
    main()
