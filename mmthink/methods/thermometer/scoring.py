"""One forward pass per batch of prompts: Thermometer's feature vector and one score per option.

The scores (``scoring``):

- ``letters`` (the paper's): the next-token logits of the option letters after the prompt
  (``prompting.letter_token_ids``). A task with K options keeps the first K letters.
- ``cloze``: the prompt leaves out the option lines, and an option's score is the log-likelihood of
  its text after ``Answer:``, ``sum_t log p(o_t | prompt, o_<t)`` with ``o`` = the tokens of
  `` <option>``; the softmax over the K options is the model's choice distribution. LMs as small as
  SmolLM2-135M answer every letter question with one fixed letter (chance accuracy) but rank option
  texts well; the SmolLM authors evaluate their models in this "cloze formulation" too.

The feature. ``output_hidden_states=True`` and its last entry, at the final prompt token. In
transformers 5.x that entry is ``last_hidden_state``, i.e. *after* the final RMSNorm for
LlamaForCausalLM (``capture_outputs`` ties it; a test checks that ``lm_head(feature)`` reproduces the
logits), the same vector the authors' code took from LLaMA-2.
"""

from __future__ import annotations

from typing import Optional

from mmthink.config import choice
from mmthink.methods.thermometer.prompting import (
    PROMPT_VERSION,
    SCORINGS,
    encode,
    letter_token_ids,
    render_prompt,
    use_chat,
)
from mmthink.models.tokenizer import left_padded
from mmthink.tasks.mcq import ANSWER_PREFIX, LETTERS

FEATURE = "last-layer hidden state (after the final norm) of the final prompt token"


def forward_last(model, tokenizer, prompts: list[str], chat: bool, letter_ids: Optional[list[int]] = None,
                 options: Optional[list[list[str]]] = None):
    """(features (B, d), scores (B, K)) for one left-padded batch of prompts: the logits of the letters
    ``letter_ids``, or with ``options`` (K texts per prompt) their log-likelihoods (``option_loglik``)."""
    import torch

    with left_padded(tokenizer):  # the final prompt token sits in the last column of every row
        enc = encode(tokenizer, prompts, chat, return_tensors="pt", padding=True).to(model.device)
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
