"""Model loading: special tokens, 4-bit and 8-bit through bitsandbytes on the CPU, LoRA, local folders."""

import pytest
import torch

from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model


def _cfg(**kw):
    cfg = ModelConfig(name="tiny-llama")
    for k, v in kw.items():
        obj = cfg
        *path, last = k.split("__")
        for p in path:
            obj = getattr(obj, p)
        setattr(obj, last, v)
    return cfg


def test_special_tokens_resize_and_survive_save_reload(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = load_model(_cfg(special_tokens=["<|latent_start|>", "<|latent_pad|>", "<|latent_end|>"]))
    model, tok = loaded.model, loaded.tokenizer
    assert loaded.new_token_ids == tuple(tok.convert_tokens_to_ids(t) for t in ["<|latent_start|>", "<|latent_pad|>",
                                                                                 "<|latent_end|>"])
    assert model.config.vocab_size == len(tok) == model.get_input_embeddings().num_embeddings
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = AutoModelForCausalLM.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    assert again.config.vocab_size == len(tok2) == len(tok)
    row = loaded.new_token_ids[1]
    assert torch.equal(again.get_input_embeddings().weight[row], model.get_input_embeddings().weight[row])
    # Added tokens are single special tokens, not split into bytes.
    assert tok2("x<|latent_pad|>y")["input_ids"].count(row) == 1


def test_special_tokens_on_the_vl_preset_update_the_text_config():
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", special_tokens=["<|latent_start|>"]))
    cfg = loaded.model.config
    assert cfg.text_config.vocab_size == len(loaded.tokenizer) == loaded.model.get_input_embeddings().num_embeddings
    assert loaded.image_processor is not None


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_lora_trains_on_cpu(bits):
    import bitsandbytes as bnb

    loaded = load_model(_cfg(quantization__bits=bits, lora__enabled=True))
    model = loaded.model
    linear = model.base_model.model.model.layers[0].mlp.up_proj
    assert isinstance(linear, bnb.nn.Linear4bit if bits == 4 else bnb.nn.Linear8bitLt)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    x = torch.randint(0, 800, (2, 12), generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(8):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(not torch.equal(p, trainable[n]) for n, p in model.named_parameters() if "lora_B" in n)


def test_nf4_weights_are_smaller_than_fp32():
    full = load_model(_cfg(), train=False).model
    small = load_model(_cfg(quantization__bits=4), train=False).model
    assert small.get_memory_footprint() < 0.6 * full.get_memory_footprint()


def test_lora_trains_adapters_and_new_token_rows_only():
    loaded = load_model(_cfg(lora__enabled=True, special_tokens=["<|reflect|>"]))
    names = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and any("trainable_tokens" in n for n in names)
    assert not any(n.endswith("q_proj.base_layer.weight") for n in names)


def test_lora_init_is_seeded():
    a = load_model(_cfg(lora__enabled=True)).model
    b = load_model(_cfg(lora__enabled=True)).model
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_local_folder_loads_like_the_preset(tmp_path):
    loaded = load_model(_cfg(), train=False)
    loaded.model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    again = load_model(ModelConfig(name=str(tmp_path)), train=False)
    x = torch.tensor([[5, 6, 7, 8]])
    assert torch.allclose(loaded.model(x).logits, again.model(x).logits)


def test_unavailable_hub_id_names_it():
    with pytest.raises(UserError, match="model 'nobody/nothing' is not available.*model.name=/path/to/model"):
        load_model(ModelConfig(name="nobody/nothing"))


@pytest.mark.slow
def test_smollm2_is_the_real_pretrained_model():
    loaded = load_model(ModelConfig(name="smollm2-135m-instruct"), train=False)
    n = sum(p.numel() for p in loaded.model.parameters())
    assert 134_000_000 < n < 135_000_000
    from mmthink.ops.lm import generate_chat

    reply = generate_chat(loaded.model, loaded.tokenizer, [[{"role": "user", "content": "What is the capital of France?"}]],
                          max_new_tokens=12)[0]
    assert "Paris" in reply


def test_vl_model_saved_with_its_processors_reloads_from_the_folder(tmp_path):
    from mmthink.runner.checkpoint import save_pretrained_model

    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl"), train=False)
    save_pretrained_model(loaded.model, (loaded.tokenizer, loaded.image_processor), tmp_path)
    again = load_model(ModelConfig(name=str(tmp_path)), train=False)
    assert type(again.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert again.image_processor.merge_size == loaded.image_processor.merge_size
    assert len(again.tokenizer) == len(loaded.tokenizer)
