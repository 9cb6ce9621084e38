"""``mmthink train sft`` and ``mmthink eval sft``: chat-format SFT of a causal LM.

Flow: check the recipe → read and validate the rows → load the model → tokenise (prompt tokens
masked, optional packing) → ``runner.fit`` → save ``model/``. Later methods reuse ``train`` for their
supervised stages. Raises ``UserError`` for a bad recipe, data file, row or model, before any file of
the run is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from mmthink.config import to_yaml
from mmthink.data.chat import collate_right, pack, prompt_and_reference, to_messages, tokenize_chat, validate_chat_row
from mmthink.data.rows import load_rows
from mmthink.errors import UserError
from mmthink.methods.sft.config import SFTRecipe
from mmthink.models.loading import load_model
from mmthink.ops.lm import causal_lm_loss, exact_match, generate_chat
from mmthink.runner import world_size
from mmthink.runner.checkpoint import save_final
from mmthink.runner.loop import LossOutput, Task, fit, make_accelerator, perplexity
from mmthink.runner.tracking import write_text_atomic


def tokenize_rows(rows, tokenizer, max_length: int, packing: bool) -> list[dict]:
    examples = [tokenize_chat(tokenizer, to_messages(r), max_length) for r in rows]
    kept = [e for e in examples if e is not None]
    if not kept:
        raise UserError(f"no training example keeps a target token within data.max_length={max_length}")
    return pack(kept, max_length) if packing else kept


def sft_loss(model, batch) -> LossOutput:
    nll, n = causal_lm_loss(model, batch)
    return LossOutput(nll, n)


def evaluate_rows(model, tokenizer, rows, cfg: SFTRecipe, accelerator=None) -> dict:
    """Token loss over every row and exact match of greedy replies on the first ``eval.limit`` rows.

    Under several processes each scores its own share and the sums are reduced.
    """
    import torch

    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    unwrapped = accelerator.unwrap_model(model) if accelerator else model
    examples = tokenize_rows(rows, tokenizer, cfg.data.max_length, packing=False)[rank::world]
    nll = torch.zeros((), dtype=torch.float64, device=unwrapped.device)
    count = torch.zeros((), dtype=torch.float64, device=unwrapped.device)
    with torch.no_grad():
        for i in range(0, len(examples), cfg.eval.batch_size):
            batch = collate_right(examples[i : i + cfg.eval.batch_size], tokenizer.pad_token_id)
            batch = {k: v.to(unwrapped.device) for k, v in batch.items()}
            s, n = causal_lm_loss(unwrapped, batch)
            nll += s.double()
            count += n.double()
    limit = len(rows) if cfg.eval.limit is None else min(cfg.eval.limit, len(rows))
    scored = [prompt_and_reference(rows[i]) for i in range(limit)][rank::world]
    replies = generate_chat(unwrapped, tokenizer, [p for p, _ in scored], cfg.eval.max_new_tokens, cfg.eval.batch_size)
    hits = torch.tensor(float(sum(exact_match(r, ref) for r, (_, ref) in zip(replies, scored))), device=count.device)
    totals = torch.stack([nll, count, hits, torch.tensor(float(len(scored)), device=count.device).double()])
    if accelerator is not None:
        totals = accelerator.reduce(totals, reduction="sum")
    nll, count, hits, n_scored = totals.tolist()
    loss = nll / max(count, 1.0)
    return {"loss": loss, "ppl": perplexity(loss), "exact_match": hits / max(n_scored, 1.0), "n": int(n_scored)}


def train(cfg: SFTRecipe, command: Sequence[str] = ()) -> dict:
    world = world_size()
    cfg.check(world)
    train_rows = load_rows(cfg.data.train_file, validate_chat_row, cfg.data.limit)
    eval_rows = load_rows(cfg.data.eval_file, validate_chat_row) if cfg.data.eval_file else None
    # The accelerator comes first so that DeepSpeed ZeRO-3 can shard the weights while they load.
    accelerator = make_accelerator(cfg.runner)
    loaded = load_model(cfg.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    examples = tokenize_rows(train_rows, tokenizer, cfg.data.max_length, cfg.data.packing)
    output_dir = Path(cfg.output_dir)
    task = Task(
        train_data=examples,
        collate=lambda b: collate_right(b, tokenizer.pad_token_id),
        loss=sft_loss,
        evaluate=(lambda m, acc: evaluate_rows(m, tokenizer, eval_rows, cfg, acc)) if eval_rows is not None else None,
        name="sft",
    )
    metrics = fit(model, tokenizer, task, cfg.optim, cfg.runner, cfg.logging, output_dir, cfg.seed, accelerator,
                  config_yaml=to_yaml(cfg), command=command)
    save_final(accelerator, model, tokenizer, output_dir)
    return metrics


def evaluate(cfg: SFTRecipe, checkpoint: str, data: str, out: Optional[str] = None) -> dict:
    """Score ``checkpoint`` on the rows of ``data``; writes ``eval.json`` next to the checkpoint (or to ``out``)."""
    cfg.model.name = checkpoint  # a model folder, a LoRA adapter folder, a preset or a hub id
    cfg.model.lora.enabled = False
    cfg.model.check()
    rows = load_rows(data, validate_chat_row)
    loaded = load_model(cfg.model, train=False)
    loaded.model.eval()
    metrics = evaluate_rows(loaded.model, loaded.tokenizer, rows, cfg)
    out_dir = Path(out) if out else (Path(checkpoint) if Path(checkpoint).is_dir() else Path(cfg.output_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "eval.json", json.dumps({"data": str(data), "checkpoint": checkpoint, **metrics}, indent=2))
    return metrics
