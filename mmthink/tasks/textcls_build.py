"""Build the few-shot text classification tasks of assets/textcls from raw dataset files (``mmthink data textcls``).

Nothing is downloaded here: the raw files are copies of public dataset files committed in public GitHub
repositories (assets/textcls/PROVENANCE.md gives each one's repository, path and commit, and which
part of the file was copied). They are small and committed under assets/textcls/raw, named as in
``TASKS`` below:

    mmthink data textcls --out assets/textcls                   # reads assets/textcls/raw
    mmthink data textcls --raw /tmp/textcls_raw --out OUT_DIR

A test checks that the committed task files are what this writes.

Per task: parse the rows, drop texts that repeat (all copies, so a text never sits in two splits or
under two labels), then for each class shuffle its rows with ``random.Random(f"{SEED}:{task}:{label}")``
(rows kept in file order before the shuffle) and take 16 for train, the next 16 for dev and the next
``n_test`` for test; each split is then shuffled with ``random.Random(f"{SEED}:{task}:{split}")``.
An OOD-only task (``few_shot=False``) has just a test split.
"""

from __future__ import annotations

import csv
import html
import json
import random
import re
from collections import Counter
from pathlib import Path

from mmthink.errors import UserError
from mmthink.io import write_jsonl, write_text_atomic
from mmthink.tasks.textcls import K_SHOT as K

SEED = 0


def read_tsv_text_label(path: Path) -> list[tuple[str, int]]:
    """GLUE-style TSV: a header line, then ``text<TAB>label`` (text may end in a space)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for line in lines[1:]:
        text, label = line.rsplit("\t", 1)
        rows.append((text.strip(), int(label)))
    return rows


# Three sentences of imdb_labelled.txt hold a character (a Windows-1252 dash, by its place) that the
# copy lost; the lengths show one missing character in each. They are dropped rather than shipped altered.
_IMDB_LOST_CHAR = ("It's practically perfect in all of them", "The script is", "I'll even say it again")


def read_sentiment_sentences(path: Path) -> list[tuple[str, int]]:
    """UCI "Sentiment Labelled Sentences" (imdb_labelled.txt): ``sentence  <TAB>label``, no header."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text, label = line.rsplit("\t", 1)
        text = text.strip()
        if text.startswith(_IMDB_LOST_CHAR):
            continue
        rows.append((text, int(label)))
    return rows


AG_LABELS = ["World", "Sports", "Business", "Sci/Tech"]  # the class order of the original AG News csv
_AG_FIXES = [("\\$", "$"), (" #36;", " $"), ("#36;", "$"), (" #39;", "'"), ("#39;", "'"),
             ("#151;", " - "), (" quot;", ' "'), ("quot;", '"'), (" amp;", " &")]


def clean_ag(text: str) -> str:
    """Undo AG News' crawl artefacts: escaped entities (#39; is an apostrophe that ate the space
    before it, #36; a dollar sign), backslashes standing for line breaks, and HTML tags."""
    for bad, good in _AG_FIXES:
        text = text.replace(bad, good)
    text = html.unescape(text)
    text = re.sub(r"<[^>]*>", " ", text).replace("\\", " ")
    return " ".join(text.split())


def read_agnews_alps(path: Path) -> list[tuple[str, int]]:
    """ALPS' AG News TSV: ``description<TAB>class name``, quoted like CSV, no header."""
    with open(path, encoding="utf-8", newline="") as f:
        return [(clean_ag(text), AG_LABELS.index(label)) for text, label in csv.reader(f, delimiter="\t")]


# One entry per task: the raw files (relative to RAW), their reader, the task.json fields and the test
# size per class. Labels are the source's integer labels, in the order of ``labels``.
TASKS = {
    "sst2": {
        # GLUE SST-2 validation set, first 295 rows (the first 32,000 characters of the file).
        "files": ["sst2/dev_head.tsv"],
        "read": read_tsv_text_label,
        "labels": ["negative", "positive"],
        "verbalizer": ["bad", "great"],
        "template": "{text} It was {label}.",
        "n_test": 100,
        "ood": "imdb",
    },
    "imdb": {
        # OOD set for sst2: IMDB sentences of the UCI "Sentiment Labelled Sentences" data set, first
        # 386 rows (the first 29,770 characters of imdb_labelled.txt). Test split only.
        "files": ["imdb/head.txt"],
        "read": read_sentiment_sentences,
        "labels": ["negative", "positive"],
        "verbalizer": ["bad", "great"],
        "template": "{text} It was {label}.",
        "n_test": 100,
        "few_shot": False,
    },
    "agnews": {
        # AG News (4 topics), descriptions only: ALPS' sample of the AG News training set, first 323 rows
        # (the first 64,000 characters of data/agnews/dev.tsv).
        "files": ["agnews/dev_head.tsv"],
        "read": read_agnews_alps,
        "labels": AG_LABELS,
        "verbalizer": ["World", "Sports", "Business", "Tech"],
        "template": "{text} Topic: {label}.",
        "n_test": 40,
    },
}


def read_rows(raw: Path, spec: dict) -> list[tuple[str, int]]:
    rows = [r for f in spec["files"] for r in spec["read"](raw / f)]
    counts = Counter(text for text, _ in rows)
    return [(t, y) for t, y in rows if counts[t] == 1 and t]


def sample(task: str, spec: dict, rows: list[tuple[str, int]]) -> dict[str, list[dict]]:
    n_labels = len(spec["labels"])
    few_shot = spec.get("few_shot", True)
    sizes = {"train": K, "dev": K, "test": spec["n_test"]} if few_shot else {"test": spec["n_test"]}
    splits = {s: [] for s in sizes}
    for label in range(n_labels):
        pool = [t for t, y in rows if y == label]
        random.Random(f"{SEED}:{task}:{label}").shuffle(pool)
        need = sum(sizes.values())
        if len(pool) < need:
            raise UserError(f"{task}: class {label} has {len(pool)} rows in the raw files, need {need}")
        start = 0
        for split, n in sizes.items():
            splits[split] += [{"text": t, "label": label} for t in pool[start:start + n]]
            start += n
    for split, split_rows in splits.items():
        random.Random(f"{SEED}:{task}:{split}").shuffle(split_rows)
    return splits


def write_task(task: str, spec: dict, raw: Path, out: Path) -> str:
    """Write ``out/task/{train,dev,test}.jsonl`` and ``task.json``; returns a one-line summary."""
    for f in spec["files"]:
        if not (raw / f).is_file():
            raise UserError(f"raw file not found: {raw / f} (assets/textcls/PROVENANCE.md says where it comes from)")
    rows = read_rows(raw, spec)
    splits = sample(task, spec, rows)
    folder = out / task
    for split, split_rows in splits.items():
        write_jsonl(split_rows, folder / f"{split}.jsonl")
    meta = {"name": task, "labels": spec["labels"], "verbalizer": spec["verbalizer"],
            "template": spec["template"]}
    if spec.get("ood"):
        meta["ood"] = spec["ood"]
    write_text_atomic(folder / "task.json", json.dumps(meta, indent=2) + "\n")
    by_label = Counter(y for _, y in rows)
    return (f"{task}: {len(rows)} source rows {dict(sorted(by_label.items()))} -> "
            + ", ".join(f"{s} {len(r)}" for s, r in splits.items()))


def build_all(raw: Path, out: Path) -> list[str]:
    """Every task of ``TASKS`` from the raw files under ``raw`` into ``out``; one summary line each."""
    return [write_task(task, spec, Path(raw), Path(out)) for task, spec in TASKS.items()]
