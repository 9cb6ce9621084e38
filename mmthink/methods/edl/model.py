"""A small MLP whose outputs are Dirichlet concentrations, and the model folder format.

A model folder holds ``model.safetensors`` (the weights) and ``config.json`` (the ``EDLConfig`` as a
dict plus the architecture: ``arch`` = ``mlp`` (this ``EvidentialMLP``) or ``postnet``
(``postnet.PosteriorNetwork``), ``in_dim``, ``n_classes`` and its sizes); ``save_edl_model`` writes it
atomically (a temporary sibling folder renamed into place). Folders written before ``arch`` existed
read as ``mlp``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmthink.errors import UserError
from mmthink.io import read_json, read_safetensors, write_dir_atomic
from mmthink.methods.edl.config import EXP_RAW
from mmthink.methods.edl.losses import evidence_to_alpha

WEIGHTS, CONFIG = "model.safetensors", "config.json"


class EvidentialMLP(nn.Module):
    """in_dim -> hidden -> hidden -> n_classes (ReLU); ``forward`` gives logits, ``alpha`` the Dirichlet α."""

    arch = "mlp"

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 64, evidence: str = "softplus"):
        super().__init__()
        self.in_dim, self.n_classes, self.hidden, self.evidence = in_dim, n_classes, hidden, evidence
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def alpha(self, x: Tensor) -> Tensor:
        """α(x) (N, K): evidence(logits) + 1 for softplus / exp / relu (so α >= 1);
        ``exp_raw``: exp(clamp(logits, -10, 10)), α in [4.5e-5, 2.2e4], which may go below 1."""
        logits = self(x)
        if self.evidence == EXP_RAW:
            return torch.exp(logits.clamp(-10.0, 10.0))
        return evidence_to_alpha(logits, self.evidence)

    def arch_config(self) -> dict:
        return dict(arch=self.arch, in_dim=self.in_dim, n_classes=self.n_classes, hidden=self.hidden,
                    evidence=self.evidence)


def save_edl_model(folder: str | Path, model: nn.Module, config: dict[str, Any] | Any) -> Path:
    """Write ``folder`` (weights + config.json) atomically; ``config`` is a dict or a dataclass."""
    from dataclasses import asdict, is_dataclass

    from safetensors.torch import save_file

    cfg = asdict(config) if is_dataclass(config) else dict(config)
    cfg.update(model.arch_config())
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}

    def fill(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2))

    return write_dir_atomic(Path(folder), fill)


def load_edl_model(folder: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, config dict) from a ``save_edl_model`` folder."""
    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise UserError(f"not an EDL model folder (needs {WEIGHTS} and {CONFIG}): {folder}")
    cfg = read_json(folder / CONFIG)
    missing = [k for k in ("in_dim", "n_classes", "hidden") if k not in cfg]
    if missing:
        raise UserError(f"{folder} is not an EDL model folder: its {CONFIG} has no '{missing[0]}' (a model of "
                        "another method?)")
    arch = cfg.get("arch", "mlp")
    if arch == "postnet":
        from mmthink.methods.edl.postnet import PosteriorNetwork

        model = PosteriorNetwork(cfg["in_dim"], cfg["n_classes"], cfg["hidden"], cfg["latent_dim"], cfg["flow_layers"])
    elif arch == "mlp":
        model = EvidentialMLP(cfg["in_dim"], cfg["n_classes"], cfg["hidden"], cfg.get("evidence", "softplus"))
    else:
        raise UserError(f"{folder / CONFIG}: unknown EDL architecture {arch!r}; expected mlp or postnet")
    try:
        model.load_state_dict(read_safetensors(folder / WEIGHTS))
    except RuntimeError as e:  # shapes or names that do not match the config
        raise UserError(f"{folder / WEIGHTS} does not match its {CONFIG}: {str(e).splitlines()[0]}") from None
    model.eval()
    return model, cfg
