"""Leave-one-task-out evaluation of Thermometer against temperature-scaling baselines (paper, Sec. 5).

For each task t: train Thermometer on all the other tasks; calibrate t with the one temperature
predicted from t's prompts alone (its labels are never seen); score on t's labelled rows. Baselines
in the same report, each one temperature for the whole task:

- ``vanilla``: T = 1, the LM as it is;
- ``ts_cv``: T fitted on the other tasks' labelled logits pooled together (what one does without
  labels for t, but without Thermometer either);
- ``oracle_ts``: T fitted on t's own labels (a lower bound for any one-temperature method on NLL).

Every method only divides logits by a positive scalar, so the accuracy must be the same for all;
``leave_one_task_out`` checks it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import torch

from mmthink.errors import UserError
from mmthink.methods.thermometer.features_io import TaskFeatures
from mmthink.methods.thermometer.config import ThermometerConfig
from mmthink.methods.thermometer.fit import train_thermometer
from mmthink.methods.thermometer.model import dataset_temperature
from mmthink.metrics.calibration import apply_temperature, calibration_report, fit_temperature, reliability_diagram

METHODS = ("vanilla", "ts_cv", "thermometer", "oracle_ts")
METRICS = ("ece", "mce", "tl_ece", "nll", "brier", "accuracy")


def pooled_labelled(tasks: list[TaskFeatures]) -> tuple[torch.Tensor, torch.Tensor]:
    """All labelled rows of ``tasks`` as one (logits, labels) pair.

    Tasks may have different numbers of options; shorter rows are padded with -inf columns, which get
    probability 0 at every temperature, so the pooled NLL is the sum of the per-task NLLs.
    """
    k = max(t.logits.shape[1] for t in tasks)
    logits, labels = [], []
    for t in tasks:
        z = t.logits[t.labelled].double()
        logits.append(torch.cat([z, z.new_full((z.shape[0], k - z.shape[1]), float("-inf"))], dim=1))
        labels.append(t.labels[t.labelled])
    return torch.cat(logits), torch.cat(labels)


def score_task(
    task: TaskFeatures, temperatures: dict[str, float], n_bins: int = 10, diagrams: Optional[Path] = None
) -> dict:
    """Metrics of ``task``'s labelled rows under each method's temperature, plus the temperature."""
    logits, labels = task.logits[task.labelled], task.labels[task.labelled]
    out = {}
    for method, t in temperatures.items():
        probs = apply_temperature(logits, t)
        out[method] = {**calibration_report(probs, labels, n_bins), "temperature": t}
        if diagrams is not None:
            png = Path(diagrams) / f"{task.name}.{method}.png"
            reliability_diagram(probs, labels, png, n_bins, title=f"{task.name} {method}")
    accs = {m: r["accuracy"] for m, r in out.items()}
    if len(set(accs.values())) > 1:  # a temperature can never change the arg-max: this is a bug
        raise RuntimeError(f"task {task.name}: accuracy changed with the temperature: {accs}")
    return out


def mean_over_tasks(per_task: dict) -> dict:
    """{method: {metric: mean over tasks}} (each task weighs the same, as in the paper's tables)."""
    methods = next(iter(per_task.values())).keys()
    return {
        m: {k: sum(r[m][k] for r in per_task.values()) / len(per_task) for k in METRICS}
        for m in methods
    }


def leave_one_task_out(
    tasks: dict[str, TaskFeatures],
    cfg: ThermometerConfig,
    n_bins: int = 10,
    diagrams: Optional[Path] = None,
    progress: str = "auto",
    log: Optional[Callable[[str, dict], None]] = None,
    device: str = "cpu",
) -> dict:
    """Report: ``tasks`` {task: {method: metrics + temperature}, plus best_step}, ``mean`` {method:
    {metric: mean}}, ``config``, ``n_bins``, ``skipped`` (tasks without labels: nothing to score).

    ``diagrams``: a folder for ``<task>.<method>.png`` reliability diagrams. ``log(task, row)`` is
    called after each fold (e.g. to append to a JSONL file). The fold loop shows the progress; each
    fold's training runs silently (two live bars cannot share a terminal).
    """
    from mmthink.runner.tracking import Progress

    cfg.check()
    scored = [n for n in sorted(tasks) if bool(tasks[n].labelled.any())]
    if len(scored) < 2:
        raise UserError(f"leave-one-task-out needs at least 2 tasks with labelled rows; got {len(scored)}")
    per_task = {}
    bar = Progress(len(scored), mode=progress, desc="leave-one-task-out")
    for i, name in enumerate(scored, 1):
        held_out = tasks[name]
        others = {n: t for n, t in tasks.items() if n != name}
        model, history = train_thermometer(others, cfg, progress="none", device=device)
        cv_logits, cv_labels = pooled_labelled([t for t in others.values() if bool(t.labelled.any())])
        temps = {
            "vanilla": 1.0,
            "ts_cv": fit_temperature(cv_logits, cv_labels),
            # All of the held-out task's prompts, labelled or not; its labels are not used.
            "thermometer": dataset_temperature(model, held_out.features),
            "oracle_ts": fit_temperature(held_out.logits[held_out.labelled], held_out.labels[held_out.labelled]),
        }
        per_task[name] = {**score_task(held_out, temps, n_bins, diagrams), "best_step": history["best_step"]}
        if log is not None:
            log(name, per_task[name])
        r = per_task[name]
        bar.update(i, f"{name}: ECE vanilla {r['vanilla']['ece']:.3f} thermometer {r['thermometer']['ece']:.3f}")
    bar.close()
    return {
        "tasks": per_task,
        "mean": mean_over_tasks({n: {m: r[m] for m in METHODS} for n, r in per_task.items()}),
        "config": asdict(cfg),
        "n_bins": n_bins,
        "skipped": sorted(set(tasks) - set(scored)),
    }


def format_report(report: dict) -> str:
    """The mean table (methods x metrics) as fixed-width text for the terminal."""
    head = f"{'method':<12}" + "".join(f"{k:>10}" for k in METRICS)
    rows = [f"{m:<12}" + "".join(f"{report['mean'][m][k]:>10.4f}" for k in METRICS) for m in report["mean"]]
    n = len(report["tasks"])
    return "\n".join([f"leave-one-task-out, mean over {n} held-out tasks", head, *rows])
