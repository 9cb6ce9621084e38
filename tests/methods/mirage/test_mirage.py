"""Mirage: latent targets, batch layout, stage losses, and a tiny end-to-end run with eval."""

import json

import pytest
import torch

from mmthink.data.chat import IGNORE
from mmthink.methods.mirage.losses import latent_cosine_per_example, pooled_latent_targets, stage1_loss


def test_pooled_targets_trim_then_mean_pool_contiguous_chunks():
    tokens = torch.arange(20.0).reshape(10, 2)  # rows 8 and 9 are trimmed (10 is not a multiple of 4)
    out = pooled_latent_targets(tokens, 4)
    assert out.tolist() == [[1.0, 2.0], [5.0, 6.0], [9.0, 10.0], [13.0, 14.0]]
    with pytest.raises(ValueError):
        pooled_latent_targets(tokens[:3], 4)


def test_cosine_loss_golden():
    a = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [3.0, 0.0]]])  # 2 examples, K = 2
    e = torch.tensor([[[2.0, 0.0], [0.0, -1.0]], [[1.0, 0.0], [0.0, 5.0]]])
    # example 0: cos 1 and -1 -> 1 - 0 = 1; example 1: cos 1/sqrt(2) and 0 -> 1 - 0.5/sqrt(2)
    out = latent_cosine_per_example(a, e)
    assert out.tolist() == pytest.approx([1.0, 1.0 - 0.5 / 2**0.5])
    assert latent_cosine_per_example(a, a).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert stage1_loss(torch.tensor(2.0), torch.tensor(0.5), 0.1).item() == pytest.approx(0.7)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from mmthink.methods.mirage.config import LATENT_TOKENS
    from mmthink.methods.mirage.data import ImageRoots, encode_rows
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.ops.latent import LatentTokens
    from mmthink.tasks import vsp

    root = tmp_path_factory.mktemp("vsp")
    train, test = vsp.generate_split(root, "planning", 0, {3: 12, 6: 12}, {3: 4, 6: 4})
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", special_tokens=LATENT_TOKENS), train=False)
    lt = LatentTokens.from_tokenizer(loaded.tokenizer)
    examples = encode_rows(rows, ImageRoots(train), loaded.model, loaded.tokenizer, loaded.image_processor, 4,
                           (lt.start, lt.pad, lt.end), 1024)
    return loaded, lt, rows, examples, train, test


def _batch(setup, idx):
    from mmthink.methods.mirage.data import collate

    loaded, lt, _, examples, _, _ = setup
    return collate([examples[i] for i in idx], loaded.tokenizer.pad_token_id, 4, lt.pad)


def test_layout_aligns_latent_slots_across_grid_sizes(setup):
    loaded, lt, rows, examples, _, _ = setup
    i3, i6 = rows.index(next(r for r in rows if r["n"] == 3)), rows.index(next(r for r in rows if r["n"] == 6))
    assert examples[i3].image_feats.shape[0] == 9 and examples[i6].image_feats.shape[0] == 36  # one token per cell
    b = _batch(setup, [i3, i6])
    c = int(b["latent_start_col"][0])
    assert (b["input_ids"][:, c] == lt.start).all()
    assert (b["input_ids"][:, c + 1 : c + 5] == lt.pad).all()
    assert (b["input_ids"][:, c + 5] == lt.end).all()
    # latent_pad positions and the prompt are masked; latent_start / latent_end are supervised
    assert (b["labels"][:, c + 1 : c + 5] == IGNORE).all()
    assert (b["labels"][:, c] == lt.start).all() and (b["labels"][:, c + 5] == lt.end).all()
    assert b["targets"].shape == (2, 4, loaded.model.config.text_config.hidden_size)
    # each row keeps its own M-RoPE ids, shifted right by its left padding
    n = len(examples[i3].prefix_ids)
    assert torch.equal(b["position_ids"][0, :, c + 1 - n : c + 1], examples[i3].positions[:, :n])


def test_stage2_recurrence_equals_a_full_forward_with_fed_hidden_states(setup):
    from mmthink.methods.mirage.stages import embed_inputs, stage2

    loaded, lt, rows, _, _, _ = setup
    model = loaded.model.eval()
    b = _batch(setup, [0, len(rows) - 1])
    image_id = model.config.image_token_id
    with torch.no_grad():
        ce = stage2(model, b, k=4, image_token_id=image_id)
        emb = embed_inputs(model, b, image_id)
        c = int(b["latent_start_col"][0])
        pos = b["position_ids"].transpose(0, 1)
        for j in range(4):  # fill slot j with the state before it, recomputed from scratch each time
            end = c + 1 + j
            h = model(inputs_embeds=emb[:, :end], attention_mask=b["attention_mask"][:, :end],
                      position_ids=pos[:, :, :end], output_hidden_states=True).hidden_states[-1]
            emb = torch.cat([emb[:, :end], h[:, -1:], emb[:, end + 1 :]], dim=1)
        full = model(inputs_embeds=emb, attention_mask=b["attention_mask"], position_ids=pos).logits
    from mmthink.ops.lm import token_nll_sum

    ref, n = token_nll_sum(full, b["labels"])
    assert ce.num_items == n
    assert torch.allclose(ce.loss_sum, ref, rtol=1e-4)


def test_stage2_gradients_flow_through_the_recurrence(setup):
    from mmthink.methods.mirage.stages import stage2

    loaded, lt, rows, _, _, _ = setup
    model = loaded.model.train()
    b = _batch(setup, [0])
    # Only the suffix is supervised: any gradient on the prompt-side embedding rows of the latent_start
    # token must have come back through the K fed hidden states.
    emb = model.get_input_embeddings().weight
    emb.grad = None
    stage2(model, b, k=4, image_token_id=model.config.image_token_id).loss_sum.backward()
    assert emb.grad[lt.start].abs().sum() > 0
    model.zero_grad()


def test_tiny_run_trains_both_stages_and_evaluates(setup, cli, tmp_path):
    _, _, _, _, train, test = setup
    out = tmp_path / "run"
    res = cli("train", "mirage", "--recipe", "recipes/tiny/mirage.yaml", f"data.train_file={train}",
              f"data.eval_file={test}", "stage1.runner.max_steps=12", "stage2.runner.max_steps=6",
              "stage1.runner.batch_size=8", "stage1.runner.micro_batch_size=4", "stage2.runner.batch_size=8",
              "stage2.runner.micro_batch_size=8", "logging.progress=none", f"output_dir={out}")
    assert res.exit_code == 0, res.stderr
    s1 = [json.loads(line) for line in (out / "stage1" / "metrics.jsonl").read_text().splitlines()]
    cos = [r["cos_loss"] for r in s1 if "cos_loss" in r]
    assert len(cos) == 12 and cos[-1] < cos[0]  # the latent slots learn to point at the helper embeddings
    assert (out / "stage2" / "metrics.jsonl").is_file() and (out / "model" / "model.safetensors").is_file()
    assert (out / "model" / "preprocessor_config.json").is_file()

    res = cli("eval", "mirage", "--checkpoint", out / "model", "--data", test, "--out", tmp_path / "ev",
              "latent.mode=zeros")
    assert res.exit_code == 0, res.stderr
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["overall"]["n"] == 8 and set(report["by_n"]) == {"3", "6"}
    assert report["latent_mode"] == "zeros"

    # Re-running skips finished stages and loads their weights.
    res = cli("train", "mirage", "--recipe", "recipes/tiny/mirage.yaml", f"data.train_file={train}",
              "data.eval_file=null", "stage1.runner.max_steps=12", "stage2.runner.max_steps=6",
              "stage1.runner.batch_size=8", "stage1.runner.micro_batch_size=4", "stage2.runner.batch_size=8",
              "stage2.runner.micro_batch_size=8", "logging.progress=none", f"output_dir={out}")
    assert res.exit_code == 0 and "stage1, stage2 already done" in res.stdout
    # ... and the model saved again is stage 2's, weight for weight (Qwen2.5-VL saves other key names
    # than it holds in memory: a plain state-dict load used to match none and save a random model)
    from safetensors.torch import load_file

    final, stage2 = load_file(out / "model" / "model.safetensors"), load_file(out / "stage2" / "model" / "model.safetensors")
    assert final.keys() == stage2.keys() and all(torch.equal(final[k], stage2[k]) for k in final)


def _official_layout(tmp_path, test):
    """A copy of ``test`` laid out as the official repository: the JSONL in data/vsp_spatial_planning/,
    image paths relative to the repository root."""
    import shutil

    repo = tmp_path / "Mirage"
    folder = repo / "data" / "vsp_spatial_planning"
    (folder / "imgs_test").mkdir(parents=True)
    rows = []
    for line in test.read_text().splitlines():
        row = json.loads(line)
        name = row["image_input"].rsplit("/", 1)[-1]
        shutil.copy(test.parent / row["image_input"], folder / "imgs_test" / name)
        row["image_input"] = f"./data/vsp_spatial_planning/imgs_test/{name}"
        for key in ("image_output", "text_output"):  # official test rows carry neither
            row.pop(key, None)
        rows.append(json.dumps(row))
    official = folder / "test.jsonl"
    official.write_text("\n".join(rows) + "\n")
    return repo, official


def test_image_paths_resolve_against_the_jsonl_folder_its_ancestors_then_image_root(setup, tmp_path):
    from mmthink.methods.mirage.data import ImageRoots

    _, _, _, _, _, test = setup
    repo, official = _official_layout(tmp_path, test)
    rel = json.loads(official.read_text().splitlines()[0])["image_input"]
    assert ImageRoots(official).find(rel) == (repo / rel).resolve()  # found from an ancestor
    moved = tmp_path / "elsewhere" / "test.jsonl"
    moved.parent.mkdir()
    moved.write_text(official.read_text())
    assert ImageRoots(moved).find(rel) is None
    assert ImageRoots(moved, image_root=repo).find(rel) == repo / rel
    assert ImageRoots(moved).find(str(repo / rel)) == repo / rel  # absolute paths as they are


def test_eval_reads_an_official_file_whose_images_are_relative_to_the_repository_root(setup, cli, tmp_path):
    _, _, _, _, _, test = setup
    repo, official = _official_layout(tmp_path, test)
    res = cli("eval", "mirage", "--checkpoint", "tiny-qwen2.5-vl", "--data", official, "--out", tmp_path / "ev",
              "eval.max_new_tokens=4")
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["overall"]["n"] == 8
    moved = tmp_path / "moved.jsonl"
    moved.write_text(official.read_text())
    res = cli("eval", "mirage", "--checkpoint", "tiny-qwen2.5-vl", "--data", moved, "--out", tmp_path / "ev2")
    assert res.exit_code == 2 and "image_input" in res.stderr and "not found" in res.stderr
    res = cli("eval", "mirage", "--checkpoint", "tiny-qwen2.5-vl", "--data", moved, "--out", tmp_path / "ev2",
              f"data.image_root={repo}", "eval.max_new_tokens=4")
    assert res.exit_code == 0, res.stderr


def test_perception_stage_teaches_the_map_in_words_and_blank_images_hide_it(setup, cli, tmp_path):
    from mmthink.methods.mirage.data import ImageRoots, open_image

    _, _, rows, _, train, test = setup
    out = tmp_path / "run"
    res = cli("train", "mirage", "--recipe", "recipes/tiny/mirage.yaml", f"data.train_file={train}",
              "data.eval_file=null", "stages=[0]", "stage0.runner.max_steps=30", "stage0.runner.batch_size=8",
              "stage0.runner.micro_batch_size=8", "stage0.optim.lr=2e-3", "logging.progress=none", f"output_dir={out}")
    assert res.exit_code == 0, res.stderr
    losses = [json.loads(line)["loss"] for line in (out / "stage0" / "metrics.jsonl").read_text().splitlines()
              if "loss" in line]
    assert len(losses) == 30 and sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert (out / "model" / "model.safetensors").is_file()

    real = open_image(ImageRoots(train), rows[0]["image_input"])
    blank = open_image(ImageRoots(train, blank=True), rows[0]["image_input"])
    assert blank.size == real.size and blank.tobytes() == bytes([128]) * len(blank.tobytes()) and real.tobytes() != blank.tobytes()
