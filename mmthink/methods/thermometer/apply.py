"""Calibrating a new task with a trained Thermometer: no labels, one temperature from its prompts."""

from __future__ import annotations

import torch

from mmthink.errors import UserError
from mmthink.methods.thermometer.model import dataset_temperature, load_calibrator
from mmthink.metrics.calibration import apply_temperature


def calibrate_task(calibrator_folder, features: torch.Tensor, logits: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(temperature tau, softmax(logits / tau) as float64 (N, K)) for one task's prompts."""
    model, info = load_calibrator(calibrator_folder)
    if features.dim() != 2 or features.shape[1] != model.d:
        raise UserError(
            f"features have shape {tuple(features.shape)} but the calibrator at {calibrator_folder} expects"
            f" (N, {model.d}): extract them with the LM it was trained for"
        )
    if logits.dim() != 2 or logits.shape[0] != features.shape[0]:
        raise UserError(f"logits {tuple(logits.shape)} do not match features {tuple(features.shape)} (N rows each)")
    tau = dataset_temperature(model, features)
    return tau, apply_temperature(logits, tau)
