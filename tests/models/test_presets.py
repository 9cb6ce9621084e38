"""Tiny presets and the committed tokenizer."""

import json

import pytest
import torch

from mmthink.models.presets import TINY_PRESETS, build_tiny
from mmthink.models.tokenizer import build_tokenizer, tokenizer_path


def test_committed_tokenizer_is_what_the_builder_makes():
    built = build_tokenizer()
    committed = json.loads((tokenizer_path() / "tokenizer.json").read_text())
    assert json.loads(built.backend_tokenizer.to_str()) == committed


def test_tokenizer_round_trips_text_and_has_a_chat_template():
    from mmthink.models.tokenizer import load_tiny_tokenizer

    tok = load_tiny_tokenizer()
    text = "What is 123 + 45? The answer is \\boxed{168}."
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.convert_ids_to_tokens(tok("2024")["input_ids"]) == ["2", "0", "2", "4"]  # one token per digit
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("name", TINY_PRESETS)
def test_preset_is_deterministic_and_reloads_with_plain_transformers(name, tmp_path):
    a, tok, _ = build_tiny(name, seed=1)
    b, _, _ = build_tiny(name, seed=1)
    c, _, _ = build_tiny(name, seed=2)
    pa, pb, pc = dict(a.named_parameters()), dict(b.named_parameters()), dict(c.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)
    a.save_pretrained(tmp_path)
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(tmp_path).model_type == a.config.model_type


def test_tiny_vl_forward_with_an_image():
    from PIL import Image

    model, tok, proc = build_tiny("tiny-qwen2.5-vl")
    image = Image.new("RGB", (56, 56), (200, 30, 30))
    pix = proc(images=[image], return_tensors="pt")
    n_tokens = int(pix["image_grid_thw"].prod()) // proc.merge_size**2
    text = "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * n_tokens + "<|vision_end|>red?<|im_end|>\n"
    ids = tok(text, return_tensors="pt")
    out = model(**ids, pixel_values=pix["pixel_values"], image_grid_thw=pix["image_grid_thw"])
    assert out.logits.shape == (1, ids["input_ids"].shape[1], len(tok))
    assert torch.isfinite(out.logits).all()


def test_minilm_ships_as_a_bert_folder():
    from transformers import AutoModel, AutoTokenizer

    from mmthink.models.loading import resolve_path

    folder = resolve_path("all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder))
    out = model(**tok(["a sentence"], return_tensors="pt")).last_hidden_state
    assert type(model).__name__ == "BertModel" and out.shape[-1] == 384
