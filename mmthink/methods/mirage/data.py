"""Mirage examples: VSP-format rows → token layout, cached vision features, latent targets.

The vision tower is frozen in every stage, so each row's input-image features (merged tokens, already
in the LLM's embedding space) and its K pooled helper-image targets are computed once, up front.
Training batches then carry tensors whose first dimension is the batch, which also lets accelerate
split them across processes.

Layout of a batch (the same in stages 1 and 2):

    [left pad | prompt ... <|latent_start|>] [K latent slots] [<|latent_end|> answer <|im_end|> | right pad]

so every row's latent slots sit in the same columns and stage 2 can run the recurrence for the
whole batch at once. Position ids are each row's own M-RoPE ids, computed on the unpadded row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mmthink.errors import UserError
from mmthink.ops.lm import IGNORE

OUTPUT_IMAGE = "<output_image>"


@dataclass
class Example:
    prefix_ids: list  # prompt and any answer text before the latent block, ending with <|latent_start|>
    prefix_labels: list
    suffix_ids: list  # <|latent_end|>, the rest of the answer, <|im_end|>
    suffix_labels: list
    image_feats: object  # (n_image_tokens, H)
    targets: Optional[object]  # (K, H) pooled helper-image embeddings; None when K = 0
    positions: object  # (3, L) M-RoPE ids of prefix + K slots + suffix
    n: int  # grid size, for per-size reports


class ImageRoots:
    """Where a row's relative image path is looked for, in order: the JSONL's folder, then each of its
    ancestors (the official VSP files name images from their repository's root, e.g.
    ``./data/vsp_spatial_planning/imgs_test/...``), then ``image_root``. Absolute paths are used as they are."""

    def __init__(self, data_file, image_root=None, blank: bool = False):
        folder = Path(data_file).resolve().parent
        self.folders = [folder, *folder.parents] + ([Path(image_root)] if image_root else [])
        self.blank = blank  # the map-blind baseline: every image is replaced by a grey one of its size
        self._found: dict = {}

    def _candidates(self, rel) -> list:
        rel = Path(rel[0] if isinstance(rel, list) else rel)  # a row may name a list of images: the first
        return [rel] if rel.is_absolute() else [f / rel for f in self.folders]

    def find(self, rel) -> Optional[Path]:
        key = str(rel)
        if key not in self._found:
            self._found[key] = next((c for c in self._candidates(rel) if c.is_file()), None)
        return self._found[key]

    def first_tried(self, rel) -> Path:
        return self._candidates(rel)[0]


def open_image(roots: ImageRoots, rel):
    from PIL import Image

    path = roots.find(rel)
    if path is None:
        raise UserError(f"image not found: {roots.first_tried(rel)} (nor under its ancestors or data.image_root)")
    image = Image.open(path).convert("RGB")
    return Image.new("RGB", image.size, (128, 128, 128)) if roots.blank else image


def check_images(rows, roots: ImageRoots, source) -> None:
    """Every image the rows name exists, checked before any model loads (one line names the first missing)."""
    for i, row in enumerate(rows):
        for key in ("image_input", "image_output"):
            rel = row.get(key)
            if rel and roots.find(rel) is None:
                raise UserError(f"{source}: row {i + 1}: {key} {roots.first_tried(rel)} not found "
                                "(nor under its folder's ancestors or data.image_root)")


def prompt_text(tokenizer, text_input: str, n_image_tokens: int) -> str:
    """The chat prompt with the image where ``<image>`` stands, ending with the assistant header."""
    before, _, after = text_input.partition("<image>")
    content = [{"type": "text", "text": before}] if before else []
    content += [{"type": "image"}, {"type": "text", "text": after}]
    text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)
    # Qwen's template emits one <|image_pad|>; the model expects one per merged vision token.
    return text.replace("<|image_pad|>", "<|image_pad|>" * n_image_tokens, 1)


def vision_tokens(model, image_processor, images, batch_size: int = 16):
    """Merged vision tokens (LLM embedding space) and grid (t, h, w) of each image, tower frozen."""
    import torch

    feats, grids = [], []
    for i in range(0, len(images), batch_size):
        pix = image_processor(images=images[i : i + batch_size], return_tensors="pt")
        with torch.no_grad():
            out = model.model.get_image_features(pix["pixel_values"].to(model.device),
                                                 pix["image_grid_thw"].to(model.device))
        feats += [f.detach() for f in out.pooler_output]
        grids += list(pix["image_grid_thw"])
    return feats, grids


def encode_rows(rows, images_at: ImageRoots, model, tokenizer, image_processor, k: int, latent_ids, max_length: int):
    """Encode validated VSP-format rows into ``Example``s (see the module docstring)."""
    from mmthink.methods.mirage.losses import pooled_latent_targets

    images = [open_image(images_at, r["image_input"]) for r in rows]
    feats, grids = vision_tokens(model, image_processor, images)
    targets = [None] * len(rows)
    if k > 0:
        if any(not r.get("image_output") for r in rows):
            raise UserError("Mirage training rows need 'image_output' (the helper image) when latent.k > 0")
        helper, _ = vision_tokens(model, image_processor, [open_image(images_at, r["image_output"]) for r in rows])
        targets = [pooled_latent_targets(h, k) for h in helper]
    start, pad, end = latent_ids
    examples = []
    for i, row in enumerate(rows):
        if not row.get("text_output"):
            raise UserError(f"training row {i} has no 'text_output'")
        prompt = prompt_text(tokenizer, row["text_input"], feats[i].shape[0])
        before, marker, after = row["text_output"].partition(OUTPUT_IMAGE)
        if not marker:  # the latent block opens the assistant turn
            before, after = "", row["text_output"]
        ids = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        prompt_ids, before_ids = ids(prompt), ids(before)
        after_ids = ids(after + "<|im_end|>\n")
        if k > 0:
            prefix = prompt_ids + before_ids + [start]
            prefix_labels = [IGNORE] * len(prompt_ids) + before_ids + [start]
            suffix, suffix_labels = [end] + after_ids, [end] + after_ids
        else:
            prefix, prefix_labels = prompt_ids + before_ids, [IGNORE] * len(prompt_ids) + before_ids
            suffix, suffix_labels = after_ids, after_ids
        full = prefix + [pad] * k + suffix
        if len(full) > max_length:
            raise UserError(f"training row {i} needs {len(full)} tokens, more than data.max_length={max_length}")
        examples.append(Example(prefix, prefix_labels, suffix, suffix_labels, feats[i].cpu(),
                                None if targets[i] is None else targets[i].cpu(),
                                row_positions(model, full, grids[i]), int(row.get("n") or len(row["map_desc"]))))
    return examples


def row_positions(model, ids: list, grid):
    """M-RoPE position ids (3, L) of one unpadded row with one image."""
    import torch

    t = torch.tensor([ids])
    image_id = model.config.image_token_id
    pos, _ = model.model.get_rope_index(t, mm_token_type_ids=(t == image_id).int(), image_grid_thw=grid[None])
    return pos[:, 0]


def collate(batch: list, pad_id: int, k: int, latent_pad_id: int) -> dict:
    """Lay out a batch: left-padded prefixes, K aligned latent slots, right-padded suffixes."""
    import torch

    lp = max(len(e.prefix_ids) for e in batch)
    ls = max(len(e.suffix_ids) for e in batch)
    width, b = lp + k + ls, len(batch)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    labels = torch.full((b, width), IGNORE, dtype=torch.long)
    mask = torch.zeros((b, width), dtype=torch.long)
    pos = torch.zeros((b, 3, width), dtype=torch.long)
    n_img = max(e.image_feats.shape[0] for e in batch)
    feats = torch.zeros((b, n_img, batch[0].image_feats.shape[1]))
    for i, e in enumerate(batch):
        a = lp - len(e.prefix_ids)  # left pad of this row
        z = lp + k + len(e.suffix_ids)
        row = e.prefix_ids + [latent_pad_id] * k + e.suffix_ids
        ids[i, a:z] = torch.tensor(row)
        labels[i, a:z] = torch.tensor(e.prefix_labels + [IGNORE] * k + e.suffix_labels)
        mask[i, a:z] = 1
        pos[i, :, a:z] = e.positions
        feats[i, : e.image_feats.shape[0]] = e.image_feats
    out = {"input_ids": ids, "labels": labels, "attention_mask": mask, "position_ids": pos, "image_feats": feats,
           "image_counts": torch.tensor([e.image_feats.shape[0] for e in batch]), "n": torch.tensor([e.n for e in batch])}
    if k > 0:
        out["targets"] = torch.stack([e.targets for e in batch])
        out["latent_start_col"] = torch.full((b,), lp - 1, dtype=torch.long)  # prefixes end with it
    return out
