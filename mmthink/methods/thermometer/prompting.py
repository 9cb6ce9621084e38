"""The prompts Thermometer scores, and how the option letters are spelled as tokens.

With a chat template (``chat=True`` and the tokenizer has one) the user message is
``format_question(row)`` and the assistant turn is opened with ``Answer:``; without one the prompt is
``format_prompt(row)``, the same text followed by a line ``Answer:``::

    <|im_start|>user
    Question: What is 7 + 5?
    A. 11
    B. 12
    <|im_end|>
    <|im_start|>assistant
    Answer:

``letter_token_ids`` asks the tokenizer how each of ``A``..``E`` is spelled as one token right after
``Answer:``: `` A`` (space-prefixed; SmolLM2 and most BPE vocabularies) when every letter is one token
that way, else ``A`` (the tiny presets' byte-level vocabulary splits `` A`` in two). With cloze
scoring the option lines are left out (``scoring`` describes both).
"""

from __future__ import annotations

from mmthink.errors import UserError
from mmthink.tasks.mcq import ANSWER_PREFIX, LETTERS, format_prompt, format_question

SCORINGS = ("letters", "cloze")
PROMPT_VERSION = "question-answer-prefix/1"  # bump when the prompt text changes: old parts are then refused


def use_chat(tokenizer, chat: bool) -> bool:
    return bool(chat and getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, row: dict, chat: bool, scoring: str = "letters") -> str:
    """The prompt text after which the options are scored (see the module docstring)."""
    listed = scoring == "letters"
    if use_chat(tokenizer, chat):
        messages = [{"role": "user", "content": format_question(row, listed)}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX
    return format_prompt(row, listed)


def encode(tokenizer, texts, chat: bool, **kwargs):
    # A rendered chat template already holds its special tokens.
    return tokenizer(texts, add_special_tokens=not use_chat(tokenizer, chat), **kwargs)


def letter_token_ids(tokenizer, prompt: str, chat: bool = True) -> tuple[list[int], str]:
    """(ids of the letters A..E as the next token after ``prompt``, how they are spelled: " A" or "A")."""
    base = encode(tokenizer, prompt, chat)["input_ids"]
    for sep in (" ", ""):
        ids = []
        for letter in LETTERS:
            full = encode(tokenizer, prompt + sep + letter, chat)["input_ids"]
            if len(full) != len(base) + 1 or full[: len(base)] != base:
                break
            ids.append(full[-1])
        else:
            if len(set(ids)) == len(ids):
                return ids, sep + "A"
    raise UserError(
        f"the tokenizer spells none of the option letters {', '.join(LETTERS)} as one token after '{ANSWER_PREFIX}' "
        "(with or without a space): score this LM with scoring=cloze"
    )


def answer_prompt(tokenizer, question: str, chat: bool) -> str:
    """The prompt the free-form answer continues: ``Question: ...`` then ``Answer:``."""
    if use_chat(tokenizer, chat):
        messages = [{"role": "user", "content": f"Question: {question}"}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX
    return f"Question: {question}\n{ANSWER_PREFIX}"
