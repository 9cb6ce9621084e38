"""Shared fixtures: a tiny causal LM as the black box and a tiny task folder with short texts."""
import json

import pytest


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
