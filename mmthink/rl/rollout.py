"""Rollouts: G sampled completions per prompt, batched through the KV cache, and their log-probs.

Decoding is ``mmthink.ops.latent.latent_generate``: plain text for any causal LM (``latent=None``),
or Mirage's latent decoding when ``latent`` token ids are given (latent steps are deterministic
hidden states, not samples, so they are left out of the policy gradient: ``mask`` is 0 there).

Layout of a rollout: prompts left-padded to P columns, completions right-padded to T columns, so
``completion[:, t]`` sits at column P + t of the full sequence for every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from mmthink.ops.latent import LatentTokens, latent_generate
from mmthink.models.tokenizer import left_padded


@dataclass
class Rollout:
    prompt_ids: Any  # (N, P) left-padded
    prompt_mask: Any  # (N, P)
    completion_ids: Any  # (N, T) right-padded with the pad id
    attention: Any  # (N, T) 1 on every generated position (text, latent, eos)
    mask: Any  # (N, T) float, 1 on the sampled tokens the policy gradient counts
    texts: list  # N decoded completions (special tokens kept, eos and padding dropped)
    prompt_index: Any  # (N,) index of each row's prompt in the step's prompt list
    latent_steps: Any  # (N,) latent vectors fed; None when decoding plain text
    extra: Optional[dict] = None  # per-row model inputs the log-prob pass needs (e.g. image features)
    ended: Optional[list] = None  # N bools: the row emitted eos or a stop string (False: cut at max_new_tokens)

    @property
    def lengths(self):
        return self.mask.sum(-1)


def _plain_model(model):
    """The ``*ForCausalLM`` under DDP/FSDP and peft wrappers (LoRA layers stay active inside it)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def stop_string_checker(tokenizer, stops: Sequence[str]) -> Optional[Callable]:
    """``should_stop`` for ``latent_generate``: a row stops once its decoded tail contains a stop string.

    Only the last few tokens are decoded each step (a token covers at least one character).
    """
    if not stops:
        return None
    import torch

    window = max(len(s) for s in stops) + 2

    def should_stop(tokens):
        tails = tokenizer.batch_decode(tokens[:, -window:], skip_special_tokens=False)
        return torch.tensor([any(s in t for s in stops) for t in tails], device=tokens.device)

    return should_stop


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Text up to and including the first stop string, and whether one was found."""
    cut = [text.find(s) + len(s) for s in stops if s in text]
    return (text[: min(cut)], True) if cut else (text, False)


def generate_rollouts(
    model,
    tokenizer,
    prompts: Sequence[str],
    group_size: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop: Sequence[str] = (),
    batch_size: int = 64,
    latent: Optional[LatentTokens] = None,
    latent_kwargs: Optional[dict] = None,
    generator=None,
    do_sample: bool = True,
    chunk_inputs: Optional[Callable[[list, Any], dict]] = None,
) -> Rollout:
    """``group_size`` completions of each prompt (chat-templated text), rows grouped by prompt.

    Generation runs in chunks of ``batch_size`` sequences (a multiple of ``group_size`` lets a group
    prefill its prompt once); a chunk stops when every row emitted an
    eos token or a stop string, or after ``max_new_tokens``. ``chunk_inputs(prompt_indices,
    input_ids)`` adds per-chunk prefill inputs (e.g. an image-text model's pixel values).
    """
    import torch

    plain = _plain_model(model)
    device = plain.device
    eos = [i for i in _eos_ids(plain, tokenizer) if i is not None]
    should_stop = stop_string_checker(tokenizer, stop)
    expanded = [p for p in prompts for _ in range(group_size)]
    with left_padded(tokenizer):
        enc = tokenizer(expanded, return_tensors="pt", padding=True, add_special_tokens=False)
    prompt_ids, prompt_mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    chunks, steps = [], []
    was_training = plain.training
    plain.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(expanded), batch_size):
                ids = prompt_ids[i : i + batch_size]
                extra = chunk_inputs([j // group_size for j in range(i, i + len(ids))], ids) if chunk_inputs else {}
                out = latent_generate(
                    plain, ids, prompt_mask[i : i + batch_size], latent, max_new_tokens,
                    eos, tokenizer.pad_token_id, do_sample=do_sample, temperature=temperature, top_p=top_p,
                    generator=generator, should_stop=should_stop, shared_prefix=group_size if not extra else 1,
                    **(latent_kwargs or {}), **extra,
                )
                chunks.append(out.sequences)
                steps.append(out.latent_steps)
    finally:
        plain.train(was_training)
    width = max(c.shape[1] for c in chunks)
    pad = tokenizer.pad_token_id
    completion = torch.cat([torch.nn.functional.pad(c, (0, width - c.shape[1]), value=pad) for c in chunks])
    attention, mask, texts, ended = _masks_and_texts(completion, eos, pad, tokenizer, latent, stop)
    index = torch.arange(len(prompts), device=device).repeat_interleave(group_size)
    return Rollout(prompt_ids, prompt_mask, completion, attention, mask, texts, index,
                   torch.cat(steps) if latent is not None else None, ended=ended)


def _eos_ids(model, tokenizer) -> list:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = ids if isinstance(ids, list) else [ids]
    return sorted({*ids, tokenizer.eos_token_id} - {None})


def _masks_and_texts(completion, eos, pad, tokenizer, latent, stops):
    """Which generated positions exist (``attention``), which are sampled tokens (``mask``), the texts,
    and which rows ended by themselves."""
    import torch

    n, t = completion.shape
    attention = torch.zeros(n, t, dtype=torch.long, device=completion.device)
    texts, ended = [], []
    for r in range(n):
        ids = completion[r].tolist()
        end, stopped = t, False
        for j, tok in enumerate(ids):
            if tok in eos:
                end, stopped = j + 1, True
                break
        # After a stop string the row emitted no more tokens, but padding may not follow exactly
        # (the stop fired on the step's token): cut at the last non-pad token.
        while end > 0 and ids[end - 1] == pad and pad not in eos:
            end -= 1
        attention[r, :end] = 1
        body = [x for x in ids[:end] if x not in eos]
        text = tokenizer.decode(body, skip_special_tokens=False)
        if stops:
            text, hit = truncate_at_stop(text, stops)
            stopped = stopped or hit
        texts.append(text)
        ended.append(stopped)
    mask = attention.float()
    if latent is not None:
        # Latent slots and the forced <|latent_end|> are not sampled.
        mask = mask * ~torch.isin(completion, torch.tensor([latent.pad, latent.end], device=completion.device))
    return attention, mask, texts, ended


def sequence_inputs(rollout: Rollout, rows=slice(None)):
    """input_ids, attention_mask and 1-D position ids of prompt + completion for ``rows``."""
    import torch

    ids = torch.cat([rollout.prompt_ids[rows], rollout.completion_ids[rows]], dim=1)
    att = torch.cat([rollout.prompt_mask[rows], rollout.attention[rows]], dim=1)
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    return ids, att, pos


def row_indices(rollout: Rollout, rows):
    """``rows`` (a slice or an index tensor) as a tensor of row indices."""
    import torch

    if isinstance(rows, slice):
        return torch.arange(rollout.completion_ids.shape[0], device=rollout.completion_ids.device)[rows]
    return rows


def completion_logits(model, rollout: Rollout, rows, temperature: float = 1.0):
    """Logits / T at the positions that predict each completion token of ``rows``: (n, T, V).

    Rows that share a prompt (a GRPO group) share its forward: each distinct prompt runs once, its KV
    cache is gathered out to its rows (differentiably, so the prompt's gradient sums over them), and
    the completions run on top. Otherwise prompt + completion run as one sequence. ``logits_to_keep``
    keeps the LM head to the completion positions either way.
    """
    import torch

    idx = row_indices(rollout, rows)
    t = rollout.completion_ids.shape[1]
    unique, inverse = torch.unique(rollout.prompt_index[idx], return_inverse=True)
    if len(unique) == len(idx):
        ids, att, pos = sequence_inputs(rollout, idx)
        logits = model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=False,
                       logits_to_keep=t + 1).logits[:, :-1]
    else:
        first = torch.zeros(len(unique), dtype=torch.long, device=idx.device).scatter_(0, inverse, idx)
        p_mask = rollout.prompt_mask[first]
        out = model(input_ids=rollout.prompt_ids[first], attention_mask=p_mask,
                    position_ids=(p_mask.cumsum(-1) - 1).clamp(min=0), use_cache=True, logits_to_keep=1)
        cache = out.cache
        cache.batch_select_indices(inverse)
        start = p_mask.sum(-1)[inverse, None]
        pos = start + torch.arange(t, device=idx.device)[None]
        att = torch.cat([rollout.prompt_mask[idx], rollout.attention[idx]], dim=1)
        rest = model(input_ids=rollout.completion_ids[idx], attention_mask=att, position_ids=pos, cache=cache,
                     use_cache=True, logits_to_keep=t).logits
        logits = torch.cat([out.logits[inverse], rest[:, :-1]], dim=1)
    logits = logits.float()
    return logits / temperature if temperature != 1.0 else logits


def micro_batches(n: int, size: int):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
