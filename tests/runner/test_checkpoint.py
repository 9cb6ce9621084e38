"""Weights saved as a plain transformers folder load back into the model in memory, strictly."""

import pytest
import torch

from mmthink.errors import UserError
from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.runner.checkpoint import load_weights


@pytest.mark.parametrize("preset", ["tiny-llama", "tiny-qwen2.5-vl"])
def test_saved_weights_load_back_in_place(tmp_path, preset):
    # Qwen2.5-VL saves other key names than it holds in memory: a plain state-dict load matched none.
    trained = load_model(ModelConfig(name=preset, init_seed=1), train=False).model
    trained.save_pretrained(tmp_path)
    model = load_model(ModelConfig(name=preset, init_seed=2), train=False).model
    params = [id(p) for p in model.parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    load_weights(model, tmp_path)
    assert [id(p) for p in model.parameters()] == params
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.state_dict().items())


def test_weights_of_another_architecture_are_refused(tmp_path):
    load_model(ModelConfig(name="tiny-llama", special_tokens=["<x>"]), train=False).model.save_pretrained(tmp_path)
    model = load_model(ModelConfig(name="tiny-llama"), train=False).model
    with pytest.raises(UserError, match="another architecture"):
        load_weights(model, tmp_path)
