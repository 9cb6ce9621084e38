"""The tiny VLM's 2-D position code: golden values, patch order, and a save/reload that keeps it."""

import json
import math

import pytest
import torch

from mmthink.models import vision_position as vp
from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.tasks import vsp


def test_sincos_golden():
    code = vp.sincos_1d(torch.tensor([0, 1]), 4)  # w = 1, 10000^-0.5 = 0.01
    assert code[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert code[1].tolist() == pytest.approx([math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)])
    two = vp.sincos_2d(torch.tensor([0, 2]), torch.tensor([1, 0]), 8, scale=3.0)
    assert two.norm(dim=-1).tolist() == pytest.approx([3.0, 3.0])  # every vector has norm `scale`
    assert torch.allclose(two[0, 4:], vp.sincos_1d(torch.tensor([1]), 4)[0] * 3 / 2)  # second half: the column


def test_patch_positions_follow_the_processor_layout():
    rows, cols = vp.patch_positions(torch.tensor([[1, 4, 4]]), merge=2)
    # the first 2x2 merge window, raster, then the window to its right
    assert list(zip(rows.tolist(), cols.tolist()))[:8] == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    assert len(rows) == 16 and sorted(zip(rows.tolist(), cols.tolist())) == [(r, c) for r in range(4) for c in range(4)]


def test_same_cell_type_differs_by_position_and_the_code_survives_save_and_reload(tmp_path):
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl"), train=False)
    model, proc = loaded.model.eval(), loaded.image_processor
    pix = proc(images=[vsp.render([[1, 0, 0], [0, 0, 0], [0, 0, 2]])], return_tensors="pt")

    def ice_cosines():
        with torch.no_grad():
            f = model.model.get_image_features(pix["pixel_values"], pix["image_grid_thw"]).pooler_output[0]
        f = torch.nn.functional.normalize(f[1:8], dim=-1)  # the seven ice cells
        return f, (f @ f.T).min().item()

    feats, with_code = ice_cosines()
    model.config.vision_position_scale = 0.0
    _, without = ice_cosines()
    model.config.vision_position_scale = 8.0
    assert without > 0.999 and with_code < 0.95  # rotary attention alone leaves them (almost) identical

    model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["vision_position"] == "sincos2d"
    again = load_model(ModelConfig(name=str(tmp_path)), train=False).model.eval()
    with torch.no_grad():
        f = again.model.get_image_features(pix["pixel_values"], pix["image_grid_thw"]).pooler_output[0]
    assert torch.allclose(torch.nn.functional.normalize(f[1:8], dim=-1), feats, atol=1e-6)
