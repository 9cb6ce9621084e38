"""Batched latent decoding: rows independent, equal to one-row decoding, consistent with a full forward."""

import pytest
import torch
from PIL import Image

from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.ops.latent import LatentTokens, latent_generate, prefill_positions, sample_next

LATENT = ["<|latent_start|>", "<|latent_pad|>", "<|latent_end|>"]


@pytest.fixture(scope="module")
def vlm():
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", special_tokens=LATENT), train=False)
    loaded.model.eval()
    loaded.tokenizer.padding_side = "left"
    return loaded.model, loaded.tokenizer, loaded.image_processor, LatentTokens.from_tokenizer(loaded.tokenizer)


def _decode(model, tok, lt, enc, **kw):
    kw.setdefault("max_latent", 3)
    with torch.no_grad():
        return latent_generate(model, enc["input_ids"], enc["attention_mask"], lt, 10, [tok.eos_token_id],
                               tok.pad_token_id, **kw)


def test_latent_ids_come_from_the_tokenizer(text_lm):
    _, tok, lt = text_lm
    assert (lt.start, lt.pad, lt.end) == tuple(tok.convert_tokens_to_ids(LATENT))


def test_text_batch_equals_rows_alone_and_hf_generate(text_lm):
    model, tok, lt = text_lm
    texts = ["What is 2 + 3?", "A much longer prompt that needs padding<|latent_start|>", "x<|latent_start|>"]
    batch = _decode(model, tok, lt, tok(texts, return_tensors="pt", padding=True, add_special_tokens=False))
    assert batch.latent_steps.tolist() == [0, 3, 3]
    assert batch.sequences[1, :4].tolist() == [lt.pad, lt.pad, lt.pad, lt.end]  # max_latent forces the end
    for i, text in enumerate(texts):
        alone = _decode(model, tok, lt, tok([text], return_tensors="pt", add_special_tokens=False))
        assert torch.equal(alone.sequences[0], batch.sequences[i, : alone.sequences.shape[1]])
    enc = tok([texts[0]], return_tensors="pt", add_special_tokens=False)
    hf = model.generate(**enc, max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id)
    assert hf[0, enc["input_ids"].shape[1]:].tolist() == batch.sequences[0, :10].tolist()


def test_max_new_tokens_counts_text_tokens_only(text_lm):
    """A latent block (pads and its end) does not eat the text budget: every row gets its 10 text tokens."""
    model, tok, lt = text_lm
    texts = ["What is 2 + 3?", "x<|latent_start|>"]
    out = _decode(model, tok, lt, tok(texts, return_tensors="pt", padding=True, add_special_tokens=False))
    assert out.sequences.shape[1] == 10 + 4  # row 1: 3 pads + <|latent_end|>, then 10 text tokens
    assert (out.sequences[0, 10:] == tok.pad_token_id).all()
    text = (out.sequences != lt.pad) & (out.sequences != lt.end) & (out.sequences != tok.pad_token_id)
    assert text.sum(dim=1).tolist() == [10, 10]


def test_sampled_stop_rule_lets_the_sampled_token_close_the_block(text_lm, monkeypatch):
    import mmthink.ops.latent as ops

    model, tok, lt = text_lm
    enc = tok(["x<|latent_start|>"], return_tensors="pt", add_special_tokens=False)
    argmax = _decode(model, tok, lt, enc, min_latent=0)
    assert argmax.latent_steps.tolist() == [3]  # the tiny model's argmax never closes it: forced at max_latent
    # the sampled token is <|latent_end|> at every step: the official rule closes the block at once
    monkeypatch.setattr(ops, "sample_next", lambda logits, *a, **k: torch.full(logits.shape[:1], lt.end))
    assert _decode(model, tok, lt, enc, min_latent=0, latent_stop="sampled").latent_steps.tolist() == [0]
    assert _decode(model, tok, lt, enc, min_latent=0, latent_stop="argmax").latent_steps.tolist() == [3]
    with pytest.raises(ValueError, match="latent stop rule"):
        _decode(model, tok, lt, enc, latent_stop="first")


def _vl_batch(model, tok, proc, sizes, latent_rows):
    images = [Image.new("RGB", s, (40 * i, 200 - 40 * i, 90)) for i, s in enumerate(sizes)]
    pix = proc(images=images, return_tensors="pt")
    counts = (pix["image_grid_thw"].prod(-1) // proc.merge_size**2).tolist()
    texts = [
        "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>go<|im_end|>\n<|im_start|>assistant\n"
        + ("<|latent_start|>" if i in latent_rows else "")
        for i, n in enumerate(counts)
    ]
    return texts, pix, counts


def _vl_inputs(model, tok, texts, pix, counts, rows):
    enc = tok([texts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
    per_image = pix["image_grid_thw"].prod(-1).tolist()  # patches (rows of pixel_values) per image
    starts = [sum(per_image[:i]) for i in range(len(per_image))]
    pv = torch.cat([pix["pixel_values"][starts[i] : starts[i] + per_image[i]] for i in rows])
    return enc, dict(pixel_values=pv, image_grid_thw=pix["image_grid_thw"][rows],
                     mm_token_type_ids=(enc["input_ids"] == model.config.image_token_id).int())


def test_vl_batch_with_different_image_sizes_equals_rows_alone_and_hf(vlm):
    model, tok, proc, lt = vlm
    texts, pix, counts = _vl_batch(model, tok, proc, [(56, 56), (84, 56), (56, 112)], latent_rows={1})
    assert len(set(counts)) == 3  # every row has its own number of vision tokens
    enc, vis = _vl_inputs(model, tok, texts, pix, counts, [0, 1, 2])
    batch = _decode(model, tok, lt, enc, **vis)
    assert batch.latent_steps.tolist()[1] > 0
    for i in range(3):
        e, v = _vl_inputs(model, tok, texts, pix, counts, [i])
        alone = _decode(model, tok, lt, e, **v)
        assert torch.equal(alone.sequences[0], batch.sequences[i, : alone.sequences.shape[1]])
    e, v = _vl_inputs(model, tok, texts, pix, counts, [0])
    hf = model.generate(**e, **v, max_new_tokens=10, do_sample=False)
    assert hf[0, e["input_ids"].shape[1]:].tolist() == batch.sequences[0, :10].tolist()


def test_cached_latent_steps_match_a_full_teacher_forced_forward(vlm):
    """Per-row M-RoPE positions of prefill, latent and text steps agree with one forward over everything."""
    model, tok, proc, lt = vlm
    texts, pix, counts = _vl_batch(model, tok, proc, [(84, 56)], latent_rows={0})
    enc, vis = _vl_inputs(model, tok, texts, pix, counts, [0])
    out = _decode(model, tok, lt, enc, return_inputs=True, **vis)
    ids = enc["input_ids"]
    with torch.no_grad():
        emb = model.get_input_embeddings()(ids)
        image = model.model.get_image_features(vis["pixel_values"], vis["image_grid_thw"]).pooler_output[0]
        emb[ids == model.config.image_token_id] = image
        full = torch.cat([emb, out.inputs_embeds], dim=1)
        pos, nxt = prefill_positions(model, ids, enc["attention_mask"], vis["image_grid_thw"], vis["mm_token_type_ids"])
        steps = out.inputs_embeds.shape[1]
        later = (nxt[None, :, None] + torch.arange(steps)[None, None, :]).expand(3, 1, steps)
        h = model.model(inputs_embeds=full, position_ids=torch.cat([pos, later], dim=2)).last_hidden_state[0]
    start = ids.shape[1] - 1
    fed_latent = out.sequences[0, :steps] == lt.pad
    assert fed_latent.sum() == 3
    # each latent slot received the hidden state the full forward computes at the position before it
    assert torch.allclose(h[start : start + steps][fed_latent], out.inputs_embeds[0][fed_latent], atol=1e-4)
    text = ~fed_latent & (out.sequences[0, :steps] != lt.end)
    logits = model.lm_head(h[start : start + steps])
    assert torch.equal(logits.argmax(-1)[text], out.sequences[0, :steps][text])


def test_ablation_modes_replace_what_latent_slots_receive(text_lm):
    model, tok, lt = text_lm
    enc = tok(["a<|latent_start|>", "bb<|latent_start|>"], return_tensors="pt", padding=True, add_special_tokens=False)
    zeros = _decode(model, tok, lt, enc, latent_mode="zeros", return_inputs=True)
    assert torch.all(zeros.inputs_embeds[:, :3] == 0)
    targets = torch.randn(2, 3, model.config.hidden_size)
    target = _decode(model, tok, lt, enc, latent_mode="target", latent_targets=targets, return_inputs=True)
    assert torch.equal(target.inputs_embeds[:, :3], targets)
    noise = _decode(model, tok, lt, enc, latent_mode="noise", return_inputs=True,
                    generator=torch.Generator().manual_seed(0))
    model_fed = _decode(model, tok, lt, enc, return_inputs=True)
    assert torch.allclose(noise.inputs_embeds[:, :3].norm(dim=-1), model_fed.inputs_embeds[:, :3].norm(dim=-1), rtol=1e-4)
    assert not torch.allclose(noise.inputs_embeds[:, :3], model_fed.inputs_embeds[:, :3])


def test_sample_next_top_p_keeps_the_nucleus_only():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    draws = {sample_next(logits, True, 1.0, 0.7, g).item() for _ in range(200)}
    assert draws == {0, 1}  # 0.5 < 0.7 needs the second token; the third is never reached
    assert sample_next(logits, False, 1.0, 1.0).item() == 0


def test_min_latent_holds_the_block_open_until_reached(text_lm):
    model, tok, lt = text_lm

    class AlwaysEnd(torch.nn.Module):
        """Wraps the model so that every position predicts <|latent_end|>."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.model, self.config = inner, inner.model, inner.config

        def get_input_embeddings(self):
            return self.inner.get_input_embeddings()

        def get_output_embeddings(self):
            head = torch.nn.Linear(self.config.hidden_size, self.config.vocab_size, bias=True)
            head.weight.data.zero_()
            head.bias.data.fill_(-1.0)
            head.bias.data[lt.end] = 1.0
            return head

    enc = tok(["a<|latent_start|>"], return_tensors="pt", add_special_tokens=False)
    wrapped = AlwaysEnd(model)
    assert _decode(wrapped, tok, lt, enc, min_latent=0).latent_steps.item() == 0  # the official rule
    held = _decode(wrapped, tok, lt, enc, min_latent=2)
    assert held.latent_steps.item() == 2 and held.sequences[0, :3].tolist() == [lt.pad, lt.pad, lt.end]


def test_sample_next_follows_the_distribution():
    # Inverse-CDF sampling: empirical frequencies match softmax(logits / T); zero-probability never drawn.
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2]])
    logits = probs.clamp(min=1e-30).log().expand(4000, -1)
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits, True, 1.0, 1.0, g)
    freq = torch.bincount(draws, minlength=4).float() / 4000
    assert freq[1] == 0
    torch.testing.assert_close(freq, probs[0], atol=0.03, rtol=0)
    hot = sample_next(torch.tensor([[2.0, 0.0]]).expand(4000, -1), True, 0.5, 1.0, g)  # T=0.5: p0 = 1/(1+e^-4)
    assert abs((hot == 0).float().mean().item() - 1 / (1 + torch.exp(torch.tensor(-4.0)).item())) < 0.02


def test_shared_prefix_prefill_decodes_the_same(text_lm):
    # Groups of identical prompts prefilled once and repeated: the same greedy output as separate prefills.
    model, tok, lt = text_lm
    tok.padding_side = "left"
    enc = tok(["a b", "a b", "c d e f", "c d e f"], return_tensors="pt", padding=True)
    eos = [tok.eos_token_id]
    with torch.no_grad():
        alone = latent_generate(model, enc["input_ids"], enc["attention_mask"], lt, 6, eos, tok.pad_token_id)
        shared = latent_generate(model, enc["input_ids"], enc["attention_mask"], lt, 6, eos, tok.pad_token_id,
                                 shared_prefix=2)
    assert shared.sequences.tolist() == alone.sequences.tolist()
