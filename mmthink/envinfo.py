"""What ``mmthink env`` reports: versions, devices, the bitsandbytes backend and offline flags."""

from __future__ import annotations

import os

from mmthink.paths import cache_dir
from mmthink.runner.tracking import package_versions

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def bnb_backend() -> str:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        return "not installed (model.quantization unavailable)"
    import logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        import bitsandbytes as bnb
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        # A real 4-bit round trip shows the backend runs, not only that the package imports.
        w = torch.randn(64, 64, device=device)
        q, state = bnb.functional.quantize_4bit(w, quant_type="nf4")
        err = (bnb.functional.dequantize_4bit(q, state).float() - w).abs().mean().item()
        return f"{bnb.__version__} on {device} (nf4 round-trip mean error {err:.3f})"
    except Exception as e:
        return f"unusable: {str(e).splitlines()[0]}"


def devices() -> str:
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"cuda x{len(names)}: {', '.join(names)}"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return f"cpu only ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def report() -> dict:
    out = {name: version or "not installed" for name, version in package_versions().items()}
    out["devices"] = devices()
    out["bitsandbytes backend"] = bnb_backend()
    for var in OFFLINE_VARS:
        out[var] = os.environ.get(var, "unset")
    out["cache dir"] = str(cache_dir())
    from mmthink.tasks.sandbox import describe

    out["code sandbox"] = describe()
    return out
