"""The step-wise decoding engine: per-row settings, rows joining and leaving, log-probs.

Golden rule: a row decodes the same tokens whatever batch it is in and whenever it joined.
"""

import pytest
import torch
from PIL import Image

from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.ops.latent import DecodeBatch, LatentTokens, RowSettings, sample_rows

LATENT = ["<|latent_start|>", "<|latent_pad|>", "<|latent_end|>"]


def _run(dec, schedule=()):
    """Step until empty; ``schedule`` = [(step, add-callable)] joins rows before that step. {key: tokens}."""
    out, t, pending = {}, 0, list(schedule)
    while len(dec) or pending:
        for when, join in [p for p in pending if p[0] <= t]:
            join()
            pending.remove((when, join))
        if len(dec):
            for row in dec.step():
                out.setdefault(row.key, []).append(row.token)
        t += 1
    return out


def _add(dec, tok, keys, texts, settings):
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    dec.add(keys, enc["input_ids"], enc["attention_mask"], settings)


def _alone(model, tok, lt, text, setting):
    dec = DecodeBatch(model, lt, [tok.eos_token_id], tok.pad_token_id)
    _add(dec, tok, ["x"], [text], [setting])
    with torch.no_grad():
        return _run(dec)["x"]


PROMPTS = ["the cat sat", "a b c d e f g", "x<|latent_start|>", "hello"]


def _settings(i, budget=8):
    g = torch.Generator().manual_seed(100 + i)
    return RowSettings(budget + i, temperature=[0.0, 0.8, 1.0, 1.3][i], top_p=[1.0, 0.9, 1.0, 0.5][i], generator=g,
                       max_latent=3)


def test_rows_with_their_own_settings_decode_as_if_alone(text_lm):
    model, tok, lt = text_lm
    alone = [_alone(model, tok, lt, p, _settings(i)) for i, p in enumerate(PROMPTS)]
    dec = DecodeBatch(model, lt, [tok.eos_token_id], tok.pad_token_id)
    _add(dec, tok, range(4), PROMPTS, [_settings(i) for i in range(4)])
    with torch.no_grad():
        together = _run(dec)
    assert [together[i] for i in range(4)] == alone
    assert [len(a) for a in alone[:2]] == [8, 9]  # budgets differ per row: rows leave at their own step
    assert lt.pad in alone[2]  # the third prompt opened a latent block


def test_rows_joining_between_steps_decode_as_if_alone(text_lm):
    model, tok, lt = text_lm
    alone = [_alone(model, tok, lt, p, _settings(i)) for i, p in enumerate(PROMPTS)]
    dec = DecodeBatch(model, lt, [tok.eos_token_id], tok.pad_token_id)
    schedule = [(0, lambda: _add(dec, tok, [0], PROMPTS[:1], [_settings(0)])),
                (2, lambda: _add(dec, tok, [1, 2], PROMPTS[1:3], [_settings(1), _settings(2)])),
                (5, lambda: _add(dec, tok, [3], PROMPTS[3:], [_settings(3)]))]
    with torch.no_grad():
        joined = _run(dec, schedule)
    assert [joined[i] for i in range(4)] == alone


def test_dropped_rows_leave_and_the_rest_continue(text_lm):
    model, tok, lt = text_lm
    alone = _alone(model, tok, lt, PROMPTS[1], _settings(1))
    dec = DecodeBatch(model, lt, [tok.eos_token_id], tok.pad_token_id)
    _add(dec, tok, ["gone", "kept"], [PROMPTS[0] * 3, PROMPTS[1]], [_settings(0, 30), _settings(1)])
    got = []
    with torch.no_grad():
        for t in range(len(alone)):
            if t == 2:
                dec.drop(["gone"])
                assert dec.keys == ["kept"]
                assert dec.state["mask"].shape[1] < 20  # the long prompt's columns were cut away
            got += [r.token for r in dec.step() if r.key == "kept"]
    assert got == alone and len(dec) == 0


def test_logprobs_are_the_full_forward_log_softmax(text_lm):
    model, tok, lt = text_lm
    enc = tok(["one two three"], return_tensors="pt", add_special_tokens=False)
    dec = DecodeBatch(model, None, [], tok.pad_token_id)
    dec.add([0], enc["input_ids"], enc["attention_mask"], [RowSettings(4, logprobs=3)])
    with torch.no_grad():
        steps = [dec.step()[0] for _ in range(4)]
        ids = torch.cat([enc["input_ids"], torch.tensor([[s.token for s in steps]])], dim=1)
        logp = torch.log_softmax(model(input_ids=ids).logits[0, enc["input_ids"].shape[1] - 1 : -1].float(), dim=-1)
    for j, s in enumerate(steps):
        assert s.logprob == pytest.approx(logp[j, s.token].item(), abs=1e-4)
        assert [t for t, _ in s.top] == logp[j].topk(3).indices.tolist()
        assert s.top[0][0] == s.token  # greedy: the chosen token is the most likely one


def test_sample_rows_follows_each_rows_temperature_and_nucleus():
    logits = torch.tensor([[2.0, 0.0, -1.0]]).expand(3000, -1)
    g = torch.Generator().manual_seed(0)
    gens = [None] * 3000
    greedy = sample_rows(logits, torch.zeros(3000), torch.ones(3000), gens, g)
    assert (greedy == 0).all()
    hot = sample_rows(logits, torch.full((3000,), 0.5), torch.ones(3000), gens, g)
    # T = 0.5: p0 = e^4 / (e^4 + 1 + e^-2)
    p0 = torch.softmax(torch.tensor([4.0, 0.0, -2.0]), 0)[0].item()
    assert abs((hot == 0).float().mean().item() - p0) < 0.02
    nucleus = sample_rows(logits, torch.ones(3000), torch.full((3000,), 0.5), gens, g)
    assert (nucleus == 0).all()  # p0 = 0.84 > 0.5: the nucleus is the top token alone


def test_a_vision_row_joins_a_running_text_batch():
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", special_tokens=LATENT), train=False)
    model, tok, proc = loaded.model.eval(), loaded.tokenizer, loaded.image_processor
    tok.padding_side = "left"
    lt = LatentTokens.from_tokenizer(tok)
    pix = proc(images=[Image.new("RGB", (56, 56), (200, 30, 90))], return_tensors="pt")
    n = int(pix["image_grid_thw"].prod(-1)[0]) // proc.merge_size**2
    image_prompt = "<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>look<|latent_start|>"

    def add_image(dec, key):
        enc = tok([image_prompt], return_tensors="pt", add_special_tokens=False)
        dec.add([key], enc["input_ids"], enc["attention_mask"], [RowSettings(6, max_latent=2)],
                pixel_values=pix["pixel_values"], image_grid_thw=pix["image_grid_thw"],
                mm_token_type_ids=(enc["input_ids"] == model.config.image_token_id).int())

    with torch.no_grad():
        dec = DecodeBatch(model, lt, [tok.eos_token_id], tok.pad_token_id)
        add_image(dec, "img")
        alone = _run(dec)["img"]
        dec = DecodeBatch(model, lt, [tok.eos_token_id], tok.pad_token_id)
        _add(dec, tok, ["txt"], ["some words here"], [RowSettings(10)])
        joined = _run(dec, [(3, lambda: add_image(dec, "img"))])
    assert joined["img"] == alone
    assert alone[:2] == [lt.pad, lt.pad]  # the prompt opened a block: two latent steps, then forced shut
