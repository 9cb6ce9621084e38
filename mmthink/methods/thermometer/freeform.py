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

from typing import Optional

from mmthink.methods.thermometer.prompting import answer_prompt, encode
from mmthink.methods.thermometer.scoring import mcq_chunk
from mmthink.models.tokenizer import left_padded
from mmthink.tasks.grading import rouge_l

MAX_NEW_TOKENS = 10
YES_NO = ["Yes", "No"]


def greedy_answers(model, tokenizer, questions: list[str], chat: bool, batch_size: int = 16,
                   max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Greedy replies (left-padded batches), each cut at its first line break and stripped."""
    import torch

    out: list[str] = []
    with left_padded(tokenizer):
        for i in range(0, len(questions), batch_size):
            prompts = [answer_prompt(tokenizer, q, chat) for q in questions[i : i + batch_size]]
            enc = encode(tokenizer, prompts, chat, return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                     top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out += [t.strip().split("\n")[0].strip() for t in texts]
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
