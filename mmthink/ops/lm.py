"""Causal-LM numerics shared by every method: summed token NLL and batched greedy/sampled generation."""

from __future__ import annotations

from mmthink.models.tokenizer import left_padded

IGNORE = -100


def target_counts(labels):
    """Targets per row: labels[:, 1:] != -100 (a row's first label is never predicted)."""
    return (labels[:, 1:] != IGNORE).sum(dim=1)


def token_nll_sum(logits, labels):
    """sum_t -log p(y_t | y_<t) over targets (labels != -100), with logits[:, t] predicting labels[:, t+1].

    Returns (nll_sum, n_targets), in float32 whatever the model's dtype. The labels are shifted rather
    than the logits, which would copy a batch x length x vocabulary tensor (forward and backward).
    """
    import torch.nn.functional as F

    targets = F.pad(labels, (0, 1), value=IGNORE)[:, 1:]
    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return nll, (targets != IGNORE).sum()


def causal_lm_loss(model, batch):
    """Forward a tokenised batch and return (nll_sum, n_targets)."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    logits = model(**inputs, use_cache=False).logits
    return token_nll_sum(logits, batch["labels"])


def generate_chat(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int, batch_size: int = 16,
                  do_sample: bool = False, temperature: float = 1.0) -> list[str]:
    """Reply to each conversation (left-padded batches, KV cache); returns the decoded new text."""
    import torch

    outputs: list[str] = []
    with left_padded(tokenizer):
        for i in range(0, len(conversations), batch_size):
            texts = [
                tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                for c in conversations[i : i + batch_size]
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=do_sample,
                    temperature=temperature if do_sample else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
    return outputs


def exact_match(prediction: str, reference: str) -> bool:
    """Equal after stripping surrounding whitespace."""
    return prediction.strip() == reference.strip()
