"""The two supervised stages of Mirage as runner losses.

Both call the model's own forward (so DDP/FSDP wrappers see the call) with ``inputs_embeds`` and
explicit per-row M-RoPE ``position_ids``; the last entry of ``hidden_states`` is the final-norm
last-layer state h.
"""

from __future__ import annotations

from mmthink.methods.mirage.losses import latent_cosine_per_example, stage1_loss
from mmthink.ops.lm import target_counts, token_nll_sum
from mmthink.runner.loop import LossOutput


def _inner(model):
    # DDP/FSDP wrappers hide the model's helpers; the embedding lookup may bypass the wrapper because
    # the wrapped forward below still runs, so gradient sync sees the whole graph.
    return getattr(model, "module", model)


def embed_inputs(model, batch, image_token_id: int):
    """Token embeddings with each row's cached image features written over its <|image_pad|> tokens."""
    import torch

    emb = _inner(model).get_input_embeddings()(batch["input_ids"])
    feats = batch["image_feats"]
    valid = torch.arange(feats.shape[1], device=feats.device)[None] < batch["image_counts"][:, None]
    image_mask = (batch["input_ids"] == image_token_id)[..., None]
    return emb.masked_scatter(image_mask, feats[valid].to(emb.dtype))


def _forward(model, embeds, batch, cols, cache=None):
    """Forward columns ``cols`` (a slice) of the layout; returns (hidden, logits)."""
    out = model(
        inputs_embeds=embeds,
        attention_mask=batch["attention_mask"][:, : cols.stop],
        position_ids=batch["position_ids"][:, :, cols].transpose(0, 1),
        cache=cache,
        use_cache=cache is not None,
        output_hidden_states=True,
    )
    return out.hidden_states[-1], out.logits


def stage1(model, batch, k: int, gamma: float, image_token_id: int) -> LossOutput:
    """Teacher forcing: the K targets fill the latent slots; L = gamma * CE + (1 - mean cos(h_{p-1}, e_p))."""
    import torch

    emb = embed_inputs(model, batch, image_token_id)
    if k > 0:
        c = int(batch["latent_start_col"][0])
        targets = batch["targets"].to(emb.dtype)
        emb = torch.cat([emb[:, : c + 1], targets, emb[:, c + 1 + k :]], dim=1)
    hidden, logits = _forward(model, emb, batch, slice(0, emb.shape[1]))
    ce_sum, n = token_nll_sum(logits, batch["labels"])
    if k == 0:
        return LossOutput(ce_sum, n, {"ce": ce_sum.detach()})
    # h_{p-1} for slot p: the state at <|latent_start|> predicts slot 1, slot j predicts slot j+1.
    cos = latent_cosine_per_example(hidden[:, c : c + k], targets)
    # The runner divides by the step's target tokens: weighting each example's cosine term by its own
    # target tokens makes the step loss a sum over examples, so it does not depend on how the step is
    # cut into micro-batches or processes (gamma * token-mean CE + token-weighted mean of the cos terms).
    tokens = target_counts(batch["labels"]).to(cos.dtype)
    cos_sum = (cos * tokens).sum()
    loss_sum = stage1_loss(ce_sum, cos_sum, gamma)
    return LossOutput(loss_sum, n, {"ce": ce_sum.detach(), "cos_loss": cos_sum.detach()})


def stage2(model, batch, k: int, image_token_id: int) -> LossOutput:
    """Text-only supervision: slots filled by the model's own recurrence, gradients through it; CE only."""
    import torch
    from transformers import DynamicCache

    emb = embed_inputs(model, batch, image_token_id)
    if k == 0:
        hidden, logits = _forward(model, emb, batch, slice(0, emb.shape[1]))
        ce_sum, n = token_nll_sum(logits, batch["labels"])
        return LossOutput(ce_sum, n, {"ce": ce_sum.detach()})
    c = int(batch["latent_start_col"][0])
    cache = DynamicCache(config=_inner(model).config)
    h, lg = _forward(model, emb[:, : c + 1], batch, slice(0, c + 1), cache)
    logits = [lg]
    for j in range(k):
        col = c + 1 + j
        h, lg = _forward(model, h[:, -1:], batch, slice(col, col + 1), cache)
        logits.append(lg)
    _, lg = _forward(model, emb[:, c + 1 + k :], batch, slice(c + 1 + k, emb.shape[1]), cache)
    logits.append(lg)
    ce_sum, n = token_nll_sum(torch.cat(logits, dim=1), batch["labels"])
    return LossOutput(ce_sum, n, {"ce": ce_sum.detach()})
