"""Satori's round 2, stage ``distill``: the RL policy's correct solutions become the base model's SFT data.

The paper's second iteration (Satori-7B-Round2): after round 1 (format tuning, RL) the policy solves
the training problems again; the solutions that end on the right answer are fine-tuned into the base
model, which then trains by RL once more (stage ``rl2``). Only solutions that ended by themselves
are kept: one cut at ``max_new_tokens`` would teach the model to stop mid-thought.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmthink.errors import UserError
from mmthink.io import write_jsonl, write_text_atomic
from mmthink.methods.satori.coat import chat_row
from mmthink.methods.satori.evaluate import chat_prompt
from mmthink.rl.rollout import generate_rollouts
from mmthink.runner.tracking import Progress
from mmthink.tasks.grading import grade

# Problems decoded per block: bounds the completions held in memory and paces the progress line.
BLOCK = 256


def correct_solutions(rows: list[dict], texts: list[str], ended: list[bool], samples: int) -> list[dict]:
    """Chat rows of the distinct completions that ended and grade right; ``texts`` holds ``samples`` per row."""
    out = []
    for i, row in enumerate(rows):
        seen = set()
        for text, done in zip(texts[i * samples : (i + 1) * samples], ended[i * samples : (i + 1) * samples]):
            if done and text not in seen and grade(text, row["answer"]):
                seen.add(text)
                out.append(chat_row(row, text))
    return out


def sample_solutions(model, tokenizer, rows: list[dict], cfg, seed: int, accelerator, progress: str = "auto") -> list[dict]:
    """The policy's correct solutions to ``rows`` (``cfg``: the recipe's ``distill``); each process decodes
    its share of the problems and the shares are gathered."""
    import torch

    rank, world = accelerator.process_index, accelerator.num_processes
    mine = rows[rank::world]
    gen = torch.Generator(device=accelerator.device).manual_seed(seed * 1_000_003 + 104_729 + rank)
    bar = Progress(len(mine), mode=progress if accelerator.is_main_process else "none", desc="distill: sampling")
    kept: list[dict] = []
    for start in range(0, len(mine), BLOCK):
        block = mine[start : start + BLOCK]
        ro = generate_rollouts(model, tokenizer, [chat_prompt(tokenizer, r) for r in block], cfg.samples,
                               cfg.max_new_tokens, cfg.temperature, cfg.top_p, batch_size=cfg.batch_size, generator=gen)
        kept += correct_solutions(block, ro.texts, ro.ended, cfg.samples)
        bar.update(start + len(block), f"{len(kept)} correct")
    bar.close()
    if world > 1:
        from accelerate.utils import gather_object

        kept = gather_object(kept)
    return kept


def load_or_sample(folder: Path, settings: dict, sample) -> list[dict]:
    """``folder/solutions.jsonl`` when it was sampled under ``settings``, else ``sample()`` written there.

    A resumed distill stage so skips the decoding its first attempt finished.
    """
    data, meta = folder / "solutions.jsonl", folder / "solutions_settings.json"
    if data.is_file() and meta.is_file() and json.loads(meta.read_text()) == settings:
        return [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    rows = sample()
    if not rows:
        raise UserError("distill: the RL policy solved none of the problems it was given, so there is nothing to "
                        "distil; train round 1 longer, or raise distill.samples or distill.prompts")
    write_jsonl(rows, data)
    write_text_atomic(meta, json.dumps(settings, sort_keys=True))
    return rows
