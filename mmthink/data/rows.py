"""Read JSONL or parquet rows through ``datasets`` and validate every one of them.

A method describes its rows with a ``validate(row)`` function that raises ``BadRow(field, why)``;
``load_rows`` turns that into one line naming the file, the line (or parquet row) and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from mmthink.errors import UserError


class BadRow(Exception):
    def __init__(self, field: str, why: str):
        super().__init__(f"field '{field}': {why}")
        self.field, self.why = field, why


def need(row: dict, field: str, kind: type | tuple, nonempty: bool = False) -> Any:
    """Return ``row[field]`` after checking that it exists, has type ``kind`` and, optionally, is not empty."""
    if not isinstance(row, dict):
        raise BadRow("<row>", f"expected a JSON object, got {type(row).__name__}")
    if field not in row or row[field] is None:
        raise BadRow(field, "missing")
    value = row[field]
    # bool is a subclass of int: True must not pass for a number.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = "/".join(t.__name__ for t in _as_tuple(kind))
        raise BadRow(field, f"expected {names}, got {type(value).__name__}")
    if nonempty and len(value) == 0:
        raise BadRow(field, "empty")
    return value


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _where(path: Path, index: int, lines: Optional[list[int]]) -> str:
    return f"{path}:{lines[index]}" if lines is not None else f"{path} row {index}"


def _jsonl_line_numbers(path: Path) -> list[int]:
    """1-based line numbers of the non-blank lines (the rows), raising on the first invalid JSON."""
    numbers = []
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    for n, raw in enumerate(raw_lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{path}:{n}: not UTF-8 text (byte {raw[e.start:e.start + 1]!r} at column {e.start + 1})") from None
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        numbers.append(n)
    return numbers


def load_rows(path: str | Path, validate: Callable[[dict], None], limit: Optional[int] = None):
    """A ``datasets.Dataset`` of the rows in a .jsonl/.json or .parquet file, every row validated."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise UserError(f"data file {path}: expected .jsonl or .parquet, got '{suffix or path.name}'")
    lines = _jsonl_line_numbers(path) if suffix != ".parquet" else None
    if lines == []:
        raise UserError(f"data file {path} holds no rows")
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        ds = datasets.load_dataset(
            "parquet" if lines is None else "json", data_files=str(path), split="train", keep_in_memory=True
        )
    except Exception as e:
        # Arrow refuses rows whose fields change type; find the row by validating it ourselves.
        if lines is not None:
            with open(path, encoding="utf-8") as f:
                rows = [json.loads(ln) for ln in f if ln.strip()]
            _validate_all(rows, validate, path, lines)
        raise UserError(f"{path}: cannot read data ({str(e).splitlines()[0]})") from None
    if len(ds) == 0:
        raise UserError(f"data file {path} holds no rows")
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    _validate_all(ds, validate, path, lines)
    return ds


def _validate_all(rows, validate, path: Path, lines) -> None:
    for i, row in enumerate(rows):
        try:
            validate(_strip_nulls(row))
        except BadRow as e:
            raise UserError(f"{_where(path, i, lines)}: {e}") from None


def _strip_nulls(row):
    # Arrow gives every row the union of all keys, filling absent ones with None.
    return {k: v for k, v in row.items() if v is not None} if isinstance(row, dict) else row
