"""``mmthink calibrate features | fit | apply``: Thermometer's own verbs (mounted by its registry row)."""

from __future__ import annotations

from typing import List, Optional

import typer

from mmthink.commands import (DRY_RUN, GPU_MEMORY, GPUS, RECIPE_OPTION, overrides as overrides_arg, STRATEGY, command_line,
                              dry_run_target, method_recipe, print_table, quiet_hub_bars, user_errors)

CALIBRATE_OVERRIDES = overrides_arg("thermometer.steps=2000 features.batch_size=8")
app = typer.Typer(help="Thermometer: calibrate an LM across tasks, apply it to new ones.", no_args_is_help=True,
                  add_completion=False)


@app.command("features")
@user_errors
def features(recipe: Optional[str] = RECIPE_OPTION, overrides: Optional[List[str]] = CALIBRATE_OVERRIDES,
             dry_run: bool = DRY_RUN, gpus: int = GPUS, gpu_memory: float = GPU_MEMORY,
             strategy: Optional[str] = STRATEGY):
    """Run the LM over every task and store last-token states and option-letter logits (resumable)."""
    from mmthink.methods.thermometer.pipeline import dry_run as check
    from mmthink.methods.thermometer.pipeline import features as extract

    cfg = method_recipe("thermometer", recipe, overrides)
    if dry_run:
        check(cfg, dry_run_target(gpus, gpu_memory, strategy))
        return
    quiet_hub_bars()
    summary = extract(cfg, command_line())
    print_table("features: accuracy of the argmax option per task", {t: s["accuracy"] for t, s in summary.items()})


@app.command("fit")
@user_errors
def fit(recipe: Optional[str] = RECIPE_OPTION, overrides: Optional[List[str]] = CALIBRATE_OVERRIDES):
    """Train the Thermometer calibrator on all tasks; with eval.loto, the leave-one-task-out table."""
    from mmthink.methods.thermometer.pipeline import fit_calibrator

    cfg = method_recipe("thermometer", recipe, overrides)
    result = fit_calibrator(cfg, command_line())
    typer.echo(f"calibrator: {result['calibrator']} (best step {result['best_step']}, "
               f"validation NLL {result['best_val_nll']:.4f})")


@app.command("apply")
@user_errors
def apply(
    calibrator: str = typer.Option(..., "--calibrator", help="Calibrator folder (output_dir/calibrator)"),
    features: str = typer.Option(..., "--features", help="A task's features (.safetensors from calibrate features)"),
    out: Optional[str] = typer.Option(None, "--out", help="JSON file for the temperature and probabilities"),
):
    """One temperature for a new task from its unlabelled prompts; before/after metrics when labelled."""
    from mmthink.io import check_output_file
    from mmthink.methods.thermometer.pipeline import apply_calibrator

    if out:
        check_output_file(out)
    result = apply_calibrator(calibrator, features, out)
    flat = {"temperature": result["temperature"], "n": result["n"]}
    for when in ("uncalibrated", "calibrated"):
        for k in ("ece", "nll", "brier", "accuracy"):
            if when in result:
                flat[f"{when}/{k}"] = result[when][k]
    print_table(f"calibrate apply: {result['task']}", flat)
