"""Few-shot text classification tasks for black-box prompt tuning (16 examples per class).

The setup follows gradient-free prompt tuning papers (LM-BFF, BBT, "Reliable gradient-free and
likelihood-free prompt tuning"): 16 training and 16 dev examples per class, a balanced test set, and
a verbalizer that maps each class to one word the LM scores after a template. The shipped tasks
(``assets/textcls/<task>/``) hold rows of public datasets sampled by ``mmthink data textcls`` (``tasks.textcls_build``);
``assets/textcls/PROVENANCE.md`` names the source of every file.

A task folder::

    task.json     {"name", "labels": [class names], "verbalizer": [one word per class],
                   "template": "{text} It was {label}.", "ood": optional name of an OOD task}
    train.jsonl   {"text": str, "label": int}   (each split optional; an OOD-only set has just test)
    dev.jsonl
    test.jsonl

``load_task("sst2")`` reads a shipped task, ``load_task("path/to/folder")`` a folder of your own.
A malformed row raises a ``UserError`` naming file:line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mmthink.data.rows import BadRow, need
from mmthink.errors import UserError
from mmthink.paths import assets_dir

SPLITS = ("train", "dev", "test")
K_SHOT = 16  # training and dev examples per class in the shipped tasks
TEXT_SLOT, LABEL_SLOT = "{text}", "{label}"


def tasks_dir() -> Path:
    return assets_dir() / "textcls"


@dataclass
class TextTask:
    name: str
    labels: list[str]
    verbalizer: list[str]  # one word per class, in label order
    template: str  # holds {text} and {label} once each
    train: list[tuple[str, int]] = field(default_factory=list)
    dev: list[tuple[str, int]] = field(default_factory=list)
    test: list[tuple[str, int]] = field(default_factory=list)
    ood: Optional[str] = None  # a task whose test texts are out of distribution for this one

    def prompt(self, text: str) -> str:
        """The template up to the label slot: the LM scores each verbalizer word after it."""
        # str.replace, not str.format: review texts may hold braces.
        return self.template.split(LABEL_SLOT)[0].replace(TEXT_SLOT, text)

    def fill(self, text: str, label: int) -> str:
        return self.template.replace(TEXT_SLOT, text).replace(LABEL_SLOT, self.verbalizer[label])


def list_tasks() -> list[str]:
    """Names of the shipped tasks (folders under assets/textcls holding a task.json)."""
    root = tasks_dir()
    return sorted(p.parent.name for p in root.glob("*/task.json")) if root.is_dir() else []


def load_task(name_or_dir: str | Path) -> TextTask:
    """A shipped task by name, or a task folder (task.json + train/dev/test.jsonl) by path."""
    folder = _resolve(name_or_dir)
    meta = _read_meta(folder / "task.json")
    splits = {}
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        splits[split] = _read_split(path, len(meta["labels"])) if path.is_file() else []
    if not any(splits.values()):
        raise UserError(f"task folder {folder} holds none of {', '.join(s + '.jsonl' for s in SPLITS)}")
    return TextTask(**meta, **splits)


def _resolve(name_or_dir: str | Path) -> Path:
    path = Path(name_or_dir)
    bare = len(path.parts) == 1 and not str(name_or_dir).startswith(".")
    if bare and (tasks_dir() / path.name / "task.json").is_file():
        return tasks_dir() / path.name
    if path.is_dir():
        return path
    raise UserError(f"unknown text classification task '{name_or_dir}' (no such folder); "
                    f"shipped tasks: {', '.join(list_tasks()) or 'none'}")


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"task folder {path.parent} has no task.json")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    try:
        return _check_meta(meta)
    except BadRow as e:
        raise UserError(f"{path}: {e}") from None


def _check_meta(meta: dict) -> dict:
    name = need(meta, "name", str, nonempty=True)
    labels = need(meta, "labels", list)
    verbalizer = need(meta, "verbalizer", list)
    template = need(meta, "template", str, nonempty=True)
    if len(labels) < 2 or not all(isinstance(x, str) and x.strip() for x in labels):
        raise BadRow("labels", "expected at least two non-empty class names")
    if len(verbalizer) != len(labels):
        raise BadRow("verbalizer", f"expected one word per label ({len(labels)}), got {len(verbalizer)}")
    for i, word in enumerate(verbalizer):
        if not isinstance(word, str) or not word or len(word.split()) != 1 or word != word.strip():
            raise BadRow(f"verbalizer[{i}]", f"expected a single word, got {word!r}")
    if len(set(verbalizer)) != len(verbalizer):
        raise BadRow("verbalizer", "words repeat")
    for slot in (TEXT_SLOT, LABEL_SLOT):
        if template.count(slot) != 1:
            raise BadRow("template", f"expected {slot} exactly once")
    ood = meta.get("ood")
    if ood is not None and not (isinstance(ood, str) and ood):
        raise BadRow("ood", "expected a task name")
    unknown = set(meta) - {"name", "labels", "verbalizer", "template", "ood"}
    if unknown:
        raise BadRow(sorted(unknown)[0], "unknown field")
    return {"name": name, "labels": labels, "verbalizer": verbalizer, "template": template, "ood": ood}


def _read_split(path: Path, n_labels: int) -> list[tuple[str, int]]:
    # Read line by line rather than through data.rows.load_rows: Arrow's JSON reader would coerce a
    # label written as "1" into an int, and these files are small.
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = need(row, "text", str, nonempty=True)
                label = need(row, "label", int)
                if not 0 <= label < n_labels:
                    raise BadRow("label", f"{label} is out of range for {n_labels} labels")
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            except BadRow as e:
                raise UserError(f"{path}:{n}: {e}") from None
            rows.append((text, label))
    if not rows:
        raise UserError(f"data file {path} holds no rows")
    return rows
