"""``mmthink calibrate features | fit | apply``: Thermometer end to end.

features: run the LM over every task file (multiple-choice, or free-form QA reformulated as Yes/No)
and store, per prompt, the last-layer state of the final prompt token and the option-letter logits.
fit: train the calibrator on all tasks (saved as a small folder ``output_dir/calibrator``) and, with
``eval.loto``, the leave-one-task-out table against vanilla, TS-CV and oracle temperature scaling.
apply: a calibrator + a new task's features (labels optional) → one temperature → probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from mmthink.config import to_yaml
from mmthink.errors import UserError
from mmthink.methods.thermometer.config import ThermometerRecipe
from mmthink.paths import assets_dir
from mmthink.runner.tracking import MetricsLog, write_run_info
from mmthink.io import check_output_dir, write_text_atomic


def features_dir(cfg: ThermometerRecipe) -> Path:
    return Path(cfg.features.dir) if cfg.features.dir else Path(cfg.output_dir) / "features"


def task_files(cfg: ThermometerRecipe) -> list[Path]:
    folder = Path(cfg.data.tasks_dir) if cfg.data.tasks_dir else assets_dir() / "mcq"
    if not folder.is_dir():
        raise UserError(f"task folder not found: {folder}")
    files = sorted(folder.glob("*.jsonl"))
    if cfg.data.freeform and (folder / "freeform").is_dir():
        files += sorted((folder / "freeform").glob("*.jsonl"))
    if cfg.data.tasks:
        by_stem = {p.stem: p for p in files}
        missing = [t for t in cfg.data.tasks if t not in by_stem]
        if missing:
            raise UserError(f"data.tasks: no file for {missing} in {folder}; there are {sorted(by_stem)}")
        files = [by_stem[t] for t in cfg.data.tasks]
    if not files:
        raise UserError(f"no task files (*.jsonl) in {folder}")
    return files


def features(cfg: ThermometerRecipe, command: Sequence[str] = ()) -> dict:
    from mmthink.methods.thermometer.extract import extract_all

    cfg.check()
    check_output_dir(cfg.output_dir)
    files = task_files(cfg)
    f = cfg.features
    return extract_all(cfg.model, files, features_dir(cfg), f.batch_size, cfg.data.limit, f.chat, f.chunk_size,
                       cfg.logging.progress, scoring=f.scoring)


def fit_calibrator(cfg: ThermometerRecipe, command: Sequence[str] = ()) -> dict:
    from mmthink.methods.thermometer.evaluate import format_report, leave_one_task_out
    from mmthink.methods.thermometer.features_io import load_features
    from mmthink.methods.thermometer.fit import train_thermometer, training_record
    from mmthink.methods.thermometer.model import save_calibrator

    cfg.check()
    check_output_dir(cfg.output_dir)
    tasks = load_features(features_dir(cfg))
    if cfg.data.tasks:
        missing = [t for t in cfg.data.tasks if t not in tasks]
        if missing:
            raise UserError(f"data.tasks: no features for {missing} in {features_dir(cfg)}")
        tasks = {t: tasks[t] for t in cfg.data.tasks}
    if len(tasks) < 2:
        raise UserError(f"Thermometer trains across tasks: {features_dir(cfg)} holds {len(tasks)}; extract at least 2")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_run_info(out, to_yaml(cfg), list(command), {"tasks": sorted(tasks)})
    log = MetricsLog(out, cfg.logging.tensorboard)
    try:
        model, history = train_thermometer(tasks, cfg.thermometer, cfg.logging.progress, log.log, cfg.device)
    finally:
        log.close()
    # How the features and option scores were made: a server applying the calibrator scores the same way.
    features = {"model": cfg.model.name, "scoring": cfg.features.scoring, "chat": cfg.features.chat}
    save_calibrator(out / "calibrator", model, {**training_record(cfg.thermometer, tasks, history), "features": features})
    result = {"calibrator": str(out / "calibrator"), "best_step": history.get("best_step"),
              "best_val_nll": history.get("best_val_nll")}
    if cfg.eval.loto:
        report = leave_one_task_out(tasks, cfg.thermometer, cfg.eval.n_bins,
                                    out / "diagrams" if cfg.eval.diagrams else None, cfg.logging.progress,
                                    device=cfg.device)
        write_text_atomic(out / "loto.json", json.dumps(report, indent=2, default=str))
        print(format_report(report))
        result["loto"] = report["mean"]
    return result


def apply_calibrator(calibrator: str, features_file: str, out: Optional[str] = None, n_bins: int = 10) -> dict:
    """One temperature for a new task from its unlabelled prompts; metrics before/after when labels exist."""
    import torch

    from mmthink.methods.thermometer.apply import calibrate_task
    from mmthink.methods.thermometer.features_io import load_task
    from mmthink.metrics.calibration import calibration_report

    if not Path(features_file).is_file():
        raise UserError(f"features file not found: {features_file}")
    task = load_task(Path(features_file))
    temperature, probs = calibrate_task(calibrator, task.features, task.logits)
    result = {"task": task.name, "temperature": temperature, "n": int(task.features.shape[0])}
    labelled = task.labels >= 0
    if labelled.any():
        before = torch.softmax(task.logits[labelled].double(), -1)
        result["uncalibrated"] = calibration_report(before, task.labels[labelled], n_bins)
        result["calibrated"] = calibration_report(probs[labelled], task.labels[labelled], n_bins)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps({**result, "probs": probs.tolist()}))
    return result


def dry_run(cfg: ThermometerRecipe, target) -> dict:
    """``train thermometer --dry-run``: the task files, the LM at real size, memory of the feature pass,
    and the feature and option scores of a batch on a two-layer model of the real widths."""
    from mmthink.methods.thermometer.prompting import letter_token_ids, render_prompt
    from mmthink.methods.thermometer.scoring import forward_last
    from mmthink.models.paper import count_parameters
    from mmthink.runner import dryrun
    from mmthink.tasks.mcq import load_freeform, load_mcq

    cfg.check()
    files = task_files(cfg)
    rows = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        rows += (load_mcq if '"options"' in first else load_freeform)(path, cfg.data.limit)
    pm, meta, _ = dryrun.lm_surgery(cfg.model)
    report = dryrun.Report(f"calibrate features with {cfg.model.name} (config: {pm.source})")
    report.fact("tasks", f"{len(files)} files, {len(rows)} rows, all valid")
    report.fact("parameters", f"{count_parameters(meta)[0]:,} (inference only)")
    tok = dryrun.test_tokenizer(pm)
    mcq = [r for r in rows if "options" in r]
    longest = max(len(tok(render_prompt(tok, r, cfg.features.chat, cfg.features.scoring))["input_ids"]) for r in mcq[:512])
    report.fact("longest prompt", f"{longest} tokens (with this tokenizer)")
    report.estimates["feature pass"] = dryrun.inference_estimate(meta, cfg.model, cfg.features.batch_size, longest, target)

    def shapes():
        model = dryrun.lm_shape_model(pm, cfg.model, tok)
        prompts = [render_prompt(tok, r, cfg.features.chat, cfg.features.scoring) for r in mcq[:2]]
        if cfg.features.scoring == "letters":
            ids, _ = letter_token_ids(tok, prompts[0], cfg.features.chat)
            feats, scores = forward_last(model, tok, prompts, cfg.features.chat, ids[: len(mcq[0]["options"])])
        else:
            feats, scores = forward_last(model, tok, prompts, cfg.features.chat, options=[r["options"] for r in mcq[:2]])
        report.fact("shape check", f"2-layer model of the real widths: features {tuple(feats.shape)}, scores {tuple(scores.shape)}")

    dryrun.shape_check("the feature pass", shapes)
    return dryrun.finish(report, target)
