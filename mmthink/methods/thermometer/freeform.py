"""Free-form QA for Thermometer (the paper's MRQA protocol, at toy scale).

Rows are ``{"task", "question", "answer": str}``. For each question:

1. the LM answers greedily in at most 10 new tokens (prompt ``Question: ...`` then ``Answer:``, the
   same layout as the multiple-choice prompts; the reply is cut at its first line break);
2. the answer counts as correct when ROUGE-L F > 0 against the reference (``rouge_l``);
3. the question becomes a two-option task::

       Question: <question>
       Proposed answer: <answer>. Is the above answer correct?
       A. Yes
       B. No
       Answer:

   whose option scores and feature are stored exactly as for multiple-choice rows (letter logits, or
   with ``scoring=cloze`` the log-likelihoods of " Yes" and " No" after the prompt without the option
   lines), with label 0 (Yes) when the answer was correct and 1 (No) otherwise; Thermometer then
   calibrates P(Yes).

The generated answers are kept beside the features as ``<task>.answers.jsonl``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from mmthink.errors import UserError
from mmthink.methods.thermometer.features import (
    ANSWER_PREFIX,
    SUFFIX,
    _encode,
    mcq_chunk,
    run_chunks,
    scoring_meta,
    use_chat,
)

MAX_NEW_TOKENS = 10
YES_NO = ["Yes", "No"]


def _tokens(text: str) -> list[str]:
    # rouge_score's tokenizer: lowercase, runs of [a-z0-9] are the words.
    return re.findall(r"[a-z0-9]+", text.lower())


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence of two sequences (dynamic programming, O(len a * len b))."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 over lowercased word tokens: F = 2PR/(P+R), P = LCS/|pred|, R = LCS/|ref|."""
    p, r = _tokens(prediction), _tokens(reference)
    lcs = lcs_length(p, r) if p and r else 0
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def answer_prompt(tokenizer, question: str, chat: bool) -> str:
    """The prompt the free-form answer continues: ``Question: ...`` then ``Answer:``."""
    if use_chat(tokenizer, chat):
        messages = [{"role": "user", "content": f"Question: {question}"}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX
    return f"Question: {question}\n{ANSWER_PREFIX}"


def greedy_answers(model, tokenizer, questions: list[str], chat: bool, batch_size: int = 16,
                   max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Greedy replies (left-padded batches), each cut at its first line break and stripped."""
    import torch

    out: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for i in range(0, len(questions), batch_size):
            prompts = [answer_prompt(tokenizer, q, chat) for q in questions[i : i + batch_size]]
            enc = _encode(tokenizer, prompts, chat, return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                     top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out += [t.strip().split("\n")[0].strip() for t in texts]
    finally:
        tokenizer.padding_side = side
    return out


def yes_no_row(row: dict, prediction: str, correct: bool) -> dict:
    """The two-option row asking whether ``prediction`` answers ``row``; label 0 = Yes (it was correct)."""
    question = f"{row['question']}\nProposed answer: {prediction}. Is the above answer correct?"
    return {"task": row["task"], "question": question, "options": list(YES_NO), "answer": 0 if correct else 1}


def freeform_chunk(model, tokenizer, rows: list[dict], batch_size: int, chat: bool, scoring: str,
                   letter_ids: Optional[list[int]]):
    predictions = greedy_answers(model, tokenizer, [r["question"] for r in rows], chat, batch_size)
    scores = [rouge_l(p, r["answer"]) for p, r in zip(predictions, rows)]
    yes_no = [yes_no_row(r, p, s > 0) for r, p, s in zip(rows, predictions, scores)]
    features, logits, labels, _ = mcq_chunk(model, tokenizer, yes_no, batch_size, chat, scoring, letter_ids)
    extra = [{"question": r["question"], "reference": r["answer"], "prediction": p, "rouge_l": round(s, 4),
              "correct": s > 0} for r, p, s in zip(rows, predictions, scores)]
    return features, logits, labels, extra


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
