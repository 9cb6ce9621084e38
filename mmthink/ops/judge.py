"""The model as its own judge: the probability it answers Yes to "is this answer correct?".

Read from the next-token logits after the question (no decoding), so a judgment is one forward pass and
deterministic: p = exp(l_Yes) / (exp(l_Yes) + exp(l_No)), the Yes/No choice renormalised.
"""

from __future__ import annotations

from typing import Sequence

QUESTION = "Is this answer correct? Reply with Yes or No."


def judge_prompt(task: str, answer: str, question: str = QUESTION) -> str:
    return f"{task}\n\nProposed answer:\n{answer.strip()}\n\n{question}"


def yes_no_ids(tokenizer) -> tuple[int, int]:
    """The first tokens of "Yes" and "No" (what a reply starts with); they must differ."""
    yes, no = tokenizer("Yes", add_special_tokens=False)["input_ids"], tokenizer("No", add_special_tokens=False)["input_ids"]
    if not yes or not no or yes[0] == no[0]:
        raise ValueError("the tokenizer does not tell 'Yes' from 'No' by their first token")
    return yes[0], no[0]


def yes_probability(l_yes, l_no):
    # p = exp(l_Yes) / (exp(l_Yes) + exp(l_No)) = sigmoid(l_Yes - l_No)
    import torch

    return torch.sigmoid(l_yes.float() - l_no.float())


def judge(model, tokenizer, prompts: Sequence[str], chat: bool = True, batch_size: int = 8) -> list[float]:
    """P(Yes) for each judging prompt (a user message; the chat template applied where the model has one)."""
    import torch

    from mmthink.models.tokenizer import left_padded

    yes, no = yes_no_ids(tokenizer)
    chat = chat and getattr(tokenizer, "chat_template", None) is not None
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             if chat else p for p in prompts]
    device = model.get_input_embeddings().weight.device
    out: list[float] = []
    with left_padded(tokenizer), torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=not chat).to(device)
            # positions count real tokens only, so a left-padded row reads as it would alone
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            logits = model(**enc, position_ids=positions, use_cache=False).logits[:, -1]
            out += yes_probability(logits[:, yes], logits[:, no]).tolist()
    return out
