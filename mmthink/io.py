"""Files that are never seen half-written: every layer writes through these.

A reader (or a resumed run after a kill) sees the old file or folder or the new one, never part of
one: text goes to a temporary sibling that is renamed into place, a folder is filled beside the old
one and swapped in.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """``path`` holds ``data`` whole or keeps what it held: a temporary file, synced, then renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_jsonl(rows: Iterable[dict], path: str | Path) -> None:
    """One JSON object a line, written atomically; the parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap the complete folder ``tmp`` in as ``final`` (``os.replace`` cannot replace a non-empty folder,
    so the old one is moved aside first and deleted after)."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def write_dir_atomic(folder: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build ``folder`` through ``fill(tmp)`` in a temporary sibling, then swap it in."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    fill(tmp)
    replace_dir(tmp, folder)
    return folder


def check_output_dir(path, key: str = "output_dir") -> None:
    """Refuse, before any work, an output folder that is a file or lies where nothing can be written."""
    import os

    from mmthink.errors import UserError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{key} {p} is a file, not a folder")
    parent = p
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{key} {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{key} {p}: no permission to write in {parent}")


def check_output_file(path, key: str = "--out") -> None:
    """Refuse an output file that is a folder, or whose folder cannot be made or written."""
    from mmthink.errors import UserError

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{key} {p} is a folder, not a file")
    check_output_dir(p.parent, key)


def read_safetensors(path) -> dict:
    """The tensors of a safetensors file; a missing, truncated or foreign file is one UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mmthink.errors import UserError

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None


def read_json(path) -> dict:
    """A JSON file's contents; unreadable or invalid JSON is one UserError."""
    from mmthink.errors import UserError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON file ({str(e).splitlines()[0]})") from None


def strict_json(obj):
    """``obj`` with every NaN or infinity replaced by None, so that ``json.dumps`` writes strict JSON."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalars
        return strict_json(obj.item())
    return obj
