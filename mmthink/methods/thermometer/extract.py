"""Extract every task file with one model into ``<task>.safetensors`` (``features_io`` describes the
folder), resumably.

Rows run in chunks of ``chunk_size``; each chunk is saved atomically to
``<out>/parts/<task>.part-NNNNN.safetensors`` (a subfolder, so that ``load_features`` never reads a
part as a task) and skipped when present on the next run; once all are there they are merged into
``<out>/<task>.safetensors`` and removed. Parts or a final file written under other settings (model,
rows, prompt, scoring, chunking) are refused rather than mixed in.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

from mmthink.config import changed_keys, choice, describe_changes
from mmthink.errors import UserError
from mmthink.methods.thermometer.features_io import SUFFIX, load_task, save_task
from mmthink.methods.thermometer.freeform import MAX_NEW_TOKENS, YES_NO, freeform_chunk, yes_no_row
from mmthink.methods.thermometer.prompting import PROMPT_VERSION, SCORINGS
from mmthink.methods.thermometer.scoring import mcq_chunk, scoring_meta
from mmthink.tasks.mcq import load_mcq


def _part_path(out_path: Path, index: int) -> Path:
    return out_path.parent / "parts" / f"{out_path.name[: -len(SUFFIX)]}.part-{index:05d}{SUFFIX}"


def check_run(path: Path, run: dict) -> None:
    """Refuse a part or final file that was written under other settings than ``run``."""
    old = load_task(path).meta.get("run") or {}
    keys = changed_keys(old, run)
    if keys:
        raise UserError(f"{path} was written by a different extraction ({describe_changes(old, run, keys)}); "
                        "delete it or choose another output folder")


def run_chunks(rows: list[dict], out_path: Path, compute: Callable, meta: dict, run: dict, chunk_size: int,
               progress: str = "auto", desc: str = "features") -> Path:
    """Compute ``rows`` chunk by chunk with ``compute(chunk) -> (features, logits, labels, extra)``, save
    each chunk as a part (skipping parts already there), then merge them into ``out_path``.

    ``extra`` (a JSON-able list per row, or None) is kept in each part's meta and written beside the
    merged file as ``<task>.answers.jsonl``. ``run`` names the settings; files written under others are
    refused.
    """
    import torch

    from mmthink.runner.tracking import Progress
    from mmthink.io import write_text_atomic

    if chunk_size < 1:
        raise UserError(f"chunk_size must be >= 1; got {chunk_size}")
    out_path = Path(out_path)
    if out_path.is_file():
        check_run(out_path, run)
        return out_path
    chunks = [rows[i : i + chunk_size] for i in range(0, len(rows), chunk_size)]
    parts = [_part_path(out_path, i) for i in range(len(chunks))]
    done = [p.is_file() for p in parts]
    completed = sum(len(c) for c, d in zip(chunks, done) if d)
    bar = Progress(len(rows), initial=completed, mode=progress, desc=desc)
    try:
        for i, (chunk, part) in enumerate(zip(chunks, parts)):
            if done[i]:
                check_run(part, run)
                continue
            features, logits, labels, extra = compute(chunk)
            save_task(part, features, logits, labels, {"run": run, "chunk": i, "extra": extra})
            completed += len(chunk)
            bar.update(completed)
    finally:
        bar.close()
    loaded = [load_task(p) for p in parts]
    extras = [e for t in loaded for e in (t.meta.get("extra") or [])]
    if extras:
        answers = out_path.with_name(out_path.name[: -len(SUFFIX)] + ".answers.jsonl")
        write_text_atomic(answers, "".join(json.dumps(e) + "\n" for e in extras))
    save_task(out_path, torch.cat([t.features for t in loaded]), torch.cat([t.logits for t in loaded]),
              torch.cat([t.labels for t in loaded]), {**meta, "run": run})
    for p in parts:
        p.unlink()
    if not any(parts[0].parent.iterdir()):
        shutil.rmtree(parts[0].parent, ignore_errors=True)
    return out_path


def run_signature(model_name: str, source: Path, n_rows: int, chat: bool, scoring: str, chunk_size: int,
                  kind: str) -> dict:
    """What must match for parts to be reused: the model, the exact rows, the prompt, scores and chunking."""
    return {"model": model_name, "rows_sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
            "n_rows": n_rows, "chat": chat, "scoring": scoring, "prompt": PROMPT_VERSION, "chunk_size": chunk_size,
            "kind": kind}


def extract_features(model, tokenizer, rows: list[dict], out_path, batch_size: int = 16, chat: bool = True,
                     progress: str = "auto", chunk_size: int = 256, scoring: str = "letters",
                     run: Optional[dict] = None, meta: Optional[dict] = None) -> Path:
    """Features, option scores and labels of multiple-choice ``rows`` (one task, one K) into ``out_path``
    (``<task>.safetensors``), resumably; ``run`` (see ``run_signature``) guards the resumption."""
    if not rows:
        raise UserError(f"{out_path}: no rows to extract")
    ks = sorted({len(r["options"]) for r in rows})
    if len(ks) > 1:
        raise UserError(f"{out_path}: a task file must hold one number of options K; its rows have K in {ks}: "
                        "split it into one file per K")
    model.eval()
    letter_ids, info = scoring_meta(model, tokenizer, rows[0], chat, scoring)
    meta = {"kind": "mcq", "n": len(rows), **info, **(meta or {})}
    run = run or {"n_rows": len(rows), "chat": chat, "scoring": scoring, "prompt": PROMPT_VERSION,
                  "chunk_size": chunk_size}
    out_path = Path(out_path)
    return run_chunks(rows, out_path, lambda c: mcq_chunk(model, tokenizer, c, batch_size, chat, scoring, letter_ids),
                      meta, run, chunk_size, progress, desc=out_path.name[: -len(SUFFIX)])


def extract_freeform(model, tokenizer, rows: list[dict], out_path, batch_size: int = 16, chat: bool = True,
                     progress: str = "auto", chunk_size: int = 256, scoring: str = "letters",
                     run: Optional[dict] = None, meta: Optional[dict] = None) -> Path:
    """Generate, grade and score the Yes/No question for free-form ``rows`` into ``out_path``, resumably."""
    if not rows:
        raise UserError(f"{out_path}: no rows to extract")
    model.eval()
    letter_ids, info = scoring_meta(model, tokenizer, yes_no_row(rows[0], "x", True), chat, scoring)
    meta = {"kind": "freeform", "n": len(rows), **info, "options": YES_NO,
            "correct_if": "rouge_l(greedy answer, reference) > 0", "max_new_tokens": MAX_NEW_TOKENS, **(meta or {})}
    run = run or {"n_rows": len(rows), "chat": chat, "scoring": scoring, "chunk_size": chunk_size, "kind": "freeform"}
    out_path = Path(out_path)
    compute = lambda c: freeform_chunk(model, tokenizer, c, batch_size, chat, scoring, letter_ids)  # noqa: E731
    return run_chunks(rows, out_path, compute, meta, run, chunk_size, progress, desc=out_path.name[: -len(SUFFIX)])


def _kind(path: Path) -> str:
    """``mcq`` when the first row has options, else ``freeform``."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    return "mcq" if "options" in json.loads(line) else "freeform"
                except json.JSONDecodeError:
                    return "mcq"  # load_rows reports the line
    return "mcq"


def extract_all(model_cfg, task_files: list, out_dir, batch_size: int = 16, limit: Optional[int] = None,
                chat: bool = True, chunk_size: int = 256, progress: str = "auto", scoring: str = "letters") -> dict:
    """Load the model once and extract every task file into ``out_dir/<file stem>.safetensors``.

    Multiple-choice files hold ``{"task", "question", "options", "answer": int}`` rows, free-form files
    ``{"task", "question", "answer": str}`` rows (see ``freeform``); every row is validated before the
    model loads. Returns per task its size, K, the accuracy of the argmax option (for free-form tasks
    also the share of correct generated answers) and the seconds it took (0 when already done), also
    written to ``out_dir/extract_summary.json``.
    """
    from mmthink.io import write_text_atomic
    from mmthink.tasks.mcq import load_freeform

    choice("scoring", scoring, list(SCORINGS))
    task_files = [Path(p) for p in task_files]
    if not task_files:
        raise UserError("no task files to extract")
    stems = [p.name.rsplit(".", 1)[0] for p in task_files]
    if len(set(stems)) != len(stems):
        raise UserError(f"task files must have distinct names (one <name>.safetensors each); got {stems}")
    jobs = []
    for path, stem in zip(task_files, stems):
        kind = _kind(path) if path.is_file() else "mcq"
        rows = load_mcq(path, limit) if kind == "mcq" else load_freeform(path, limit)
        jobs.append((path, stem, kind, rows))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded, summary = None, {}
    for path, stem, kind, rows in jobs:
        out_path = out_dir / f"{stem}{SUFFIX}"
        run = run_signature(model_cfg.name, path, len(rows), chat, scoring, chunk_size, kind)
        t0 = time.monotonic()
        if out_path.is_file():
            check_run(out_path, run)
        else:
            if loaded is None:
                from mmthink.models.loading import load_model

                loaded = load_model(model_cfg, train=False)
            extract = extract_features if kind == "mcq" else extract_freeform
            extract(loaded.model, loaded.tokenizer, rows, out_path, batch_size, chat, progress, chunk_size, scoring,
                    run, {"source": str(path)})
        task = load_task(out_path)
        summary[stem] = {"kind": kind, "n": len(rows), "k": task.logits.shape[1],
                         "accuracy": round((task.logits.argmax(-1) == task.labels).float().mean().item(), 4),
                         "seconds": round(time.monotonic() - t0, 2)}
        if kind == "freeform":
            summary[stem]["answers_correct"] = round((task.labels == 0).float().mean().item(), 4)
    write_text_atomic(out_dir / "extract_summary.json", json.dumps(
        {"model": model_cfg.name, "chat": chat, "scoring": scoring, "tasks": summary}, indent=2))
    return summary

