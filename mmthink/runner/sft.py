"""Supervised chat fine-tuning as a runner task: the building block of every supervised stage.

``mmthink train sft`` is this task on a user's rows; methods with a supervised stage (Satori's
format tuning, Mirage's text baseline) build the same task on their own generated rows.
"""

from __future__ import annotations

from typing import Optional

from mmthink.data.chat import collate_right, pack, prompt_and_reference, to_messages, tokenize_chat
from mmthink.errors import UserError
from mmthink.ops.lm import causal_lm_loss, exact_match, generate_chat
from mmthink.runner.loop import LossOutput, Task, perplexity


def tokenize_rows(rows, tokenizer, max_length: int, packing: bool) -> list[dict]:
    examples = [tokenize_chat(tokenizer, to_messages(r), max_length) for r in rows]
    kept = [e for e in examples if e is not None]
    if not kept:
        raise UserError(f"no training example keeps a target token within data.max_length={max_length}")
    return pack(kept, max_length) if packing else kept


def sft_loss(model, batch) -> LossOutput:
    nll, n = causal_lm_loss(model, batch)
    return LossOutput(nll, n)


def sft_task(examples: list[dict], tokenizer, evaluate=None, name: str = "sft") -> Task:
    return Task(train_data=examples, collate=lambda b: collate_right(b, tokenizer.pad_token_id), loss=sft_loss,
                evaluate=evaluate, name=name)


def evaluate_rows(model, tokenizer, rows, max_length: int, batch_size: int, max_new_tokens: int,
                  limit: Optional[int], accelerator=None) -> dict:
    """Token loss over every row and exact match of greedy replies on the first ``limit`` rows.

    Under several processes each scores its own share and the sums are reduced.
    """
    import torch

    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    unwrapped = accelerator.unwrap_model(model) if accelerator else model
    examples = tokenize_rows(rows, tokenizer, max_length, packing=False)[rank::world]
    nll = torch.zeros((), dtype=torch.float64, device=unwrapped.device)
    count = torch.zeros((), dtype=torch.float64, device=unwrapped.device)
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = collate_right(examples[i : i + batch_size], tokenizer.pad_token_id)
            batch = {k: v.to(unwrapped.device) for k, v in batch.items()}
            s, n = causal_lm_loss(unwrapped, batch)
            nll += s.double()
            count += n.double()
    limit = len(rows) if limit is None else min(limit, len(rows))
    scored = [prompt_and_reference(rows[i]) for i in range(limit)][rank::world]
    replies = generate_chat(unwrapped, tokenizer, [p for p, _ in scored], max_new_tokens, batch_size)
    hits = torch.tensor(float(sum(exact_match(r, ref) for r, (_, ref) in zip(replies, scored))), device=count.device)
    totals = torch.stack([nll, count, hits, torch.tensor(float(len(scored)), device=count.device).double()])
    if accelerator is not None:
        totals = accelerator.reduce(totals, reduction="sum")
    nll, count, hits, n_scored = totals.tolist()
    loss = nll / max(count, 1.0)
    return {"loss": loss, "ppl": perplexity(loss), "exact_match": hits / max(n_scored, 1.0), "n": int(n_scored)}
