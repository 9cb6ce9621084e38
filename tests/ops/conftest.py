import pytest

LATENT = ["<|latent_start|>", "<|latent_pad|>", "<|latent_end|>"]


@pytest.fixture(scope="module")
def text_lm():
    """tiny-llama with the latent tokens, in eval mode, left-padding: (model, tokenizer, LatentTokens)."""
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.ops.latent import LatentTokens

    loaded = load_model(ModelConfig(name="tiny-llama", special_tokens=LATENT), train=False)
    loaded.model.eval()
    loaded.tokenizer.padding_side = "left"
    return loaded.model, loaded.tokenizer, LatentTokens.from_tokenizer(loaded.tokenizer)
