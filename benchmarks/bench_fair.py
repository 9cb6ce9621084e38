"""Fair-direction benchmark: the closed form (mmthink.methods.fair.gaussian) vs cvxpy on the same SOCP.

Usage (from the repository root):
    .venv/bin/python benchmarks/bench_fair.py [--dims 10 50 200] [--instances 20] [--solver CLARABEL]

Each instance draws Σ_X (d × d, well conditioned), c_Y, c_S and a threshold t; half of the
instances are built so that the fairness constraint is active. Both sides receive Σ_X, c_Y, c_S, t:
the closed form's time includes its Cholesky factor and triangular solves; cvxpy's the Cholesky
factor, the problem build (canonicalisation) and the solve of
    maximise c_Yᵀw  s.t.  ‖Lᵀw‖ ≤ 1, |c_Sᵀw| ≤ t.
A second cvxpy column re-solves one pre-compiled parametrised (DPP) problem — its fastest use.
BLAS runs single-threaded for both sides (threadpoolctl): on a shared, busy CPU a 2-thread OpenBLAS
Cholesky of a 200 × 200 matrix was seen to take 100–400 ms instead of 0.2 ms (threads spinning on
each other), which says nothing about either method. Clarabel itself is single-threaded.
Times are medians over the instances (each instance timed best-of-3 for the closed form); the
objective gap is max |(wᵀc_Y)²_closed − (wᵀc_Y)²_cvxpy| / (wᵀc_Y)²_cvxpy over both cvxpy columns, and
the last column counts cvxpy solves whose status is not "optimal" (e.g. "optimal_inaccurate").
"""

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmthink.methods.fair.gaussian import fair_direction  # noqa: E402


def instances(d: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(k):
        m = rng.normal(size=(d, d))
        sigma = m @ m.T / d + 0.5 * np.eye(d)
        c_y = rng.normal(size=d)
        c_s = 0.7 * c_y + 0.5 * rng.normal(size=d)
        # unconstrained |âᵀb| = |c_Yᵀ Σ⁻¹ c_S| / ‖c_Y‖_{Σ⁻¹}: half the instances cut it to 30 %, half leave room
        inv = np.linalg.solve(sigma, np.c_[c_y, c_s])
        free = abs(c_y @ inv[:, 1]) / np.sqrt(c_y @ inv[:, 0])
        yield sigma, c_y, c_s, free * (0.3 if i % 2 == 0 else 1.5)


def time_closed(sigma, c_y, c_s, t, repeats=3):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        w, info = fair_direction(sigma, c_y, c_s, t)
        best = min(best, time.perf_counter() - t0)
    return best, info


def time_cvxpy(cp, sigma, c_y, c_s, t, solver):
    t0 = time.perf_counter()
    lower = np.linalg.cholesky(sigma)
    w = cp.Variable(len(c_y))
    prob = cp.Problem(cp.Maximize(c_y @ w), [cp.norm(lower.T @ w) <= 1, cp.abs(c_s @ w) <= t])
    prob.solve(solver=solver)
    return time.perf_counter() - t0, prob.value**2, prob.status


def time_cvxpy_dpp(cp, cases, solver):
    d = len(cases[0][1])
    lt, cy, cs, tt = cp.Parameter((d, d)), cp.Parameter(d), cp.Parameter(d), cp.Parameter(nonneg=True)
    w = cp.Variable(d)
    prob = cp.Problem(cp.Maximize(cy @ w), [cp.norm(lt @ w) <= 1, cp.abs(cs @ w) <= tt])
    times, values, statuses = [], [], []
    for i, (sigma, c_y, c_s, t) in enumerate([cases[0]] + list(cases)):  # the first solve compiles: not timed
        t0 = time.perf_counter()
        lt.value, cy.value, cs.value, tt.value = np.linalg.cholesky(sigma).T, c_y, c_s, t
        prob.solve(solver=solver)
        if i:
            times.append(time.perf_counter() - t0)
            values.append(prob.value**2)
            statuses.append(prob.status)
    return times, values, statuses


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--solver", default="CLARABEL")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    import cvxpy as cp
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # counted in the last column
    with threadpool_limits(1):
        rows = run(cp, args)
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}, cvxpy {cp.__version__} "
          f"({args.solver}), BLAS threads: 1")
    print("reproduce: " + shlex.join([".venv/bin/python", "benchmarks/bench_fair.py"] + (argv or sys.argv[1:])))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


def run(cp, args):
    rows = []
    print(f"{'d':>5} {'closed form':>12} {'cvxpy build+solve':>18} {'cvxpy DPP re-solve':>19} "
          f"{'ratio':>8} {'ratio DPP':>10} {'max rel gap':>12} {'active':>7} {'cvxpy inaccurate':>17}")
    for d in args.dims:
        cases = list(instances(d, args.instances, args.seed + d))
        closed, full, gaps, active, statuses = [], [], [], 0, []
        for sigma, c_y, c_s, t in cases:
            tc, info = time_closed(sigma, c_y, c_s, t)
            tf, value, status = time_cvxpy(cp, sigma, c_y, c_s, t, args.solver)
            statuses.append(status)
            closed.append(tc)
            full.append(tf)
            gaps.append(abs(info["objective"] - value) / value)
            active += info["active"]
        dpp_times, dpp_values, dpp_statuses = time_cvxpy_dpp(cp, cases, args.solver)
        statuses += dpp_statuses
        gaps += [abs(fair_direction(*c)[1]["objective"] - v) / v for c, v in zip(cases, dpp_values)]
        row = {"d": d, "closed_s": statistics.median(closed), "cvxpy_s": statistics.median(full),
               "cvxpy_dpp_s": statistics.median(dpp_times), "max_rel_gap": max(gaps), "active": active,
               "instances": len(cases), "cvxpy_not_optimal": sum(st != "optimal" for st in statuses)}
        row["ratio"], row["ratio_dpp"] = row["cvxpy_s"] / row["closed_s"], row["cvxpy_dpp_s"] / row["closed_s"]
        rows.append(row)
        print(f"{d:>5} {row['closed_s'] * 1e6:>9.0f} µs {row['cvxpy_s'] * 1e3:>15.2f} ms "
              f"{row['cvxpy_dpp_s'] * 1e3:>16.2f} ms {row['ratio']:>7.0f}× {row['ratio_dpp']:>9.0f}× "
              f"{row['max_rel_gap']:>12.1e} {active:>4}/{len(cases)} {row['cvxpy_not_optimal']:>14}/{2 * len(cases)}")
    return rows


if __name__ == "__main__":
    main()
