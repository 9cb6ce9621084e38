"""Mirage stage 3: the log-prob pass rebuilds the latent recurrence decoding used; GRPO runs end to end."""

import json
import subprocess
import sys

import pytest
import torch

from mmthink.methods.mirage.grpo import LatentPolicy, vsp_accuracy, vsp_format


@pytest.fixture(scope="module")
def vl(tmp_path_factory):
    from mmthink.methods.mirage.config import LATENT_TOKENS
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.ops.latent import LatentTokens
    from mmthink.tasks import vsp

    root = tmp_path_factory.mktemp("vsp")
    train, _ = vsp.generate_split(root, "planning", 0, {3: 4, 4: 4}, {3: 1})
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", special_tokens=LATENT_TOKENS), train=False)
    return loaded, LatentTokens.from_tokenizer(loaded.tokenizer), rows, root, train


def test_replayed_logits_match_decoding(vl):
    """Greedy tokens are the argmax of the rebuilt logits, for rows that open a latent block at
    different columns (or never): the recurrence is replayed with the inputs decoding fed."""
    from mmthink.methods.mirage.data import ImageRoots, open_image, prompt_text
    from mmthink.rl.rollout import generate_rollouts

    loaded, lt, rows, _, train = vl
    root = ImageRoots(train)
    model, tok, proc = loaded.model.eval(), loaded.tokenizer, loaded.image_processor
    policy = LatentPolicy(tok, proc, root, lt, max_latent=3, min_latent=3)
    rows = rows[:4]
    images = [open_image(root, r["image_input"]) for r in rows]
    counts = (proc(images=images, return_tensors="pt")["image_grid_thw"].prod(-1) // proc.merge_size**2).tolist()
    # row 0 and 2 start in a latent block; row 1 decodes 2 forced text tokens first; row 3 is text only
    suffix = ["<|latent_start|>", "R<|latent_start|>", "<|latent_start|>", ""]
    texts = [prompt_text(tok, r["text_input"], n) + s for r, n, s in zip(rows, counts, suffix)]
    image_id = model.config.image_token_id
    ro = generate_rollouts(model, tok, texts, 1, 8, latent=lt, latent_kwargs={"max_latent": 3, "min_latent": 3},
                           do_sample=False, chunk_inputs=lambda idx, ids: policy._vision(
                               [images[i] for i in idx], ids, ids.device, image_id))
    ro.extra = {"images": images, "image_token_id": image_id}
    assert ro.latent_steps.tolist()[:3] == [3, 3, 3]
    assert (ro.completion_ids == lt.pad).sum(1).tolist()[:3] == [3, 3, 3]
    assert (ro.mask * (ro.completion_ids == lt.pad)).sum() == 0  # latent slots carry no policy gradient
    with torch.no_grad():
        logits = policy.logits(model, ro, slice(None))
    pred = logits.argmax(-1)
    assert logits.shape[:2] == ro.completion_ids.shape
    assert ((pred == ro.completion_ids) | (ro.mask == 0)).all()
    # a micro-batch given as a tensor of rows (the trainer's shuffled chunks) gives the same logits
    with torch.no_grad():
        sub = policy.logits(model, ro, torch.tensor([2, 0]))
    torch.testing.assert_close(sub, logits[[2, 0]], rtol=1e-4, atol=1e-4)


def test_vsp_rewards():
    row = {"map_desc": [[1, 0], [0, 2]], "text_input": "", "n": 2}
    assert vsp_accuracy("", "\\boxed{R, D}", row) == 1.0 and vsp_format("", "\\boxed{R, D}", row) == 1.0
    assert vsp_accuracy("", "\\boxed{L}", row) == 0.0 and vsp_format("", "\\boxed{L}", row) == 1.0
    assert vsp_format("", "no box", row) == 0.0


@pytest.mark.slow
def test_stage3_runs_grpo_through_the_cli(vl, tmp_path):
    _, _, _, _, train = vl
    out = tmp_path / "run"
    args = [sys.executable, "-m", "mmthink.cli", "train", "mirage", "--recipe", "recipes/tiny/mirage.yaml",
            f"data.train_file={train}", "data.eval_file=null", f"output_dir={out}", "stages=[3]", "stage3.steps=2",
            "stage3.prompts_per_step=2", "stage3.rollout.group_size=2", "stage3.rollout.max_new_tokens=8",
            "stage3.micro_batch_size=2", "stage3.save_every=2", "logging.progress=none"]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    m = [json.loads(line) for line in (out / "stage3" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in m] == [1, 2]
    assert {"reward/vsp_format/mean", "reward/vsp_accuracy/mean", "latent_steps/mean", "clip_frac"} <= set(m[0])
    assert m[0]["latent_steps/mean"] >= 0
    assert (out / "stage3" / "checkpoints" / "step-000002").is_dir() and (out / "model" / "config.json").is_file()
