"""Shared fixtures: a tiny causal LM as the black box, a tiny task folder with short texts, and a
black box with a known optimum for the searches."""
import json

import pytest
import torch

from mmthink.methods.bbpt.blackbox import BlackBox, BoxInfo
from mmthink.methods.bbpt.projection import random_projection, to_prompts


@pytest.fixture(autouse=True)
def _small_models_on_one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def tiny_box():
    from mmthink.methods.bbpt.blackbox import HFBlackBox
    from mmthink.models.presets import build_tiny

    model, tok, _ = build_tiny("tiny-llama", 0)
    return HFBlackBox(model, tok, "{text} It was {mask}.", ["bad", "good"], n_prompt_tokens=4, batch_size=16)


def _rows(n: int, offset: int = 0):
    words = {0: ["awful", "dull", "bad", "weak"], 1: ["lovely", "great", "fun", "warm"]}
    return [{"text": f"a {words[i % 2][(i // 2) % 4]} film {offset + i}", "label": i % 2} for i in range(n)]


@pytest.fixture
def task_dir(tmp_path):
    folder = tmp_path / "toy-task"
    folder.mkdir()
    meta = {"name": "toy", "labels": ["neg", "pos"], "verbalizer": ["bad", "good"], "template": "{text} It was {label}."}
    (folder / "task.json").write_text(json.dumps(meta))
    for split, n, off in [("train", 8, 0), ("dev", 8, 100), ("test", 12, 200)]:
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(n, off)))
    return folder


D_Z, L, D = 8, 2, 4


class QuadBox(BlackBox):
    """Text "n" has label n % 2; it is classified right iff ‖prompt − target‖² < b_n = 3(n + 1)."""

    def __init__(self, target):
        super().__init__()
        self.target = target
        self.info = BoxInfo(2, L, D, 0.0, 1.0, "logits")

    def _logits(self, prompts, texts):
        n = torch.tensor([int(t) for t in texts])
        dist = ((prompts - self.target) ** 2).sum((1, 2))[:, None]
        margin = 3.0 * (n + 1) - dist  # (P, N)
        out = torch.zeros(len(prompts), len(texts), 2)
        out[:, torch.arange(len(texts)), n % 2] = margin
        return out


@pytest.fixture
def problem():
    A = random_projection(D_Z, L, D, 0.0, 1.0, seed=0)
    z_star = torch.full((1, D_Z), 1.0)
    box = QuadBox(to_prompts(z_star, A, L)[0])
    texts = [str(i) for i in range(10)]
    y = torch.tensor([i % 2 for i in range(10)])
    return A, box, texts, y
