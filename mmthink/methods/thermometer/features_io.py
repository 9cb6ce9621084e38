"""The features folder: one ``<task>.safetensors`` per task, what Thermometer trains and is evaluated on.

Each file holds three tensors and a JSON ``meta`` string in the safetensors header:

- ``features`` (N, d) float32: the LM's last-layer hidden state of the final prompt token;
- ``logits``   (N, K) float32: the next-token logits of the K option letters ("A", "B", ...);
- ``labels``   (N,)  int64:   the index of the right option, -1 where the row is unlabelled.

``meta`` is free-form provenance (model, prompt template, option letters, split) written by the
extractor; loading keeps it but never needs it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmthink.errors import UserError

SUFFIX = ".safetensors"
FORMAT = "mmthink.thermometer.features/1"


@dataclass
class TaskFeatures:
    name: str
    features: torch.Tensor  # (N, d) float32
    logits: torch.Tensor  # (N, K) float32
    labels: torch.Tensor  # (N,) int64, -1 = unlabelled
    meta: dict = field(default_factory=dict)

    @property
    def labelled(self) -> torch.Tensor:
        """Boolean mask of the rows with a label."""
        return self.labels >= 0


def _check(name: str, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
    if features.dim() != 2 or logits.dim() != 2 or labels.dim() != 1:
        raise UserError(
            f"task {name}: expected features (N, d), logits (N, K), labels (N,); got "
            f"{tuple(features.shape)}, {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    n = features.shape[0]
    if logits.shape[0] != n or labels.shape[0] != n:
        raise UserError(
            f"task {name}: features, logits and labels disagree on the number of rows "
            f"({n}, {logits.shape[0]}, {labels.shape[0]})"
        )
    if n == 0:
        raise UserError(f"task {name}: no rows")
    if logits.shape[1] < 2:
        raise UserError(f"task {name}: logits need at least 2 options; got {logits.shape[1]}")
    if labels.numel() and (labels.min() < -1 or labels.max() >= logits.shape[1]):
        raise UserError(f"task {name}: labels must be -1 (unlabelled) or in [0, {logits.shape[1]})")
    if not (torch.isfinite(features).all() and torch.isfinite(logits).all()):
        raise UserError(f"task {name}: features or logits contain NaN or inf")


def save_task(
    path, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, meta: dict | None = None
) -> Path:
    """Write one task file (atomically: a reader never sees half a file)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    name = path.name[: -len(SUFFIX)]
    tensors = {
        "features": features.detach().to("cpu", torch.float32).contiguous(),
        "logits": logits.detach().to("cpu", torch.float32).contiguous(),
        "labels": labels.detach().to("cpu", torch.int64).contiguous(),
    }
    _check(name, tensors["features"], tensors["logits"], tensors["labels"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "meta": json.dumps(meta or {})})
    os.replace(tmp, path)
    return path


def load_task(path) -> TaskFeatures:
    from safetensors import safe_open

    path = Path(path)
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    if not path.is_file():
        raise UserError(f"features file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            missing = {"features", "logits", "labels"} - keys
            if missing:
                raise UserError(f"{path}: missing tensor(s) {', '.join(sorted(missing))}")
            tensors = {k: f.get_tensor(k) for k in ("features", "logits", "labels")}
            header = f.metadata() or {}
    except UserError:
        raise
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    _check(name, tensors["features"], tensors["logits"], tensors["labels"])
    try:
        meta = json.loads(header.get("meta", "{}"))
    except json.JSONDecodeError:
        meta = {}
    return TaskFeatures(
        name=name,
        features=tensors["features"].float(),
        logits=tensors["logits"].float(),
        labels=tensors["labels"].long(),
        meta=meta,
    )


def load_features(folder) -> dict[str, TaskFeatures]:
    """Every ``<task>.safetensors`` in ``folder``, by task name (sorted); all must share d."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"features folder not found: {folder}")
    # Only the folder's own files: sub-folders (an extractor's parts/) and hidden temporaries are not tasks.
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(SUFFIX) and p.name[0] != ".")
    if not files:
        raise UserError(f"no <task>{SUFFIX} files in features folder {folder}")
    tasks = {t.name: t for t in map(load_task, files)}
    dims = {t.features.shape[1] for t in tasks.values()}
    if len(dims) > 1:
        detail = ", ".join(f"{t.name}: {t.features.shape[1]}" for t in tasks.values())
        raise UserError(f"features in {folder} have different sizes d ({detail}); extract them with one LM")
    return tasks
