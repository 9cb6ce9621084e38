"""Run the LM once over every task's prompts and keep what Thermometer needs per prompt: a feature
vector and one score per option (``features_io`` describes the folder).

The prompt. With a chat template (``chat=True`` and the tokenizer has one) the user message is
``format_question(row)`` and the assistant turn is opened with ``Answer:``; without one the prompt is
``format_prompt(row)``, the same text followed by a line ``Answer:``::

    <|im_start|>user
    Question: What is 7 + 5?
    A. 11
    B. 12
    <|im_end|>
    <|im_start|>assistant
    Answer:

The scores (``scoring``):

- ``letters`` (the paper's): the next-token logits of the option letters after that prompt.
  ``letter_token_ids`` asks the tokenizer how each of ``A``..``E`` is spelled as one token right after
  ``Answer:``: `` A`` (space-prefixed; SmolLM2 and most BPE vocabularies) when every letter is one token
  that way, else ``A`` (the tiny presets' byte-level vocabulary splits `` A`` in two). A task with K
  options keeps the first K letters.
- ``cloze``: the prompt leaves out the option lines, and an option's score is the log-likelihood of
  its text after ``Answer:``, ``sum_t log p(o_t | prompt, o_<t)`` with ``o`` = the tokens of
  `` <option>``; the softmax over the K options is the model's choice distribution. LMs as small as
  SmolLM2-135M answer every letter question with one fixed letter (chance accuracy) but rank option
  texts well; the SmolLM authors evaluate their models in this "cloze formulation" too.

The feature. ``output_hidden_states=True`` and its last entry, at the final prompt token. In
transformers 5.x that entry is ``last_hidden_state``, i.e. *after* the final RMSNorm for
LlamaForCausalLM (``capture_outputs`` ties it; a test checks that ``lm_head(feature)`` reproduces the
logits), the same vector the authors' code took from LLaMA-2.

Resumable: rows run in chunks of ``chunk_size``; each chunk is saved atomically to
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

from mmthink.config import choice
from mmthink.errors import UserError
from mmthink.methods.thermometer.features_io import SUFFIX, load_task, save_task
from mmthink.tasks.mcq import ANSWER_PREFIX, LETTERS, format_prompt, format_question, load_mcq

SCORINGS = ("letters", "cloze")
PROMPT_VERSION = "question-answer-prefix/1"  # bump when the prompt text changes: old parts are then refused
FEATURE = "last-layer hidden state (after the final norm) of the final prompt token"


# ---------------------------------------------------------------------------------------------------
# Prompts and letters


def use_chat(tokenizer, chat: bool) -> bool:
    return bool(chat and getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, row: dict, chat: bool, scoring: str = "letters") -> str:
    """The prompt text after which the options are scored (see the module docstring)."""
    listed = scoring == "letters"
    if use_chat(tokenizer, chat):
        messages = [{"role": "user", "content": format_question(row, listed)}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX
    return format_prompt(row, listed)


def _encode(tokenizer, texts, chat: bool, **kwargs):
    # A rendered chat template already holds its special tokens.
    return tokenizer(texts, add_special_tokens=not use_chat(tokenizer, chat), **kwargs)


def letter_token_ids(tokenizer, prompt: str, chat: bool = True) -> tuple[list[int], str]:
    """(ids of the letters A..E as the next token after ``prompt``, how they are spelled: " A" or "A")."""
    base = _encode(tokenizer, prompt, chat)["input_ids"]
    for sep in (" ", ""):
        ids = []
        for letter in LETTERS:
            full = _encode(tokenizer, prompt + sep + letter, chat)["input_ids"]
            if len(full) != len(base) + 1 or full[: len(base)] != base:
                break
            ids.append(full[-1])
        else:
            if len(set(ids)) == len(ids):
                return ids, sep + "A"
    raise UserError(
        f"the tokenizer spells none of the option letters {', '.join(LETTERS)} as one token after '{ANSWER_PREFIX}' "
        "(with or without a space): score this LM with scoring=cloze"
    )


# ---------------------------------------------------------------------------------------------------
# The forward pass


def forward_last(model, tokenizer, prompts: list[str], chat: bool, letter_ids: Optional[list[int]] = None,
                 options: Optional[list[list[str]]] = None):
    """(features (B, d), scores (B, K)) for one left-padded batch of prompts: the logits of the letters
    ``letter_ids``, or with ``options`` (K texts per prompt) their log-likelihoods (``option_loglik``)."""
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the final prompt token sits in the last column of every row
    try:
        enc = _encode(tokenizer, prompts, chat, return_tensors="pt", padding=True).to(model.device)
    finally:
        tokenizer.padding_side = side
    # Positions count real tokens only, as generate() does, so that a row's result ignores its padding.
    position_ids = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], position_ids=position_ids,
                    output_hidden_states=True, logits_to_keep=1, use_cache=options is not None)
        features = out.hidden_states[-1][:, -1].float().cpu()
        if options is None:
            return features, out.logits[:, -1, letter_ids].float().cpu()
        return features, option_loglik(model, tokenizer, out, enc["attention_mask"], options).cpu()


def option_loglik(model, tokenizer, prompt_out, prompt_mask, options: list[list[str]]):
    """sum_t log p(o_t | prompt, o_<t) of each option text o (spelled " " + option) after its prompt: (B, K).

    The prompts ran once (``prompt_out`` holds their cache and last-position logits); the cache is
    repeated K times and the options (right-padded) run on top of it.
    """
    import torch

    b, k = len(options), len(options[0])
    flat = [tokenizer(" " + o, add_special_tokens=False)["input_ids"] for opts in options for o in opts]
    t = max(map(len, flat))
    device = prompt_mask.device
    ids = torch.full((b * k, t), tokenizer.pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros((b * k, t), dtype=prompt_mask.dtype, device=device)
    for i, seq in enumerate(flat):
        ids[i, : len(seq)] = torch.tensor(seq, device=device)
        mask[i, : len(seq)] = 1
    index = torch.arange(b, device=device).repeat_interleave(k)
    cache = prompt_out.cache
    cache.batch_select_indices(index)
    p_mask = prompt_mask[index]
    pos = p_mask.sum(-1, keepdim=True) + torch.arange(t, device=device)[None]
    rest = model(input_ids=ids, attention_mask=torch.cat([p_mask, mask], dim=1), position_ids=pos, cache=cache,
                 use_cache=True).logits
    # Option token j is predicted by the prompt's last position (j = 0) or by option position j - 1.
    logp = torch.cat([prompt_out.logits[index, -1:], rest[:, :-1]], dim=1).float().log_softmax(-1)
    token_lp = logp.gather(-1, ids[..., None]).squeeze(-1) * mask
    return token_lp.sum(-1).view(b, k)


def mcq_chunk(model, tokenizer, rows: list[dict], batch_size: int, chat: bool, scoring: str,
              letter_ids: Optional[list[int]] = None):
    """(features, scores, labels, extra=None) for multiple-choice rows that all have K options."""
    import torch

    k = len(rows[0]["options"])
    feats, scores = [], []
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size]
        prompts = [render_prompt(tokenizer, r, chat, scoring) for r in batch]
        if scoring == "letters":
            f, s = forward_last(model, tokenizer, prompts, chat, letter_ids=letter_ids[:k])
        else:
            f, s = forward_last(model, tokenizer, prompts, chat, options=[r["options"] for r in batch])
        feats.append(f)
        scores.append(s)
    labels = torch.tensor([r["answer"] for r in rows], dtype=torch.int64)
    return torch.cat(feats), torch.cat(scores), labels, None


def scoring_meta(model, tokenizer, probe_row: dict, chat: bool, scoring: str) -> tuple[Optional[list[int]], dict]:
    """(letter ids or None, what the file's meta records about the prompt and the scores)."""
    choice("scoring", scoring, list(SCORINGS))
    k = len(probe_row["options"])
    meta = {"model": getattr(model, "name_or_path", ""), "k": k, "scoring": scoring,
            "chat_template": use_chat(tokenizer, chat), "answer_prefix": ANSWER_PREFIX, "feature": FEATURE,
            "prompt_version": PROMPT_VERSION}
    if scoring == "cloze":
        return None, {**meta, "logits": "sum of the log-probabilities of ' <option>' after the prompt"}
    ids, spelled = letter_token_ids(tokenizer, render_prompt(tokenizer, probe_row, chat, scoring), chat)
    return ids, {**meta, "logits": "next-token logits of the option letters", "letters": list(LETTERS[:k]),
                 "letter_spelling": spelled, "letter_token_ids": ids[:k]}


# ---------------------------------------------------------------------------------------------------
# Chunks, resume, merge


def _part_path(out_path: Path, index: int) -> Path:
    return out_path.parent / "parts" / f"{out_path.name[: -len(SUFFIX)]}.part-{index:05d}{SUFFIX}"


def check_run(path: Path, run: dict) -> None:
    """Refuse a part or final file that was written under other settings than ``run``."""
    old = load_task(path).meta.get("run") or {}
    if old != run:
        keys = sorted(k for k in set(old) | set(run) if old.get(k) != run.get(k))
        diff = "; ".join(f"{k}: {old.get(k)!r} there, {run.get(k)!r} now" for k in keys)
        raise UserError(f"{path} was written by a different extraction ({diff}); delete it or choose another "
                        "output folder")


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


# ---------------------------------------------------------------------------------------------------
# Every task file with one model


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
    from mmthink.methods.thermometer.freeform import extract_freeform
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
