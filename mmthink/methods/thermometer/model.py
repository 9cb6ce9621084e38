"""The Thermometer network, the dataset temperature it gives, and the calibrator folder.

Thermometer maps an LM feature vector (last-layer hidden state of the final prompt token) to a
positive *inverse* temperature 1/tau. Three parallel branches Linear(d->h) -> ReLU -> Linear(h->1)
give three scalars, Linear(3->1) mixes them, Softplus makes the result positive. A task's one
temperature comes from its unlabelled prompts: tau = 1 / mean_n 1/tau_n, and every logit of the task
is multiplied by 1/tau, so the arg-max and the accuracy never change.

The calibrator folder (what ``mmthink calibrate fit`` writes and ``mmthink serve`` loads)::

    calibrator/
      model.safetensors   the network's weights
      config.json         method, format, d, hidden, what the output means, training settings
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from mmthink.errors import UserError
from mmthink.io import write_dir_atomic

FORMAT = "mmthink.thermometer.calibrator/1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"


class Thermometer(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.d, self.hidden = d, hidden
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1)) for _ in range(3)
        )
        self.mix = nn.Linear(3, 1)
        self.softplus = nn.Softplus()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, d) features -> (N,) inverse temperatures 1/tau_n > 0."""
        x = features.to(self.mix.weight.dtype)
        # 1/tau_n = softplus(W [b_1(x_n), b_2(x_n), b_3(x_n)] + c),  b_i(x) = V_i relu(U_i x + a_i) + e_i
        return self.softplus(self.mix(torch.cat([b(x) for b in self.branches], dim=-1))).squeeze(-1)


@torch.no_grad()
def dataset_inverse_temperature(model: Thermometer, features: torch.Tensor, chunk: int = 4096) -> float:
    """The task's 1/tau: the mean of the per-prompt inverse temperatures (labels never used)."""
    if features.dim() != 2 or features.shape[0] == 0:
        raise ValueError(f"expected features (N, d) with N > 0; got {tuple(features.shape)}")
    was_training = model.training
    model.eval()
    device = model.mix.weight.device
    total = 0.0
    for start in range(0, features.shape[0], chunk):  # chunks bound memory on large tasks
        total += float(model(features[start : start + chunk].to(device)).double().sum())
    model.train(was_training)
    # 1/tau = 1/N sum_n 1/tau_n
    return total / features.shape[0]


def dataset_temperature(model: Thermometer, features: torch.Tensor) -> float:
    """tau = 1 / (mean inverse temperature): divide the task's logits by it."""
    return 1.0 / dataset_inverse_temperature(model, features)


def save_calibrator(folder, model: Thermometer, config: dict) -> Path:
    """Write the calibrator folder; a tmp folder renamed into place, so readers never see half of one.

    ``config`` is recorded as the training settings (the resolved ``ThermometerConfig`` and anything
    else worth keeping, such as the training tasks).
    """
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    info = {
        "method": "thermometer",
        "format": FORMAT,
        "d": model.d,
        "hidden": model.hidden,
        "output": "inverse temperature per prompt; task temperature = 1 / mean over the task's prompts",
        "input": "LM last-layer hidden state of the final prompt token, float32 (N, d)",
        "training": config,
    }

    def fill(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / CONFIG).write_text(json.dumps(info, indent=2, default=str))

    return write_dir_atomic(Path(folder), fill)


def load_calibrator(folder, device: str = "cpu") -> tuple[Thermometer, dict]:
    """(model in eval mode, config.json as a dict) from a folder written by ``save_calibrator``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise UserError(f"{folder}: not a Thermometer calibrator (needs {CONFIG} and {WEIGHTS})")
    try:
        info = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{folder / CONFIG}: invalid JSON ({e.msg})") from None
    if info.get("method") != "thermometer" or info.get("format") != FORMAT:
        raise UserError(f"{folder}: calibrator format {info.get('format')!r}, expected {FORMAT!r}")
    model = Thermometer(int(info["d"]), int(info["hidden"]))
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    except RuntimeError as e:
        raise UserError(f"{folder}: weights do not match config.json ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), info
