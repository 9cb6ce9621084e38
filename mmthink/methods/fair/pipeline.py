"""``mmthink fair fit | curve``: fair predictors when the sensitive attribute is mostly unknown.

fit: one predictor (closed form, robust closed form or bootstrap), scored on held-out rows — utility,
fairness violation on the rows whose S is known against the budget, the guarantee — and saved.
curve: utility and violation against the number of S-labelled rows kept, per algorithm (the paper's
"value of each labelled sample"), as JSON and a PNG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from mmthink.config import to_yaml
from mmthink.methods.fair.config import FairRecipe
from mmthink.runner.tracking import write_run_info
from mmthink.io import check_output_dir, strict_json, write_text_atomic


def fit_predictor(cfg: FairRecipe, command: Sequence[str] = ()) -> dict:
    from mmthink.methods.fair.fit import fit_fair, save_result

    cfg.check()
    check_output_dir(cfg.output_dir)
    d = cfg.data
    result = fit_fair(d.path, d.target, d.sensitive, d.features or None, cfg.epsilon, cfg.algorithm,
                      holdout=cfg.holdout, seed=cfg.seed, progress=cfg.progress, **cfg.fit_kwargs())
    out = Path(cfg.output_dir)
    save_result(out / "predictor", result)
    write_run_info(out, to_yaml(cfg), list(command))
    summary = {"algorithm": result.method, "task": result.task, "regime": result.regime,
               "guarantee": result.guarantee, "budget": result.budget}
    for split, metrics in result.metrics.items():
        for k, v in metrics.items():
            for name, value in (v.items() if isinstance(v, dict) else [("", v)]):
                if isinstance(value, (int, float)):
                    summary["/".join(p for p in (split, k, name) if p)] = value
    write_text_atomic(out / "fair.json", json.dumps(strict_json(summary), indent=2, default=str, allow_nan=False))
    return summary


def value_of_labels(cfg: FairRecipe, command: Sequence[str] = ()) -> dict:
    from mmthink.methods.fair.fit import label_curve, plot_value_of_labels

    cfg.check()
    check_output_dir(cfg.output_dir)
    d = cfg.data
    curves = label_curve(d.path, d.target, d.sensitive, d.features or None, cfg.epsilon, cfg.curve_ns,
                         cfg.curve_algorithms, cfg.seed, **cfg.fit_kwargs())
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "curve.json", json.dumps(strict_json(curves), indent=2, default=str, allow_nan=False))
    plot_value_of_labels(curves, out / "value_of_labels.png", title=f"{Path(d.path).name}, eps={cfg.epsilon}")
    write_run_info(out, to_yaml(cfg), list(command))
    return curves


def dry_run(cfg: FairRecipe, target) -> dict:
    """``train fair --dry-run``: the recipe and its table; closed forms and small models run on a CPU."""
    from mmthink.methods.fair.data import read_table
    from mmthink.runner import dryrun

    cfg.check()
    report = dryrun.Report(f"fair fit ({cfg.algorithm}) on {cfg.data.path}")
    if Path(cfg.data.path).is_file():
        table = read_table(cfg.data.path)
        report.fact("table", f"{len(table)} rows, {len(table.columns)} columns")
    else:  # generated data a fresh clone does not have
        report.fact("table", f"{cfg.data.path} is not here (`mmthink fair data` writes it): not checked")
    report.fact("model", "closed forms or a small network on a CPU: no device memory to plan")
    return dryrun.finish(report, target)
