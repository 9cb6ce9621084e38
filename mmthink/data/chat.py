"""Chat-format examples: validation, tokenisation with prompt masking, packing and collation.

Rows are ``{"messages": [{"role", "content"}, ...]}`` or ``{"prompt", "completion"}``. Only the
assistant turns are targets: every other token gets the label -100. The targets are found by
rendering the chat template up to each assistant turn and mapping character spans to tokens, which
works for any template that renders a conversation's prefix as a prefix of the whole.
"""

from __future__ import annotations

from typing import Optional

from mmthink.data.rows import BadRow, need
from mmthink.errors import UserError
from mmthink.ops.lm import IGNORE
ROLES = ("system", "user", "assistant", "tool")


def validate_chat_row(row: dict) -> None:
    if isinstance(row, dict) and "messages" in row:
        msgs = need(row, "messages", list, nonempty=True)
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                raise BadRow(f"messages[{i}]", "expected an object with role and content")
            if m.get("role") not in ROLES:
                raise BadRow(f"messages[{i}].role", f"expected one of {', '.join(ROLES)}, got {m.get('role')!r}")
            if not isinstance(m.get("content"), str):
                raise BadRow(f"messages[{i}].content", "expected a string")
        if not any(m["role"] == "assistant" for m in msgs):
            raise BadRow("messages", "no assistant turn to learn from")
        return
    if isinstance(row, dict) and "prompt" in row:
        need(row, "prompt", str)
        need(row, "completion", str, nonempty=True)
        return
    raise BadRow("messages", "missing (a row needs 'messages', or 'prompt' and 'completion')")


def to_messages(row: dict) -> list[dict]:
    if "messages" in row and row["messages"] is not None:
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]


def prompt_and_reference(row: dict) -> tuple[list[dict], str]:
    """The conversation before the last assistant turn, and that turn's text (for exact-match eval)."""
    msgs = to_messages(row)
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    return msgs[:last], msgs[last]["content"]


def _render(tokenizer, messages, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def tokenize_chat(tokenizer, messages: list[dict], max_length: int) -> Optional[dict]:
    """input_ids and labels (assistant tokens only), cut at ``max_length``; None if no target survives."""
    text = _render(tokenizer, messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], True)
        upto = _render(tokenizer, messages[: i + 1], False)
        if not (upto.startswith(before) and text.startswith(upto)):
            raise UserError("the tokenizer's chat template does not render a conversation prefix as a prefix; "
                            "prompt masking needs one that does")
        spans.append((len(before), len(upto)))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"][:max_length], enc["offset_mapping"][:max_length]
    labels = [
        tok if any(lo <= start < hi for lo, hi in spans) else IGNORE for tok, (start, _) in zip(ids, offsets)
    ]
    if all(lab == IGNORE for lab in labels[1:]):
        return None
    return {"input_ids": ids, "labels": labels}


def pack(examples: list[dict], max_length: int) -> list[dict]:
    """Greedily concatenate examples into rows of at most ``max_length`` tokens.

    position_ids restart at each example. Attention is kept inside each example only with
    ``flash_attention_2`` (which reads the restarts); with sdpa/eager, a packed example also sees the
    examples before it in its row, as in other libraries' plain packing.
    """
    rows, cur = [], {"input_ids": [], "labels": [], "position_ids": []}
    for ex in examples:
        n = len(ex["input_ids"])
        if cur["input_ids"] and len(cur["input_ids"]) + n > max_length:
            rows.append(cur)
            cur = {"input_ids": [], "labels": [], "position_ids": []}
        cur["input_ids"] += ex["input_ids"]
        # The first token of an example is never predicted from the previous example's last token.
        cur["labels"] += [IGNORE] + ex["labels"][1:]
        cur["position_ids"] += list(range(n))
    if cur["input_ids"]:
        rows.append(cur)
    return rows


def collate_right(batch: list[dict], pad_id: int) -> dict:
    """Right-pad a list of tokenised examples into tensors (labels padded with -100)."""
    import torch

    width = max(len(ex["input_ids"]) for ex in batch)
    out = {
        "input_ids": torch.full((len(batch), width), pad_id, dtype=torch.long),
        "labels": torch.full((len(batch), width), IGNORE, dtype=torch.long),
        "attention_mask": torch.zeros((len(batch), width), dtype=torch.long),
    }
    if "position_ids" in batch[0]:
        out["position_ids"] = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ex in enumerate(batch):
        n = len(ex["input_ids"])
        out["input_ids"][i, :n] = torch.tensor(ex["input_ids"])
        out["labels"][i, :n] = torch.tensor(ex["labels"])
        out["attention_mask"][i, :n] = 1
        if "position_ids" in out:
            out["position_ids"][i, :n] = torch.tensor(ex["position_ids"])
    return out
