"""Prompt masking, packing and collation of chat examples."""

import pytest

from mmthink.data.chat import IGNORE, collate_right, pack, prompt_and_reference, to_messages, tokenize_chat
from mmthink.models.tokenizer import load_tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tiny_tokenizer()


def test_only_assistant_tokens_are_targets(tok):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "5"}, {"role": "user", "content": "And 4 + 4?"},
            {"role": "assistant", "content": "8"}]
    ex = tokenize_chat(tok, msgs, max_length=512)
    targets = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE]
    # Each assistant turn contributes its text and its closing <|im_end|> (and the newline after it).
    assert tok.decode(targets) == "5<|im_end|>\n8<|im_end|>\n"
    assert [lab for lab in ex["labels"] if lab != IGNORE] == targets


def test_prompt_completion_rows_equal_messages(tok):
    row = {"prompt": "What is 1 + 1?", "completion": "2"}
    assert to_messages(row) == [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "2"}]
    prompt, ref = prompt_and_reference(row)
    assert ref == "2" and prompt == to_messages(row)[:1]


def test_truncation_that_removes_all_targets_drops_the_example(tok):
    msgs = [{"role": "user", "content": "a long question " * 10}, {"role": "assistant", "content": "yes"}]
    assert tokenize_chat(tok, msgs, max_length=8) is None
    assert len(tokenize_chat(tok, msgs, max_length=512)["input_ids"]) > 8


def test_pack_fills_rows_and_restarts_positions():
    exs = [{"input_ids": [1, 2, 3], "labels": [IGNORE, 2, 3]}, {"input_ids": [4, 5], "labels": [IGNORE, 5]},
           {"input_ids": [6, 7, 8, 9], "labels": [IGNORE, IGNORE, 8, 9]}]
    rows = pack(exs, max_length=5)
    assert [r["input_ids"] for r in rows] == [[1, 2, 3, 4, 5], [6, 7, 8, 9]]
    assert rows[0]["position_ids"] == [0, 1, 2, 0, 1]
    assert rows[0]["labels"] == [IGNORE, 2, 3, IGNORE, 5]


def test_collate_right_pads_with_ignore():
    batch = collate_right([{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}],
                          pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
