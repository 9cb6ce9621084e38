"""The shipped paper-size configs: they load, their parameter counts round to the model cards, and the
model surgery the methods apply behaves as at full size."""

import json

import pytest

from mmthink.errors import UserError
from mmthink.models.paper import (FactsTokenizer, count_parameters, meta_model, paper_model, shape_config,
                                  shape_model, shipped_models)
from mmthink.paths import assets_dir

SHIPPED = ["Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-Math-7B", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-Coder-32B-Instruct",
           "meta-llama/Llama-2-7b-chat-hf", "roberta-large"]


def _card(value: str) -> float:
    return float(value[:-1]) * {"B": 1e9, "M": 1e6}[value[-1]]


def test_every_model_a_full_recipe_names_is_shipped():
    assert shipped_models() == sorted(SHIPPED)
    assert (assets_dir() / "configs" / "PROVENANCE.md").is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_parameter_counts_round_to_the_model_card(name):
    pm = paper_model(name)
    assert pm.source.startswith("assets/configs/")
    total, trainable = count_parameters(meta_model(pm.config))
    card = pm.facts["model_card_parameters"]
    digits = len(card[:-1].split(".")[1]) if "." in card else 0
    unit = {"B": 1e9, "M": 1e6}[card[-1]]
    assert round(total / unit, digits) == _card(card) / unit, (name, total)
    assert trainable == total


def test_qwen_tokenizer_is_shorter_than_its_embeddings_so_three_new_tokens_do_not_resize():
    from mmthink.models.loading import add_special_tokens

    pm = paper_model("Qwen/Qwen2.5-VL-7B-Instruct")
    model = meta_model(pm.config)
    ids = add_special_tokens(model, FactsTokenizer(pm.facts), ["<|latent_start|>", "<|latent_pad|>", "<|latent_end|>"])
    assert ids == (151665, 151666, 151667)
    assert model.get_input_embeddings().num_embeddings == 152064 == model.config.get_text_config().vocab_size
    assert pm.facts["special_tokens"]["<|image_pad|>"] == pm.config.image_token_id == 151655


def test_llama_tokenizer_fills_its_embeddings_so_a_new_token_resizes():
    from mmthink.models.loading import add_special_tokens

    pm = paper_model("meta-llama/Llama-2-7b-chat-hf")
    model = meta_model(pm.config)
    assert add_special_tokens(model, FactsTokenizer(pm.facts), ["<|x|>"]) == (32000,)
    assert model.get_input_embeddings().num_embeddings == 32001 == model.lm_head.out_features


def test_the_shape_model_keeps_widths_and_vocabulary_with_two_layers():
    import torch

    pm = paper_model("Qwen/Qwen2.5-VL-7B-Instruct")
    small = shape_config(pm.config, token_ids={"image_token_id": 7})
    text = small.get_text_config()
    assert (text.num_hidden_layers, text.hidden_size, text.vocab_size) == (2, 3584, 152064)
    assert small.vision_config.depth == 2 and small.vision_config.fullatt_block_indexes == [1]
    assert small.image_token_id == 7 and pm.config.image_token_id == 151655  # the original is untouched
    model = shape_model(pm.config)
    logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 152064) and torch.isfinite(logits).all()


def test_an_unknown_model_is_one_clear_error():
    with pytest.raises(UserError, match="no config for model 'org/nothing'.*shipped: Qwen"):
        paper_model("org/nothing")


def test_facts_name_the_chat_template_family():
    for name in SHIPPED:
        folder = assets_dir() / "configs" / name.replace("/", "--")
        facts = json.loads((folder / "tokenizer_facts.json").read_text())
        assert facts["name"] == name and "chat_template" in facts and facts["tokenizer_len"] > 0
