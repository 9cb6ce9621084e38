"""``mmthink train edl`` and ``mmthink eval edl``: one evidential objective on arrays, then accuracy, ECE,
selective-classification AURC and OOD AUROC per uncertainty score."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

from mmthink.config import to_yaml
from mmthink.errors import UserError
from mmthink.methods.edl.config import EDLRecipe
from mmthink.runner.tracking import write_run_info
from mmthink.runner.checkpoint import write_eval
from mmthink.io import write_text_atomic


def load_split(cfg: EDLRecipe):
    """(x_train, y_train, x_test, y_test, x_ood or None) of the recipe's data."""
    from mmthink.methods.edl.data import digits_split, synthetic

    d = cfg.data
    if d.name == "text":
        from mmthink.methods.edl.text import text_split

        cache = (Path(d.cache_dir) if d.cache_dir else Path(cfg.output_dir) / "features") if d.cache else None
        return tuple(text_split(d.train_file, d.test_file, d.ood_file, d.encoder, d.max_length, d.encode_batch,
                                d.normalize, cache))
    if d.name == "digits":
        s = digits_split(d.seed)
        return s.x_train, s.y_train, s.x_test, s.y_test, s.x_ood
    x, y = synthetic(d.n, d.k, d.d, d.seed)
    x_test, y_test = synthetic(d.n, d.k, d.d, d.seed + 1)
    return x, y, x_test, y_test, None


def train(cfg: EDLRecipe, command: Sequence[str] = ()) -> dict:
    from mmthink.methods.edl.evaluate import score
    from mmthink.methods.edl.model import save_edl_model
    from mmthink.methods.edl.train import train_edl

    cfg.check()
    x, y, x_test, y_test, x_ood = load_split(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_run_info(out, to_yaml(cfg), list(command))
    model = train_edl(x, y, cfg.edl, progress=cfg.logging.progress)
    save_edl_model(out / "model", model, {**asdict(cfg.edl), "data": asdict(cfg.data)})
    metrics = score(model, x_test, y_test, x_ood, cfg.eval.n_bins)
    write_text_atomic(out / "model" / "eval.json", json.dumps(metrics, indent=2))
    return metrics


def evaluate(cfg: EDLRecipe, checkpoint: str, data: str, out: Optional[str] = None) -> dict:
    """Score a saved model on ``data`` = digits | synthetic | text (the recipe's split, rebuilt from its seed,
    or its text files)."""
    from mmthink.methods.edl.evaluate import score
    from mmthink.methods.edl.model import load_edl_model

    cfg.data.name = data
    cfg.check()
    model, _ = load_edl_model(checkpoint)
    _, _, x_test, y_test, x_ood = load_split(cfg)
    if x_test.shape[1] != model.in_dim:
        raise UserError(f"the model in {checkpoint} takes {model.in_dim} features but data '{data}' gives "
                        f"{x_test.shape[1]} (another data set or text encoder than the one it was trained on?)")
    metrics = score(model, x_test, y_test, x_ood, cfg.eval.n_bins)
    write_eval(metrics, out, checkpoint)
    return metrics


def dry_run(cfg: EDLRecipe, target) -> dict:
    """``train edl --dry-run``: the recipe and its data split; the networks are CPU-sized."""
    from mmthink.runner import dryrun

    cfg.check()
    x_train, y_train, x_test, _, x_ood = load_split(cfg)
    report = dryrun.Report(f"train edl ({cfg.edl.objective}) on {cfg.data.name}")
    report.fact("data", f"{len(x_train)} train, {len(x_test)} test, {0 if x_ood is None else len(x_ood)} OOD rows of "
                        f"{x_train.shape[1]} features, {int(y_train.max()) + 1} classes")
    report.fact("model", f"an MLP of {cfg.edl.hidden} hidden units: runs on a CPU, no device memory to plan")
    return dryrun.finish(report, target)
