"""CUDA paths, run by the GPU check (``pytest -m gpu``); skipped where no CUDA device is present."""

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_autocast_sft_step_on_cuda(tmp_path, cli):
    res = cli("train", "sft", "--recipe", "recipes/tiny/sft.yaml", f"output_dir={tmp_path}", "runner.max_steps=3",
              "runner.mixed_precision=bf16", "data.eval_file=null", "logging.progress=none")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_bitsandbytes_4bit_forward_on_cuda():
    from mmthink.models.config import LoraConfig, ModelConfig, QuantizationConfig
    from mmthink.models.loading import bnb_problem, load_model

    if bnb_problem():
        pytest.skip(bnb_problem())
    cfg = ModelConfig(name="tiny-llama", quantization=QuantizationConfig(bits=4), lora=LoraConfig(enabled=True))
    model = load_model(cfg).model
    assert model.device.type == "cuda"
    ids = torch.randint(10, 100, (2, 16), device="cuda")
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)


def test_latent_decoding_on_cuda_matches_the_cpu():
    from mmthink.methods.mirage.config import LATENT_TOKENS
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.ops.latent import LatentTokens, latent_generate

    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", special_tokens=list(LATENT_TOKENS)), train=False)
    model, tok = loaded.model.eval(), loaded.tokenizer
    latent = LatentTokens.from_tokenizer(tok)
    enc = tok(["<|im_start|>user\nmove<|im_end|>\n<|im_start|>assistant\n<|latent_start|>"], return_tensors="pt")
    outs = []
    for device in ("cpu", "cuda"):
        m = model.to(device)
        with torch.no_grad():
            out = latent_generate(m, enc["input_ids"].to(device), enc["attention_mask"].to(device), latent, 6,
                                  [tok.eos_token_id], tok.pad_token_id, max_latent=3, min_latent=3)
        outs.append(out.sequences.cpu())
    assert torch.equal(outs[0], outs[1])
