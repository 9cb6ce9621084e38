"""The black-box interface (mmthink.methods.bbpt.blackbox): batching, padding, truncation, access levels."""
import pytest
import torch

from mmthink.errors import UserError
from mmthink.methods.bbpt.blackbox import HFBlackBox, LabelOnly

TEXTS = ["a fun film", "a dull and very very long film that never ends at all", "warm"]


def test_batched_logits_equal_one_at_a_time(tiny_box):
    d = tiny_box.info.embed_dim
    prompts = 0.05 * torch.randn(3, 4, d, generator=torch.Generator().manual_seed(0))
    batch = tiny_box.logits(prompts, TEXTS)
    assert batch.shape == (3, 3, 2)
    for p in range(3):
        for n in range(3):
            alone = tiny_box.logits(prompts[p : p + 1], [TEXTS[n]])[0, 0]
            assert torch.allclose(batch[p, n], alone, atol=1e-4)
    # The prompt reaches the model: different prompts, different logits.
    assert not torch.allclose(batch[0], batch[1])


def test_queries_and_calls_are_counted(tiny_box):
    q, c = tiny_box.queries, tiny_box.calls
    tiny_box.logits(torch.zeros(5, 4, tiny_box.info.embed_dim), TEXTS)
    tiny_box.logits(None, TEXTS[:2])
    assert tiny_box.queries - q == 5 * 3 + 2 and tiny_box.calls - c == 2


def test_prompt_sits_after_the_leading_specials_and_the_last_token_is_scored(tiny_box):
    ids, start, scored = tiny_box.encode("a fun film", 4)
    assert ids[start : start + 4] == [tiny_box.placeholder_id] * 4
    assert scored == len(ids) - 1
    body = tiny_box.tok("a fun film It was", add_special_tokens=False).input_ids
    assert ids[start + 4 :] == body  # the template up to {mask}; what follows it is dropped


def test_long_text_is_cut_but_the_template_tail_survives(tiny_box):
    box = HFBlackBox(tiny_box.model, tiny_box.tok, "{text} It was {mask}.", ["bad", "good"], 4, max_length=24)
    ids, _, scored = box.encode("word " * 200, 4)
    assert len(ids) <= 24
    tail = box.tok(" It was", add_special_tokens=False).input_ids
    assert ids[-len(tail) :] == tail and scored == len(ids) - 1


def test_label_only_box_answers_argmax_and_refuses_logits(tiny_box):
    box = LabelOnly(tiny_box)
    prompts = 0.05 * torch.randn(2, 4, tiny_box.info.embed_dim)
    assert torch.equal(box.labels(prompts, TEXTS), tiny_box.logits(prompts, TEXTS).argmax(-1))
    assert box.info.level == "labels" and box.queries == 6
    with pytest.raises(UserError, match="labels only"):
        box.logits(prompts, TEXTS)


def test_wrong_prompt_shape_is_refused(tiny_box):
    with pytest.raises(ValueError, match=r"\(P, 4,"):
        tiny_box.logits(torch.zeros(2, 3, tiny_box.info.embed_dim), TEXTS)


@pytest.mark.parametrize("template, words, message", [
    ("{text} It was", ["bad", "good"], "must contain"),
    ("{text} It was {mask}", ["good", "good"], "share a first token"),
])
def test_bad_template_or_verbalizer(tiny_box, template, words, message):
    with pytest.raises(UserError, match=message):
        HFBlackBox(tiny_box.model, tiny_box.tok, template, words, 4)


def test_masked_lm_scores_the_mask_position():
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from mmthink.models.loading import resolve_path

    tok = AutoTokenizer.from_pretrained(str(resolve_path("all-minilm-l6-v2")))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64)
    box = HFBlackBox(BertForMaskedLM(cfg), tok, "{text} it was {mask} .", ["bad", "good"], n_prompt_tokens=3)
    ids, start, scored = box.encode("a fun film", 3)
    assert ids[0] == tok.cls_token_id and start == 1 and ids[scored] == tok.mask_token_id and ids[-1] == tok.sep_token_id
    prompts = 0.05 * torch.randn(2, 3, 32)
    batch = box.logits(prompts, TEXTS)
    assert torch.allclose(batch[1, 2], box.logits(prompts[1:], TEXTS[2:])[0, 0], atol=1e-4)
