"""Where shipped files live: next to the package in a wheel, at the repository root in a checkout."""

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    # A wheel carries recipes/ and assets/ inside the package (see pyproject's force-include);
    # an editable install reads them from the repository root.
    inside = _PKG / f"_{name}"
    return inside if inside.is_dir() else _PKG.parent / name


def recipes_dir() -> Path:
    return _shipped("recipes")


def assets_dir() -> Path:
    return _shipped("assets")


def data_dir() -> Path:
    """The small data the shipped recipes read (``data/toy``), inside a wheel or at the repository root."""
    return _shipped("data")


def cache_dir() -> Path:
    """User cache for converted models: $MMTHINK_CACHE, else $XDG_CACHE_HOME/mmthink, else ~/.cache/mmthink."""
    if os.environ.get("MMTHINK_CACHE"):
        return Path(os.environ["MMTHINK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmthink"
