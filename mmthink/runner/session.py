"""What every training run does around its steps, once for the SFT loop and the RL loop alike.

A run folder holds ``resolved_config.yaml`` and ``run_info.json`` (written before the first step),
``checkpoints/step-N`` (resumed from when ``resume`` asks), ``metrics.jsonl`` (cut back to the
resumed step, so a resumed run's log reads as an uninterrupted one), and a progress display; a run
ends with the task's final evaluation, logged under ``eval/*``. Staged recipes chain runs with
``run_stages``: a stage whose ``model/`` exists is loaded instead of run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mmthink.errors import UserError
from mmthink.runner.checkpoint import (TrainState, find_resume, load_checkpoint, load_weights, save_checkpoint,
                                       save_final)
from mmthink.runner.config import LoggingConfig
from mmthink.runner.tracking import MetricsLog, Progress, write_run_info


class RunSession:
    """One run's folder, position, metrics log and progress display; ``with`` closes the display."""

    def __init__(self, accelerator, model, output_dir: Path, resume: str, total_steps: int, log: LoggingConfig,
                 name: str, config_yaml: str = "", command: Sequence[str] = (), launch: Optional[dict] = None,
                 load_extra: Optional[Callable[[Path], None]] = None, allow_changes: Sequence[str] = (),
                 settings: str = "runner"):
        self.accelerator, self.output_dir, self.total_steps = accelerator, output_dir, total_steps
        self.checkpoints = output_dir / "checkpoints"
        self.state = TrainState()
        main = accelerator.is_main_process
        resume_from = find_resume(resume, self.checkpoints)
        if resume_from is not None:
            check_unchanged(resume_from, config_yaml, allow_changes, settings)
        if main:
            write_run_info(output_dir, config_yaml, list(command), launch)
        if resume_from is not None:
            self.state = load_checkpoint(accelerator, model, resume_from)
            if load_extra is not None:
                load_extra(resume_from)
            accelerator.print(f"resumed from {resume_from} at step {self.state.step}")
        self.metrics_log = MetricsLog(output_dir, log.tensorboard, self.state.step) if main else None
        self.progress = Progress(total_steps, self.state.step, log.progress if main else "none", log.plain_every_s, name)

    def __enter__(self) -> "RunSession":
        return self

    def __exit__(self, *exc) -> None:
        self.progress.close()

    def log(self, metrics: dict) -> None:
        if self.metrics_log is not None:
            self.metrics_log.log(self.state.step, metrics)

    def evaluate(self, task, model) -> dict:
        return evaluate_task(task, model, self.accelerator, self.metrics_log, self.state.step)

    def save(self, model, tokenizer, keep_last: int, extra: Optional[Callable[[Path], None]] = None) -> Path:
        return save_checkpoint(self.accelerator, model, tokenizer, self.state, self.checkpoints, keep_last, extra=extra)

    def finish(self, task, model, last: dict) -> dict:
        """The final evaluation (when the task has one) added to ``last``; closes the metrics log."""
        if task.evaluate:
            last.update(self.evaluate(task, model))
        if self.metrics_log is not None:
            self.metrics_log.close()
        return last


# What may differ when a run resumes: where it goes and how it reports, how long it runs, how often it
# evaluates and saves, and the evaluation itself. Everything else shapes the trajectory.
RESUME_ALWAYS_ALLOWED = ("output_dir", "logging.*", "eval.*", "data.eval_file", "*resume", "*resume_allow_changes",
                         "*max_steps", "*epochs", "*.steps", "*save_every", "*eval_every",
                         "*keep_last", "*log_every", "*num_workers", "*log_samples", "stages")


def check_unchanged(checkpoint: Path, config_yaml: str, allow_changes: Sequence[str] = (), settings: str = "runner") -> None:
    """Refuse to resume ``checkpoint`` under settings that differ from its run's (one line, the diff).

    ``settings``: the recipe block holding ``resume`` and ``resume_allow_changes`` ("runner", "rl",
    "stage1.runner", ...; "" for top-level keys), named in the message.
    """
    import yaml

    from mmthink.config import changed_keys, describe_changes, flatten

    saved = checkpoint.parent.parent / "resolved_config.yaml"
    if not config_yaml or not saved.is_file():
        return
    old, new = flatten(yaml.safe_load(saved.read_text())), flatten(yaml.safe_load(config_yaml))
    keys = changed_keys(old, new, RESUME_ALWAYS_ALLOWED + tuple(allow_changes))
    if keys:
        at = f"{settings}." if settings else ""
        raise UserError(f"{checkpoint} was trained with other settings ({describe_changes(old, new, keys)}); to "
                        f"resume anyway list them in {at}resume_allow_changes (e.g. "
                        f"{at}resume_allow_changes=[{','.join(keys)}]), or start afresh with {at}resume=never "
                        "or another output_dir")


def evaluate_task(task, model, accelerator, metrics_log, step: int) -> dict:
    """``task.evaluate(model, accelerator)`` in eval mode, logged as ``eval/*`` and printed."""
    model.eval()
    try:
        metrics = {f"eval/{k}": v for k, v in task.evaluate(model, accelerator).items()}
    finally:
        model.train()
    if metrics_log is not None:
        metrics_log.log(step, metrics)
    accelerator.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return metrics


@dataclass
class Stage:
    """One stage of a staged recipe: ``run(model) -> metrics`` in ``folder``."""

    name: str
    folder: Path
    run: Callable[[Any], dict]
    resume: str = "auto"
    # A stage that saves ``folder/model`` is skipped (its weights loaded) once that folder exists;
    # an RL stage saves only checkpoints and runs again, resuming from them.
    saves_model: bool = True


def finished(stage: Stage) -> bool:
    return stage.saves_model and stage.resume != "never" and (stage.folder / "model" / "config.json").is_file()


def run_stages(accelerator, model, tokenizer, stages: Sequence[Stage]) -> tuple[Any, dict]:
    """Run ``stages`` in order on one model; returns (the model, the last stage's metrics).

    The run starts after the last finished stage, whose weights are loaded: what came before it is
    already in them. A stage told ``resume: never`` runs again, and so does everything after it.
    """
    fresh = next((i for i, stage in enumerate(stages) if stage.resume == "never"), len(stages))
    done = [i for i, stage in enumerate(stages[:fresh]) if finished(stage)]
    if done:
        stage = stages[done[-1]]
        load_weights(accelerator.unwrap_model(model), stage.folder / "model")
        accelerator.print(f"{', '.join(s.name for s in stages[: done[-1] + 1])} already done: "
                          f"loaded {stage.folder / 'model'}")
    metrics: dict = {}
    for stage in stages[done[-1] + 1 if done else 0 :]:
        metrics = stage.run(model)
        if stage.saves_model:
            save_final(accelerator, model, tokenizer, stage.folder)
            model = accelerator.unwrap_model(model)
            accelerator.free_memory()
    return model, metrics
