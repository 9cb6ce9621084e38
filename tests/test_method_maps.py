"""Every function, class and recipe field that docs/methods.md and the methods' ``__init__`` maps name exists.

A code reference is a dotted path: ``mmthink.x.y`` in full, ``pkg.module.name`` under ``mmthink``
(``rl.trainer.train_rl``) or under the section's method (``losses.latent_alignment``); a bare name
after a dotted one in the same cell or line lives in the same module (``grade``, ``Grader``).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import typing
from pathlib import Path

import pytest

from mmthink import registry

ROOT = Path(__file__).resolve().parents[1]
SECTION_METHOD = {"Mirage": "mirage", "Satori": "satori", "EvoScale": "evoscale", "Tango": "tango", "VCA": "vca", "Thermometer": "thermometer", "Consistent EDL": "edl",
                  "Black-box prompt tuning": "bbpt", "Robust fair IB": "fair"}
MAP_HEADER = "Paper term → recipe field → code:"


def _resolve_path(path: str):
    """The object at dotted ``path`` (longest importable module prefix, then attributes), or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        return obj
    return None


def resolve(ref: str, method: str | None, previous: str | None):
    """(object or None, the module path a following bare name is relative to)."""
    ref = ref.split("(")[0].strip()
    if "." not in ref or (previous and _resolve_path(f"{previous}.{ref.split('.')[0]}") is not None):
        if previous is None:
            return None, previous
        return _resolve_path(f"{previous}.{ref}"), previous
    candidates = [ref] if ref.startswith("mmthink.") else [f"mmthink.{ref}"]
    if method and not ref.startswith("mmthink."):
        candidates.insert(0, f"mmthink.methods.{method}.{ref}")
    for c in candidates:
        obj = _resolve_path(c)
        if obj is not None:
            module = c if isinstance(obj, type(importlib)) else c.rsplit(".", 1)[0]
            return obj, module
    return None, previous


def _refs(cell: str) -> list[str]:
    """Backticked code references of a docs cell, leaving out commands, YAML and prose in backticks."""
    out = []
    for tok in re.findall(r"`([^`]+)`", cell):
        tok = tok.strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*(\(.*\))?", tok) and not tok.startswith("mmthink "):
            out.append(tok)
    return out


def _doc_rows():
    method, header = None, None
    for n, line in enumerate((ROOT / "docs" / "methods.md").read_text().splitlines(), 1):
        if line.startswith("## ") or line.startswith("### "):
            title = line.lstrip("#").strip()
            method = next((m for s, m in SECTION_METHOD.items() if title.startswith(s)), None) if line.startswith("## ") \
                else method
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]  # "\|" is a literal bar
        if header is None:
            header = cells
            continue
        if set(line) <= set("|-: "):
            continue
        if "code" in header:
            assert len(cells) == len(header), f"docs/methods.md:{n}: {len(cells)} cells under a {len(header)}-column header"
            yield n, method, cells[header.index("code")]


DOC_ROWS = list(_doc_rows())


def test_the_docs_table_has_code_references():
    assert len(DOC_ROWS) > 80
    assert sum(len(_refs(c)) for _, _, c in DOC_ROWS) > 200


def test_every_function_docs_methods_names_exists():
    missing = []
    for n, method, cell in DOC_ROWS:
        previous = None
        for ref in _refs(cell):
            obj, previous = resolve(ref, method, previous)
            if obj is None:
                missing.append(f"docs/methods.md:{n}: {ref}")
    assert not missing, "\n".join(missing)


# ------------------------------------------------------------------------------------------ __init__ maps


def _map_lines(method: str) -> list[str]:
    doc = importlib.import_module(f"mmthink.methods.{method}").__doc__ or ""
    assert MAP_HEADER in doc, f"mmthink/methods/{method}/__init__.py has no '{MAP_HEADER}' map"
    block = doc.split(MAP_HEADER, 1)[1].split("\n\n", 1)[0]
    return [ln for ln in block.splitlines() if ln.strip()]


def _field_exists(schema, dotted: str) -> bool:
    t = schema
    for name in dotted.split("."):
        if name == "*":
            return True
        if not dataclasses.is_dataclass(t):
            return False
        fields = {f.name: f for f in dataclasses.fields(t)}
        if name not in fields:
            return False
        t = typing.get_type_hints(t).get(name)
        if typing.get_origin(t) is typing.Union:  # Optional[X]
            t = next(a for a in typing.get_args(t) if a is not type(None))
    return True


@pytest.mark.parametrize("method", sorted(m for m, row in registry.METHODS.items() if row.schema))
def test_each_method_map_names_existing_recipe_fields_and_functions(method):
    schema = registry.schema(method)
    lines = _map_lines(method)
    assert len(lines) >= 4
    missing = []
    for line in lines:
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) == 3:
            _, fields, code = cols
            for f in re.split(r",\s*", fields):
                if f not in ("—", "") and not _field_exists(schema, f.strip()):
                    missing.append(f"recipe field {f!r}")
        else:  # a continuation line: more code of the entry above
            code = cols[-1]
        previous = None
        for ref in re.split(r",\s*|\s*→\s*", code):
            if ref:
                obj, previous = resolve(ref, method, previous)
                if obj is None:
                    missing.append(f"code {ref!r}")
    assert not missing, f"mmthink/methods/{method}/__init__.py: " + ", ".join(missing)
