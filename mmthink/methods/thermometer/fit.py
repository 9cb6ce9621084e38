"""Training Thermometer over many tasks (the authors' recipe: arXiv 2403.08819 and their released code).

Each step picks ONE training task at random and one minibatch of its labelled train rows; the loss
(``losses.thermometer_loss``) uses the minibatch's mean inverse temperature, so the network learns
the quantity that calibrates a whole task. AdamW. Every ``val_every`` steps (and after the last one)
it computes the mean validation NLL over the tasks' held-out val rows and keeps the best weights.

Validation calibrates each task's val rows with the temperature Thermometer predicts from those same
val rows' features (their mean inverse temperature), never from their labels: it scores exactly what
a held-out task gets at test time. The released code does the same (``eval_thermometer`` on each
task's val loader).
"""

from __future__ import annotations

import copy
import math
import zlib
from dataclasses import asdict
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from mmthink.errors import UserError
from mmthink.methods.thermometer.features_io import TaskFeatures
from mmthink.methods.thermometer.config import ThermometerConfig
from mmthink.methods.thermometer.losses import thermometer_loss
from mmthink.methods.thermometer.model import Thermometer, dataset_inverse_temperature


def split_rows(task: TaskFeatures, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train rows, val rows) among the task's labelled rows.

    The permutation is seeded by (seed, task name), not drawn from a shared generator, so a task's
    split does not depend on which other tasks are present (it stays the same across the folds of
    leave-one-task-out).
    """
    rows = task.labelled.nonzero().squeeze(1)
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(task.name.encode()))
    rows = rows[torch.randperm(len(rows), generator=g)]
    n_val = min(int(round(val_fraction * len(rows))), max(len(rows) - 1, 0))  # keep >= 1 train row
    return rows[n_val:], rows[:n_val]


@torch.no_grad()
def validation_nll(model: Thermometer, parts: dict) -> float:
    """Mean over tasks of the NLL of val rows scaled by the temperature predicted from their features."""
    scores = []
    for p in parts.values():
        if len(p["val"]) == 0:
            continue
        feats, logits, labels = p["task"].features[p["val"]], p["task"].logits[p["val"]], p["task"].labels[p["val"]]
        inv = dataset_inverse_temperature(model, feats)
        scores.append(float(F.cross_entropy(logits.double() * inv, labels)))
    return sum(scores) / len(scores) if scores else float("nan")


def train_thermometer(
    tasks: dict[str, TaskFeatures],
    cfg: ThermometerConfig,
    progress: str = "auto",
    log: Optional[Callable[[int, dict], None]] = None,
    device: str = "cpu",
) -> tuple[Thermometer, dict]:
    """Train on ``tasks`` (name -> TaskFeatures); return (best model in eval mode, history).

    ``progress``: auto | rich | plain | none (``mmthink.runner.tracking.Progress``). ``log(step,
    metrics)`` is called at each validation (e.g. ``MetricsLog.log``). history: ``train_loss`` per step,
    ``val_step`` / ``val_nll`` per validation, ``best_step`` and ``best_val_nll`` (the kept weights;
    without any val rows, the last step's weights are kept and best_val_nll is NaN).
    """
    from mmthink.runner.tracking import Progress

    cfg.check()
    parts = {}
    for name, task in sorted(tasks.items()):
        train, val = split_rows(task, cfg.val_fraction, cfg.seed)
        if len(train):
            parts[name] = {"task": task, "train": train, "val": val}
    if not parts:
        raise UserError("Thermometer needs at least one task with labelled rows to train on")
    dims = {p["task"].features.shape[1] for p in parts.values()}
    if len(dims) != 1:
        raise UserError(f"training tasks have different feature sizes d: {sorted(dims)}")
    d = dims.pop()

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global RNG
        torch.manual_seed(cfg.seed)
        model = Thermometer(d, cfg.hidden).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    names = list(parts)
    # Train rows on the device once; val rows stay on the CPU (dataset_inverse_temperature moves them).
    data = {}
    for n in names:
        task, rows = parts[n]["task"], parts[n]["train"]
        data[n] = (task.features[rows].to(device), task.logits[rows].to(device), task.labels[rows].to(device))

    history = {"train_loss": [], "val_step": [], "val_nll": [], "best_step": cfg.steps, "best_val_nll": float("nan")}
    best_state, best = None, float("inf")
    bar = Progress(cfg.steps, mode=progress, desc="thermometer")
    model.train()
    since = []
    for step in range(1, cfg.steps + 1):
        feats, logits, labels = data[names[int(torch.randint(len(names), (1,), generator=gen))]]
        rows = torch.randperm(len(labels), generator=gen)[: cfg.batch_size].to(device)
        inv_tau = model(feats[rows])
        loss = thermometer_loss(logits[rows], labels[rows], inv_tau, cfg.lam, cfg.gamma_shape, cfg.gamma_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["train_loss"].append(float(loss.detach()))
        since.append(history["train_loss"][-1])
        info = f"loss {since[-1]:.4f}"
        if step % cfg.val_every == 0 or step == cfg.steps:
            v = validation_nll(model, parts)
            model.train()
            history["val_step"].append(step)
            history["val_nll"].append(v)
            if v < best:  # NaN (no val rows) never wins: the last weights are kept then
                best, best_state = v, copy.deepcopy(model.state_dict())
                history["best_step"], history["best_val_nll"] = step, v
            if log is not None:
                log(step, {"train_loss": sum(since) / len(since), "val_nll": v, "best_val_nll": best})
            since = []
            info += f" val_nll {v:.4f} best {best:.4f}"
        bar.update(step, info)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history


def training_record(cfg: ThermometerConfig, tasks: dict, history: dict) -> dict:
    """What ``save_calibrator`` stores as the training settings: config, tasks and the kept step."""
    return {
        "config": asdict(cfg),
        "tasks": sorted(tasks),
        "best_step": history["best_step"],
        "best_val_nll": None if math.isnan(history["best_val_nll"]) else history["best_val_nll"],  # JSON has no NaN
    }
