"""Batched decoding with latent tokens (Mirage's "machine mental imagery"), on stock transformers.

A row decodes text until it emits ``<|latent_start|>``. From then on, each step feeds the row's own
previous last-layer (final-norm) hidden state as the next input embedding, recording
``<|latent_pad|>`` in the token ids, until the model's prediction at a latent position is
``<|latent_end|>`` or ``max_latent`` vectors were fed; ``<|latent_end|>`` is then emitted and text
decoding resumes. ``max_new_tokens`` counts text tokens (``<|latent_start|>`` included); a block's
``<|latent_pad|>`` steps and its ``<|latent_end|>`` are bounded by ``max_latent`` instead, so a latent
block never eats the answer's budget. Who decides to close a block: the argmax of the latent step's
logits (``latent_stop="argmax"``), or the sampled token (``"sampled"``, the official rule). Rows enter and leave latent mode independently: every step is ONE forward of the
whole batch through the KV cache, with input embeddings mixed per row (token embedding or hidden
state). Position ids are passed explicitly per row (1-D for text LMs, Qwen-VL's 3-D M-RoPE ids for
image-text models), so cached steps continue exactly where a full forward would put them.

The official implementation keeps latent mode as one global flag and so decodes one row at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

LATENT_MODES = ("model", "zeros", "noise", "target")
LATENT_STOPS = ("argmax", "sampled")


@dataclass(frozen=True)
class LatentTokens:
    start: int
    pad: int
    end: int

    @classmethod
    def from_tokenizer(cls, tokenizer, names=("<|latent_start|>", "<|latent_pad|>", "<|latent_end|>")):
        ids = [tokenizer.convert_tokens_to_ids(n) for n in names]
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise ValueError(f"the tokenizer lacks the latent tokens {names}; add them as special tokens first")
        return cls(*ids)


# Ids no tokenizer produces: decoding with these never enters latent mode.
NO_LATENT = LatentTokens(-1, -1, -1)


@dataclass
class LatentOutput:
    sequences: "object"  # (B, T) generated ids: text tokens, latent_start / latent_pad / latent_end
    latent_steps: "object"  # (B,) latent vectors fed per row
    inputs_embeds: "object" = None  # (B, T-1, H) what was fed after the prompt (with return_inputs)


def prefill_positions(model, input_ids, attention_mask, image_grid_thw=None, mm_token_type_ids=None):
    """Position ids of a left-padded prompt and each row's next position.

    Text LMs: p_t = (number of real tokens before t). Qwen-VL with images: the model's own 3-D M-RoPE
    ids (image tokens share compressed positions), shape (3, B, L); the next position is max + 1.
    """
    base = model.model
    if image_grid_thw is not None and hasattr(base, "get_rope_index"):
        pos, _ = base.get_rope_index(input_ids, mm_token_type_ids=mm_token_type_ids,
                                     image_grid_thw=image_grid_thw, attention_mask=attention_mask)
        pos = pos.masked_fill(attention_mask[None] == 0, 0)
        return pos, pos.amax(dim=(0, 2)) + 1
    pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    if _uses_mrope(model):
        return pos[None].expand(3, -1, -1), pos[:, -1] + 1
    return pos, pos[:, -1] + 1


def _uses_mrope(model) -> bool:
    return hasattr(model.model, "get_rope_index")


def _step_positions(model, next_pos):
    pos = next_pos[:, None]
    return pos[None].expand(3, -1, -1) if _uses_mrope(model) else pos


def sample_next(logits, do_sample: bool, temperature: float, top_p: float, generator=None):
    """Greedy argmax, or a sample from softmax(logits / T) restricted to the smallest top-p nucleus."""
    import torch

    if not do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        # keep a token while the mass before it is < top_p (the top token is always kept)
        keep = (sorted_p.cumsum(-1) - sorted_p) < top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    # Inverse-CDF sampling, one uniform per row: the same distribution as torch.multinomial, at a
    # fraction of its cost on 50k-token vocabularies. right=True never picks a zero-probability token.
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp(max=probs.shape[-1] - 1).squeeze(-1)


def _latent_input(mode: str, hidden, targets, count, generator):
    """What a latent slot receives: the model's hidden state, or an ablation replacing it."""
    import torch

    if mode == "model":
        return hidden
    if mode == "zeros":
        return torch.zeros_like(hidden)
    if mode == "noise":
        # Gaussian noise with each row's hidden-state norm, so only the direction carries no signal.
        noise = torch.randn(hidden.shape, generator=generator, device=hidden.device, dtype=hidden.dtype)
        return noise / noise.norm(dim=-1, keepdim=True) * hidden.norm(dim=-1, keepdim=True)
    if mode == "target":
        k = targets.shape[1]
        return targets[torch.arange(hidden.shape[0], device=hidden.device), count.clamp(max=k - 1)].to(hidden.dtype)
    raise ValueError(f"unknown latent mode {mode!r}; expected one of {LATENT_MODES}")


def latent_generate(
    model,
    input_ids,
    attention_mask,
    latent: Optional[LatentTokens],
    max_new_tokens: int,
    eos_token_ids,
    pad_token_id: int,
    max_latent: int = 8,
    min_latent: int = 0,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    latent_mode: str = "model",
    latent_stop: str = "argmax",
    latent_targets=None,
    generator=None,
    return_inputs: bool = False,
    should_stop=None,
    shared_prefix: int = 1,
    **vision_inputs,
) -> LatentOutput:
    """Decode a left-padded batch with latent tokens; see the module docstring.

    ``vision_inputs`` (pixel_values, image_grid_thw, mm_token_type_ids) go to the prefill only.
    ``latent_targets`` (B, K, H) feed the ground-truth pooled image embeddings in ``target`` mode.
    A prompt that ends with ``<|latent_start|>`` starts in latent mode. A prediction of
    ``<|latent_end|>`` is honoured once ``min_latent`` vectors of the block were fed.
    With ``latent_stop="sampled"`` the sampled token closes the block (argmax when not sampling).
    ``latent=None`` decodes plain text (any causal LM). ``should_stop(tokens)`` (tokens: (B, t) ids
    so far) returns a (B,) bool of rows to finish after their last token (e.g. on a stop string).
    ``shared_prefix=G`` says rows come in runs of G identical prompts (a GRPO group): each prompt is
    prefilled once and its cache repeated G times (text-only inputs).
    """
    import torch
    from transformers import DynamicCache

    if latent_mode not in LATENT_MODES:
        raise ValueError(f"unknown latent mode {latent_mode!r}; expected one of {LATENT_MODES}")
    if latent_stop not in LATENT_STOPS:
        raise ValueError(f"unknown latent stop rule {latent_stop!r}; expected one of {LATENT_STOPS}")
    if latent_mode == "target" and latent_targets is None:
        raise ValueError("latent_mode='target' needs latent_targets")
    latent = latent or NO_LATENT
    device, batch = input_ids.device, input_ids.shape[0]
    eos = torch.tensor(sorted(set(eos_token_ids)), device=device)
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    cache = DynamicCache(config=model.config)

    g = shared_prefix if shared_prefix > 1 and not vision_inputs and batch % shared_prefix == 0 else 1
    pos, next_pos = prefill_positions(model, input_ids[::g], attention_mask[::g], vision_inputs.get("image_grid_thw"),
                                      vision_inputs.get("mm_token_type_ids"))
    out = model.model(input_ids=input_ids[::g], attention_mask=attention_mask[::g], position_ids=pos, cache=cache,
                      use_cache=True, **vision_inputs)
    hidden = out.last_hidden_state[:, -1]
    if g > 1:
        cache.batch_repeat_interleave(g)
        hidden, next_pos = hidden.repeat_interleave(g, dim=0), next_pos.repeat_interleave(g, dim=0)

    in_latent = input_ids[:, -1] == latent.start  # the last input opened (or continues) a latent block
    n_latent = torch.zeros(batch, dtype=torch.long, device=device)  # vectors fed, all blocks
    in_block = torch.zeros(batch, dtype=torch.long, device=device)  # vectors fed in the open block
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    n_text = torch.zeros(batch, dtype=torch.long, device=device)
    mask = attention_mask
    tokens, fed = [], []
    # Each text token opens at most one block of at most max_latent + 1 steps.
    for _ in range(max_new_tokens * (max_latent + 2) if latent is not NO_LATENT else max_new_tokens):
        logits = head(hidden)
        chosen = sample_next(logits, do_sample, temperature, top_p, generator)
        # In latent mode the model only decides whether to close the block.
        decides = chosen if latent_stop == "sampled" else logits.argmax(-1)
        wants_end = ((decides == latent.end) & (in_block >= min_latent)) | (in_block >= max_latent)
        close = in_latent & wants_end
        stay = in_latent & ~wants_end
        token = torch.where(stay, torch.full_like(chosen, latent.pad), chosen)
        token = torch.where(close, torch.full_like(chosen, latent.end), token)
        token = torch.where(done, torch.full_like(chosen, pad_token_id), token)
        tokens.append(token)

        n_latent = n_latent + stay.long()
        n_text = n_text + (~in_latent & ~done).long()
        done = done | (~in_latent & torch.isin(token, eos)) | (n_text >= max_new_tokens)
        if should_stop is not None:
            done = done | (~in_latent & should_stop(torch.stack(tokens, dim=1)))
        opening = ~in_latent & ~done & (token == latent.start)
        in_block = torch.where(opening, 0, in_block + stay.long())
        in_latent = stay | opening
        if done.all():
            break

        vec = _latent_input(latent_mode, hidden, latent_targets, in_block - 1, generator)
        inputs = torch.where(stay[:, None], vec, embed(token)).unsqueeze(1)
        if return_inputs:
            fed.append(inputs)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model.model(inputs_embeds=inputs, attention_mask=mask, position_ids=_step_positions(model, next_pos),
                          cache=cache, use_cache=True)
        next_pos = next_pos + 1
        hidden = out.last_hidden_state[:, -1]
    return LatentOutput(torch.stack(tokens, dim=1), n_latent, torch.cat(fed, dim=1) if fed else None)
