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


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
